//! Message templates (minijinja): a title and a body per channel, with defaults per channel
//! format in English and Chinese, overridable per channel.
//!
//! Templates are compiled and rendered against a sample message when a channel is saved, so a
//! syntax error is a 422 then, not a failed send later. HTML formats (email, Telegram) escape
//! every value; titles become one line (a subject with a line break would be header injection).
//!
//! The context every template sees: `title` (in bodies), `status` (`firing`/`resolved`),
//! `status_text`, `severity`, `severity_text`, `name`, `kind`, `alerts` (each with `status`,
//! `status_text`, `status_icon`, `severity`, `severity_text`, `colour`, `name`, `summary`,
//! `description`, `value`, `labels`, `annotations`, `label_text`, `starts_at`, `ends_at`,
//! `generator_url`, `fingerprint`), `firing_count`, `resolved_count`, `common_labels`,
//! `group_labels`, `external_url`, `colour`, and `t` (the words of the chosen language).

use std::collections::BTreeMap;

use hubmon_model::{Alert, AlertStatus, Severity, Timestamp};
use minijinja::{AutoEscape, Environment, Value, context};
use serde::{Deserialize, Serialize};

use crate::message::AlertMessage;
use crate::settings::ChannelKind;
use crate::{Error, Result};

/// The language of the default templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Zh,
}

/// What markup a channel's body is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// DingTalk, Feishu and WeCom markdown.
    Markdown,
    /// Slack's mrkdwn.
    Slack,
    /// Telegram's HTML subset.
    TelegramHtml,
    /// Plain text (email text part, in-app body, webhook history line).
    Text,
}

impl Format {
    fn of(kind: ChannelKind) -> Self {
        match kind {
            ChannelKind::Dingtalk | ChannelKind::Feishu | ChannelKind::Wecom => Format::Markdown,
            ChannelKind::Slack => Format::Slack,
            ChannelKind::Telegram => Format::TelegramHtml,
            ChannelKind::Email | ChannelKind::Webhook | ChannelKind::InApp => Format::Text,
        }
    }

    fn escapes_html(self) -> bool {
        self == Format::TelegramHtml
    }
}

/// A message rendered for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: email subject, card header, history title.
    pub title: String,
    pub body: String,
    /// The HTML part (email only).
    pub html: Option<String>,
    pub severity: Severity,
    pub status: AlertStatus,
}

/// What a render needs besides the message.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// The dashboard's address, linked from every message.
    pub external_url: Option<String>,
}

/// A channel's templates (sources), validated.
#[derive(Debug, Clone)]
pub struct Templates {
    format: Format,
    language: Language,
    title: String,
    body: String,
    html: Option<String>,
}

impl Templates {
    pub fn language(&self) -> Language {
        self.language
    }

    /// The defaults for `kind`, with any override; each override is compiled and tried on a
    /// sample message.
    pub fn new(
        kind: ChannelKind,
        language: Language,
        title: Option<String>,
        body: Option<String>,
        html: Option<String>,
    ) -> Result<Self> {
        let format = Format::of(kind);
        let templates = Self {
            format,
            language,
            title: title.clone().unwrap_or_else(|| default_title(language).to_string()),
            body: body.clone().unwrap_or_else(|| default_body(format).to_string()),
            html: (kind == ChannelKind::Email).then(|| html.clone().unwrap_or_else(|| EMAIL_HTML.to_string())),
        };
        let sample = AlertMessage::test("sample");
        let context = RenderContext { external_url: Some("http://hubmon.invalid/".into()) };
        for (field, source, escape) in [
            ("config.title_template", title, false),
            ("config.body_template", body, format.escapes_html()),
            ("config.html_template", html, true),
        ] {
            if let Some(source) = source {
                let env = environment(escape);
                env.template_from_str(&source).map_err(|e| Error::invalid(field, describe(&e)))?;
                let values = templates.values(&sample, &context, "");
                env.render_str(&source, values).map_err(|e| Error::invalid(field, describe(&e)))?;
            }
        }
        Ok(templates)
    }

    /// Renders `message`, with the rule's templates where it brings them. A failure names the
    /// template and the problem.
    pub fn render(&self, message: &AlertMessage, context: &RenderContext) -> Result<Rendered, String> {
        let rule = message.templates.as_ref();
        let title_source = rule.and_then(|t| t.title.as_deref()).unwrap_or(&self.title);
        let body_source = rule.and_then(|t| t.body.as_deref()).unwrap_or(&self.body);
        let title_env = environment(false);
        let title = title_env
            .render_str(title_source, self.values(message, context, ""))
            .map_err(|e| format!("title template: {}", describe(&e)))?;
        let title = one_line(&title);
        let body = environment(self.format.escapes_html())
            .render_str(body_source, self.values(message, context, &title))
            .map_err(|e| format!("body template: {}", describe(&e)))?;
        let html = match &self.html {
            Some(source) => Some(
                environment(true)
                    .render_str(source, self.values(message, context, &title))
                    .map_err(|e| format!("html template: {}", describe(&e)))?,
            ),
            None => None,
        };
        Ok(Rendered {
            title,
            body: body.trim().to_string(),
            html,
            severity: message.title_severity(),
            status: message.status(),
        })
    }

    fn values(&self, message: &AlertMessage, context: &RenderContext, title: &str) -> Value {
        let words = words(self.language);
        let status = message.status();
        let severity = message.title_severity();
        let alerts: Vec<Value> = message.alerts.iter().map(|a| alert_values(a, self.language)).collect();
        let firing = message.alerts.iter().filter(|a| a.status == AlertStatus::Firing).count();
        context! {
            title => title,
            kind => message.kind.as_str(),
            status => status.as_str(),
            status_text => status_text(status, self.language),
            severity => severity.as_str(),
            severity_text => severity_text(severity, self.language),
            colour => colour(status, severity),
            name => message.name(),
            alerts => alerts,
            firing_count => firing,
            resolved_count => message.alerts.len() - firing,
            common_labels => message.common_labels(),
            group_labels => message.group_labels.clone(),
            external_url => context.external_url.clone(),
            t => words,
        }
    }
}

/// Checks a rule's templates as [`Templates::new`] checks a channel's: compiled and rendered
/// against a sample message. Errors name `templates.title` or `templates.body`.
pub fn validate_override(templates: &crate::message::TemplateOverride) -> Result<()> {
    let mut sample = AlertMessage::test("sample");
    sample.templates = Some(templates.clone());
    let context = RenderContext { external_url: Some("http://hubmon.invalid/".into()) };
    for (field, source) in [("templates.title", &templates.title), ("templates.body", &templates.body)] {
        if let Some(source) = source {
            environment(false).template_from_str(source).map_err(|e| Error::invalid(field, describe(&e)))?;
        }
    }
    for kind in [ChannelKind::Slack, ChannelKind::Telegram, ChannelKind::Email] {
        let defaults = Templates::new(kind, Language::En, None, None, None)?;
        defaults.render(&sample, &context).map_err(|problem| {
            let field = if problem.starts_with("title") { "templates.title" } else { "templates.body" };
            Error::invalid(field, problem)
        })?;
    }
    Ok(())
}

fn environment(escape_html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(move |_| if escape_html { AutoEscape::Html } else { AutoEscape::None });
    env
}

fn describe(error: &minijinja::Error) -> String {
    // minijinja's text names the line already ("… (in <string>:1)"); say which template instead.
    error.to_string().replace("(in <string>:", "(line ")
}

fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(250).collect()
}

fn alert_values(alert: &Alert, language: Language) -> Value {
    let severity = alert.severity();
    let summary =
        alert.annotations.get("summary").cloned().unwrap_or_else(|| {
            if alert.name().is_empty() { alert.fingerprint.clone() } else { alert.name().to_string() }
        });
    let label_text = alert
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    context! {
        status => alert.status.as_str(),
        status_text => status_text(alert.status, language),
        status_icon => icon(alert.status, severity),
        severity => severity.as_str(),
        severity_text => severity_text(severity, language),
        colour => colour(alert.status, severity),
        name => alert.name(),
        summary => summary,
        description => alert.annotations.get("description").cloned(),
        value => alert.value.clone(),
        labels => alert.labels.clone(),
        annotations => alert.annotations.clone(),
        label_text => label_text,
        starts_at => when(alert.starts_at),
        ends_at => alert.ends_at.map(when),
        generator_url => alert.generator_url.clone(),
        fingerprint => alert.fingerprint.clone(),
    }
}

fn when(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The colour of a message's severity, for Slack attachments, Feishu cards and email.
pub fn colour(status: AlertStatus, severity: Severity) -> &'static str {
    match (status, severity) {
        (AlertStatus::Resolved, _) => "#2eb67d",
        (_, Severity::Critical) => "#e01e5a",
        (_, Severity::Warning) => "#ecb22e",
        (_, Severity::Info) => "#36c5f0",
    }
}

fn icon(status: AlertStatus, severity: Severity) -> &'static str {
    match (status, severity) {
        (AlertStatus::Resolved, _) => "✅",
        (_, Severity::Critical) => "🔴",
        (_, Severity::Warning) => "🟠",
        (_, Severity::Info) => "🔵",
    }
}

fn status_text(status: AlertStatus, language: Language) -> &'static str {
    match (language, status) {
        (Language::En, AlertStatus::Firing) => "FIRING",
        (Language::En, AlertStatus::Resolved) => "RESOLVED",
        (Language::Zh, AlertStatus::Firing) => "告警",
        (Language::Zh, AlertStatus::Resolved) => "已恢复",
    }
}

fn severity_text(severity: Severity, language: Language) -> &'static str {
    match (language, severity) {
        (Language::En, s) => s.as_str(),
        (Language::Zh, Severity::Critical) => "严重",
        (Language::Zh, Severity::Warning) => "警告",
        (Language::Zh, Severity::Info) => "提示",
    }
}

fn words(language: Language) -> BTreeMap<&'static str, &'static str> {
    let pairs: [(&str, &str); 8] = match language {
        Language::En => [
            ("severity", "Severity"),
            ("value", "Value"),
            ("started", "Started"),
            ("ended", "Resolved"),
            ("labels", "Labels"),
            ("source", "Source"),
            ("dashboard", "Open in hubmon"),
            ("description", "Description"),
        ],
        Language::Zh => [
            ("severity", "级别"),
            ("value", "当前值"),
            ("started", "开始时间"),
            ("ended", "恢复时间"),
            ("labels", "标签"),
            ("source", "来源"),
            ("dashboard", "在 hubmon 中查看"),
            ("description", "描述"),
        ],
    };
    pairs.into_iter().collect()
}

fn default_title(language: Language) -> &'static str {
    match language {
        Language::En => {
            "[{{ status_text }}{% if alerts|length > 1 %}:{{ alerts|length }}{% endif %}] {{ name }} ({{ severity_text }})"
        }
        Language::Zh => {
            "【{{ status_text }}{% if alerts|length > 1 %}:{{ alerts|length }}{% endif %}】{{ name }}（{{ severity_text }}）"
        }
    }
}

fn default_body(format: Format) -> &'static str {
    match format {
        Format::Markdown => MARKDOWN_BODY,
        Format::Slack => SLACK_BODY,
        Format::TelegramHtml => TELEGRAM_BODY,
        Format::Text => TEXT_BODY,
    }
}

const MARKDOWN_BODY: &str = r#"
{%- for a in alerts %}
**{{ a.status_icon }} {{ a.summary }}**

- {{ t.severity }}: {{ a.severity_text }}
{%- if a.value %}
- {{ t.value }}: {{ a.value }}
{%- endif %}
- {{ t.started }}: {{ a.starts_at }}
{%- if a.ends_at %}
- {{ t.ended }}: {{ a.ends_at }}
{%- endif %}
- {{ t.labels }}: {{ a.label_text }}
{%- if a.description %}

> {{ a.description }}
{%- endif %}
{%- if a.generator_url %}

[{{ t.source }}]({{ a.generator_url }})
{%- endif %}

{% endfor %}
{%- if external_url %}[{{ t.dashboard }}]({{ external_url }}){% endif %}
"#;

const SLACK_BODY: &str = r#"
{%- for a in alerts %}
*{{ a.status_icon }} {{ a.summary }}*
{{ t.severity }}: {{ a.severity_text }}{% if a.value %}  ·  {{ t.value }}: {{ a.value }}{% endif %}
{{ t.started }}: {{ a.starts_at }}{% if a.ends_at %}  ·  {{ t.ended }}: {{ a.ends_at }}{% endif %}
{%- if a.description %}
> {{ a.description }}
{%- endif %}
{%- if a.label_text %}
`{{ a.label_text }}`
{%- endif %}
{%- if a.generator_url %}
<{{ a.generator_url }}|{{ t.source }}>
{%- endif %}

{% endfor %}
{%- if external_url %}<{{ external_url }}|{{ t.dashboard }}>{% endif %}
"#;

const TELEGRAM_BODY: &str = r#"
<b>{{ title }}</b>
{% for a in alerts %}
<b>{{ a.status_icon }} {{ a.summary }}</b>
{{ t.severity }}: {{ a.severity_text }}{% if a.value %} · {{ t.value }}: {{ a.value }}{% endif %}
{{ t.started }}: {{ a.starts_at }}{% if a.ends_at %}
{{ t.ended }}: {{ a.ends_at }}{% endif %}{% if a.description %}
<i>{{ a.description }}</i>{% endif %}{% if a.label_text %}
<code>{{ a.label_text }}</code>{% endif %}{% if a.generator_url %}
<a href="{{ a.generator_url }}">{{ t.source }}</a>{% endif %}
{% endfor %}
{%- if external_url %}<a href="{{ external_url }}">{{ t.dashboard }}</a>{% endif %}
"#;

const TEXT_BODY: &str = r#"
{%- for a in alerts %}
{{ a.status_text }}: {{ a.summary }}
  {{ t.severity }}: {{ a.severity_text }}
{%- if a.value %}
  {{ t.value }}: {{ a.value }}
{%- endif %}
  {{ t.started }}: {{ a.starts_at }}
{%- if a.ends_at %}
  {{ t.ended }}: {{ a.ends_at }}
{%- endif %}
{%- if a.label_text %}
  {{ t.labels }}: {{ a.label_text }}
{%- endif %}
{%- if a.description %}
  {{ a.description }}
{%- endif %}
{%- if a.generator_url %}
  {{ t.source }}: {{ a.generator_url }}
{%- endif %}

{% endfor %}
{%- if external_url %}{{ t.dashboard }}: {{ external_url }}{% endif %}
"#;

const EMAIL_HTML: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: #1d1c1d; margin: 0; padding: 16px;">
<h2 style="margin: 0 0 12px; border-left: 6px solid {{ colour }}; padding-left: 10px;">{{ title }}</h2>
{% for a in alerts %}
<table style="border-collapse: collapse; margin: 0 0 16px; width: 100%; max-width: 720px; border-left: 4px solid {{ a.colour }};">
<tr><td colspan="2" style="padding: 6px 10px; font-weight: bold;">{{ a.status_icon }} {{ a.summary }}</td></tr>
<tr><td style="padding: 2px 10px; color: #616061; width: 120px;">{{ t.severity }}</td><td style="padding: 2px 10px;">{{ a.severity_text }}</td></tr>
{% if a.value %}<tr><td style="padding: 2px 10px; color: #616061;">{{ t.value }}</td><td style="padding: 2px 10px;">{{ a.value }}</td></tr>{% endif %}
<tr><td style="padding: 2px 10px; color: #616061;">{{ t.started }}</td><td style="padding: 2px 10px;">{{ a.starts_at }}</td></tr>
{% if a.ends_at %}<tr><td style="padding: 2px 10px; color: #616061;">{{ t.ended }}</td><td style="padding: 2px 10px;">{{ a.ends_at }}</td></tr>{% endif %}
{% if a.description %}<tr><td style="padding: 2px 10px; color: #616061;">{{ t.description }}</td><td style="padding: 2px 10px;">{{ a.description }}</td></tr>{% endif %}
{% if a.label_text %}<tr><td style="padding: 2px 10px; color: #616061;">{{ t.labels }}</td><td style="padding: 2px 10px; font-family: monospace;">{{ a.label_text }}</td></tr>{% endif %}
{% if a.generator_url %}<tr><td></td><td style="padding: 2px 10px;"><a href="{{ a.generator_url }}">{{ t.source }}</a></td></tr>{% endif %}
</table>
{% endfor %}
{% if external_url %}<p><a href="{{ external_url }}">{{ t.dashboard }}</a></p>{% endif %}
</body></html>
"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use hubmon_model::{Alert, AlertStatus, Timestamp};

    use super::*;
    use crate::message::MessageKind;

    fn message() -> AlertMessage {
        let alert = Alert {
            status: AlertStatus::Firing,
            labels: BTreeMap::from([
                ("alertname".into(), "HighCPU".into()),
                ("severity".into(), "critical".into()),
                ("instance".into(), "web-1".into()),
            ]),
            annotations: BTreeMap::from([
                ("summary".into(), "CPU above 90% on web-1".into()),
                ("description".into(), "<script>alert(1)</script>".into()),
            ]),
            starts_at: Timestamp(1_700_000_000_000),
            ends_at: None,
            generator_url: Some("http://hubmon.local/graph?g0.expr=up".into()),
            fingerprint: "abc".into(),
            value: Some("93.5%".into()),
        };
        AlertMessage::new(MessageKind::Alert, "HighCPU", vec![alert])
    }

    #[test]
    fn default_titles_in_both_languages() {
        let context = RenderContext::default();
        let en = Templates::new(ChannelKind::Slack, Language::En, None, None, None).unwrap();
        assert_eq!(en.render(&message(), &context).unwrap().title, "[FIRING] HighCPU (critical)");
        let zh = Templates::new(ChannelKind::Dingtalk, Language::Zh, None, None, None).unwrap();
        let rendered = zh.render(&message(), &context).unwrap();
        assert_eq!(rendered.title, "【告警】HighCPU（严重）");
        assert!(rendered.body.contains("当前值: 93.5%"), "{}", rendered.body);
        assert!(rendered.body.contains("2023-11-14 22:13:20 UTC"), "{}", rendered.body);
    }

    #[test]
    fn html_formats_escape_values_and_titles_are_one_line() {
        let context = RenderContext { external_url: Some("http://hubmon.local/".into()) };
        let email = Templates::new(ChannelKind::Email, Language::En, None, None, None).unwrap();
        let rendered = email.render(&message(), &context).unwrap();
        let html = rendered.html.unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("href=\"http:&#x2f;&#x2f;hubmon.local&#x2f;\"") || html.contains("http://hubmon.local/"));
        assert!(rendered.body.contains("<script>"), "the text part stays text");
        let telegram = Templates::new(ChannelKind::Telegram, Language::En, None, None, None).unwrap();
        assert!(telegram.render(&message(), &context).unwrap().body.contains("&lt;script&gt;"));

        let custom =
            Templates::new(ChannelKind::Email, Language::En, Some("a\r\nBcc: x@y.z {{ name }}".into()), None, None)
                .unwrap();
        assert_eq!(custom.render(&message(), &context).unwrap().title, "a Bcc: x@y.z HighCPU");
    }

    #[test]
    fn a_rules_templates_replace_the_channels() {
        let mut message = message();
        message.templates = Some(crate::message::TemplateOverride {
            title: Some("CPU hot on {{ alerts[0].labels.instance }}".into()),
            body: Some("{{ alerts[0].value }} > 90%".into()),
        });
        let slack = Templates::new(ChannelKind::Slack, Language::En, Some("channel title".into()), None, None).unwrap();
        let rendered = slack.render(&message, &RenderContext::default()).unwrap();
        assert_eq!(rendered.title, "CPU hot on web-1");
        assert_eq!(rendered.body, "93.5% > 90%");
        let bad = crate::message::TemplateOverride { title: None, body: Some("{{ value | nosuch }}".into()) };
        let error = validate_override(&bad).unwrap_err();
        assert!(matches!(error, Error::InvalidSettings { ref field, .. } if field == "templates.body"), "{error}");
        assert!(validate_override(&crate::message::TemplateOverride::default()).is_ok());
    }

    #[test]
    fn template_errors_name_the_field() {
        let error = Templates::new(ChannelKind::Slack, Language::En, None, Some("{% for %}".into()), None).unwrap_err();
        assert!(
            matches!(error, Error::InvalidSettings { ref field, .. } if field == "config.body_template"),
            "{error}"
        );
        let error =
            Templates::new(ChannelKind::Slack, Language::En, Some("{{ name | nosuchfilter }}".into()), None, None)
                .unwrap_err();
        assert!(
            matches!(error, Error::InvalidSettings { ref field, .. } if field == "config.title_template"),
            "{error}"
        );
    }
}
