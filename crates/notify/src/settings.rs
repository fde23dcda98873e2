//! Channel settings: the `config` object of `{"name", "kind", "config", "enabled"}`.
//!
//! Every kind has a struct with `deny_unknown_fields`; options every kind shares (timeout,
//! attempts, rate limit, language, templates) sit in the same object and are taken out first.
//! [`ChannelSettings::parse`] validates everything a send would otherwise trip over at 3 a.m.:
//! URLs, addresses, header names, template syntax. Errors name the field (`config.webhook_url`).
//!
//! Secret fields (passwords, webhook URLs that carry tokens, signing secrets, bot tokens, custom
//! header values) are sealed with [`hubmon_state::Secrets`] before the JSON is stored and shown
//! masked in every view; [`keep_secrets`] lets an update leave them out or send the masked
//! value back to keep the stored secret.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hubmon_model::PromDuration;
use hubmon_state::Secrets;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::template::{Language, Templates};
use crate::{Error, Result};

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Email,
    Slack,
    Dingtalk,
    Feishu,
    Wecom,
    Telegram,
    Webhook,
    InApp,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 8] = [
        ChannelKind::Email,
        ChannelKind::Slack,
        ChannelKind::Dingtalk,
        ChannelKind::Feishu,
        ChannelKind::Wecom,
        ChannelKind::Telegram,
        ChannelKind::Webhook,
        ChannelKind::InApp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Slack => "slack",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Feishu => "feishu",
            ChannelKind::Wecom => "wecom",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Webhook => "webhook",
            ChannelKind::InApp => "in_app",
        }
    }

    /// The vendor's documented limit, applied unless the channel sets its own: messages per
    /// minute (0 = none).
    pub fn default_rate_per_minute(self) -> u32 {
        match self {
            ChannelKind::Dingtalk | ChannelKind::Wecom | ChannelKind::Telegram => 20,
            ChannelKind::Feishu => 100,
            ChannelKind::Slack => 60,
            ChannelKind::Email | ChannelKind::Webhook | ChannelKind::InApp => 0,
        }
    }

    /// Top-level config fields that hold secrets; `headers` means every value of that map.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            ChannelKind::Email => &["password"],
            ChannelKind::Slack | ChannelKind::Wecom => &["webhook_url"],
            ChannelKind::Dingtalk | ChannelKind::Feishu => &["webhook_url", "secret"],
            ChannelKind::Telegram => &["bot_token"],
            ChannelKind::Webhook => &["webhook_url", "secret", "headers"],
            ChannelKind::InApp => &[],
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::invalid("kind", format!("unknown channel kind {text:?}; use one of {}", known.join(", ")))
        })
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refuses servers without it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network (port 25).
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub smtp_host: String,
    /// Defaults by `security`: 587, 465 or 25.
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM file of extra CA certificates to trust (an internal relay's CA), besides the
    /// public roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate: only for a test relay with a self-signed one.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Overrides the HTML part (the text part follows `body_template`).
    pub html_template: Option<String>,
}

impl EmailSettings {
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The incoming-webhook URL (it carries the token).
    pub webhook_url: String,
    /// Overrides the webhook's default channel, where the workspace allows it.
    pub channel: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkSettings {
    /// The robot webhook URL with its `access_token`.
    pub webhook_url: String,
    /// The robot's signing secret (`SEC…`), when "加签" is on.
    pub secret: Option<String>,
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    #[serde(default)]
    pub at_all: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuSettings {
    pub webhook_url: String,
    /// The bot's signing secret, when signature verification is on.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomSettings {
    /// The group robot webhook URL with its `key`.
    pub webhook_url: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    pub bot_token: String,
    /// A chat id (`-100…` for groups) or `@channelname`.
    pub chat_id: String,
    /// The Bot API base, for a local Bot API server or a proxy.
    #[serde(default = "default_telegram_api")]
    pub api_url: String,
}

fn default_telegram_api() -> String {
    "https://api.telegram.org".to_string()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where to POST Alertmanager's webhook JSON (version 4).
    pub webhook_url: String,
    /// Signs each request: `X-Hubmon-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
    pub secret: Option<String>,
    /// Extra request headers (their values are kept secret: they often carry credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Send at most this many alerts per request (0: all), reporting the rest as `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InAppSettings {
    /// Usernames whose inbox receives the messages; empty: every enabled user.
    #[serde(default)]
    pub users: Vec<String>,
}

/// The kind-specific part of a channel's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum KindSettings {
    Email(EmailSettings),
    Slack(SlackSettings),
    Dingtalk(DingtalkSettings),
    Feishu(FeishuSettings),
    Wecom(WecomSettings),
    Telegram(TelegramSettings),
    Webhook(WebhookSettings),
    InApp(InAppSettings),
}

/// Options every kind shares, in the same `config` object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonRaw {
    timeout: Option<PromDuration>,
    max_attempts: Option<u32>,
    rate_limit_per_minute: Option<u32>,
    language: Option<Language>,
    title_template: Option<String>,
    body_template: Option<String>,
}

const COMMON_FIELDS: [&str; 6] =
    ["timeout", "max_attempts", "rate_limit_per_minute", "language", "title_template", "body_template"];

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// A channel's validated settings, secrets in the clear: built when a channel is saved (to
/// validate) and when it sends.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub kind: KindSettings,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Attempts before the notification becomes a dead letter.
    pub max_attempts: u32,
    /// Messages per minute this channel may send (0: unlimited); more wait in the outbox.
    pub rate_per_minute: u32,
    pub templates: Templates,
}

impl ChannelSettings {
    /// Validates `config` (secrets in the clear) for `kind`.
    pub fn parse(kind: ChannelKind, config: &Value) -> Result<Self> {
        let Value::Object(object) = config else {
            return Err(Error::invalid("config", "must be a JSON object"));
        };
        let (common, specific): (Map<String, Value>, Map<String, Value>) =
            object.clone().into_iter().partition(|(key, _)| COMMON_FIELDS.contains(&key.as_str()));
        let common: CommonRaw = from_object(common)?;
        let settings = match kind {
            ChannelKind::Email => KindSettings::Email(from_object(specific)?),
            ChannelKind::Slack => KindSettings::Slack(from_object(specific)?),
            ChannelKind::Dingtalk => KindSettings::Dingtalk(from_object(specific)?),
            ChannelKind::Feishu => KindSettings::Feishu(from_object(specific)?),
            ChannelKind::Wecom => KindSettings::Wecom(from_object(specific)?),
            ChannelKind::Telegram => KindSettings::Telegram(from_object(specific)?),
            ChannelKind::Webhook => KindSettings::Webhook(from_object(specific)?),
            ChannelKind::InApp => KindSettings::InApp(from_object(specific)?),
        };
        validate_kind(&settings)?;

        let timeout = common.timeout.map_or(DEFAULT_TIMEOUT, PromDuration::as_duration);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(Error::invalid("config.timeout", "must be more than 0s and at most 5m"));
        }
        let max_attempts = common.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(Error::invalid("config.max_attempts", format!("must be 1 to {MAX_ATTEMPTS_LIMIT}")));
        }
        let html = match &settings {
            KindSettings::Email(email) => email.html_template.clone(),
            _ => None,
        };
        let templates = Templates::new(
            kind,
            common.language.unwrap_or_default(),
            common.title_template,
            common.body_template,
            html,
        )?;
        Ok(Self {
            kind: settings,
            timeout,
            max_attempts,
            rate_per_minute: common.rate_limit_per_minute.unwrap_or(kind.default_rate_per_minute()),
            templates,
        })
    }

    pub fn kind(&self) -> ChannelKind {
        match self.kind {
            KindSettings::Email(_) => ChannelKind::Email,
            KindSettings::Slack(_) => ChannelKind::Slack,
            KindSettings::Dingtalk(_) => ChannelKind::Dingtalk,
            KindSettings::Feishu(_) => ChannelKind::Feishu,
            KindSettings::Wecom(_) => ChannelKind::Wecom,
            KindSettings::Telegram(_) => ChannelKind::Telegram,
            KindSettings::Webhook(_) => ChannelKind::Webhook,
            KindSettings::InApp(_) => ChannelKind::InApp,
        }
    }
}

/// Deserializes a kind's fields, naming the offending one as `config.<field>`.
fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(object)).map_err(|e| {
        let text = e.to_string();
        // serde's messages name the field in backquotes: "unknown field `x`", "missing field `y`".
        let field = text.split('`').nth(1).filter(|_| text.contains("field")).unwrap_or("");
        let field = if field.is_empty() { "config".to_string() } else { format!("config.{field}") };
        Error::invalid(field, text)
    })
}

fn validate_kind(settings: &KindSettings) -> Result<()> {
    match settings {
        KindSettings::Email(email) => validate_email(email),
        KindSettings::Slack(s) => http_url("config.webhook_url", &s.webhook_url),
        KindSettings::Dingtalk(s) => {
            http_url("config.webhook_url", &s.webhook_url)?;
            not_blank("config.secret", s.secret.as_deref())?;
            for mobile in &s.at_mobiles {
                if mobile.is_empty() || !mobile.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-') {
                    return Err(Error::invalid("config.at_mobiles", format!("{mobile:?} is not a phone number")));
                }
            }
            Ok(())
        }
        KindSettings::Feishu(s) => {
            http_url("config.webhook_url", &s.webhook_url)?;
            not_blank("config.secret", s.secret.as_deref())
        }
        KindSettings::Wecom(s) => http_url("config.webhook_url", &s.webhook_url),
        KindSettings::Telegram(s) => {
            if s.bot_token.is_empty() || !s.bot_token.chars().all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c)) {
                return Err(Error::invalid("config.bot_token", "must look like 123456:ABC-DEF… (from @BotFather)"));
            }
            if s.chat_id.trim().is_empty() {
                return Err(Error::invalid("config.chat_id", "must not be empty"));
            }
            http_url("config.api_url", &s.api_url)
        }
        KindSettings::Webhook(s) => {
            http_url("config.webhook_url", &s.webhook_url)?;
            not_blank("config.secret", s.secret.as_deref())?;
            for (name, value) in &s.headers {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(Error::invalid("config.headers", format!("{name:?} is not a valid header name")));
                }
                if reqwest::header::HeaderValue::from_str(value).is_err() {
                    return Err(Error::invalid(
                        format!("config.headers.{name}"),
                        "is not a valid header value (no line breaks or control characters)",
                    ));
                }
            }
            Ok(())
        }
        KindSettings::InApp(_) => Ok(()),
    }
}

fn validate_email(email: &EmailSettings) -> Result<()> {
    if email.smtp_host.trim().is_empty() || email.smtp_host.contains(['/', ' ', '\r', '\n']) {
        return Err(Error::invalid("config.smtp_host", "must be a host name or address"));
    }
    if email.smtp_port == Some(0) {
        return Err(Error::invalid("config.smtp_port", "must be 1 to 65535"));
    }
    if let Some(path) = &email.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Error::invalid("config.ca_file", format!("cannot read {}: {e}", path.display())))?;
        lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|e| {
            Error::invalid("config.ca_file", format!("{} holds no PEM certificate: {e}", path.display()))
        })?;
    }
    if email.password.is_some() && email.username.is_none() {
        return Err(Error::invalid("config.username", "is required when a password is set"));
    }
    mailbox("config.from", &email.from)?;
    if email.to.is_empty() {
        return Err(Error::invalid("config.to", "needs at least one recipient"));
    }
    for to in &email.to {
        mailbox("config.to", to)?;
    }
    Ok(())
}

/// Parses an address the way the email channel will, refusing line breaks (header injection).
pub(crate) fn mailbox(field: &str, text: &str) -> Result<lettre::message::Mailbox> {
    if text.contains(['\r', '\n']) {
        return Err(Error::invalid(field, format!("{text:?} contains a line break")));
    }
    text.parse().map_err(|e| Error::invalid(field, format!("{text:?} is not an email address: {e}")))
}

fn http_url(field: &str, text: &str) -> Result<()> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(Error::invalid(field, "must be an http:// or https:// URL with a host")),
        Err(e) => Err(Error::invalid(field, format!("is not a URL: {e}"))),
    }
}

fn not_blank(field: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(text) if text.trim().is_empty() => Err(Error::invalid(field, "must not be empty; leave it out instead")),
        _ => Ok(()),
    }
}

/// Applies `f` to every secret string of `config` for `kind`.
fn for_each_secret(kind: ChannelKind, config: &mut Value, mut f: impl FnMut(&mut String) -> Result<()>) -> Result<()> {
    let Value::Object(object) = config else {
        return Ok(());
    };
    for field in kind.secret_fields() {
        match object.get_mut(*field) {
            Some(Value::String(text)) if !text.is_empty() => f(text)?,
            Some(Value::Object(map)) => {
                for value in map.values_mut() {
                    if let Value::String(text) = value {
                        f(text)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `config` with its secrets sealed, for storing.
pub fn seal(kind: ChannelKind, config: &Value, secrets: &Secrets) -> Result<Value> {
    let mut sealed = config.clone();
    for_each_secret(kind, &mut sealed, |text| {
        if !Secrets::is_sealed(text) {
            *text = secrets.seal(text);
        }
        Ok(())
    })?;
    Ok(sealed)
}

/// A stored config with its secrets opened.
pub fn open(kind: ChannelKind, stored: &Value, secrets: &Secrets) -> Result<Value> {
    let mut opened = stored.clone();
    for_each_secret(kind, &mut opened, |text| {
        *text = secrets.open(text)?;
        Ok(())
    })?;
    Ok(opened)
}

/// How a secret is shown: a URL keeps its scheme and host (which service it goes to) and hides
/// the rest, where tokens live; anything else shows only its first characters.
pub fn mask(text: &str) -> String {
    if let Ok(url) = reqwest::Url::parse(text)
        && matches!(url.scheme(), "http" | "https")
        && let Some(host) = url.host_str()
    {
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        return format!("{}://{host}{port}/••••••", url.scheme());
    }
    hubmon_state::mask_secret(text)
}

/// A config (secrets in the clear) as the API shows it: every secret masked.
pub fn masked(kind: ChannelKind, config: &Value) -> Value {
    let mut shown = config.clone();
    let _ = for_each_secret(kind, &mut shown, |text| {
        *text = mask(text);
        Ok(())
    });
    shown
}

/// For an update: a secret field left out, or sent back masked, keeps its current value.
pub fn keep_secrets(kind: ChannelKind, incoming: &mut Value, current: &Value) {
    let (Value::Object(incoming), Value::Object(current)) = (incoming, current) else {
        return;
    };
    for field in kind.secret_fields() {
        let Some(existing) = current.get(*field) else {
            continue;
        };
        match (incoming.get_mut(*field), existing) {
            (None, _) => {
                incoming.insert((*field).to_string(), existing.clone());
            }
            (Some(Value::String(text)), Value::String(old)) if *text == mask(old) => {
                *text = old.clone();
            }
            (Some(Value::Object(map)), Value::Object(old)) => {
                for (name, value) in map.iter_mut() {
                    if let (Value::String(text), Some(Value::String(old))) = (&*value, old.get(name))
                        && *text == mask(old)
                    {
                        *value = Value::String(old.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn invalid(kind: ChannelKind, config: Value) -> (String, String) {
        match ChannelSettings::parse(kind, &config) {
            Err(Error::InvalidSettings { field, message }) => (field, message),
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert_eq!(invalid(ChannelKind::Slack, json!({"webhook_url": "ftp://x"})).0, "config.webhook_url");
        assert_eq!(invalid(ChannelKind::Slack, json!({})).0, "config.webhook_url");
        assert_eq!(invalid(ChannelKind::Slack, json!({"webhook_url": "https://h/x", "colour": 1})).0, "config.colour");
        assert_eq!(
            invalid(ChannelKind::Email, json!({"smtp_host": "h", "from": "a@b.c", "to": ["x@y.z\r\nBcc: e@vil"]})).0,
            "config.to"
        );
        assert_eq!(invalid(ChannelKind::Email, json!({"smtp_host": "h", "from": "a@b.c", "to": []})).0, "config.to");
        assert_eq!(
            invalid(ChannelKind::Webhook, json!({"webhook_url": "http://h/", "headers": {"X-A": "1\r\nX-B: 2"}})).0,
            "config.headers.X-A"
        );
        assert_eq!(
            invalid(ChannelKind::Slack, json!({"webhook_url": "https://h/x", "title_template": "{{ oops"})).0,
            "config.title_template"
        );
        assert_eq!(
            invalid(ChannelKind::Slack, json!({"webhook_url": "https://h/x", "max_attempts": 0})).0,
            "config.max_attempts"
        );
        assert_eq!(
            invalid(ChannelKind::Dingtalk, json!({"webhook_url": "https://h/x", "secret": " "})).0,
            "config.secret"
        );
        assert!("pager".parse::<ChannelKind>().is_err());
    }

    #[test]
    fn defaults_follow_the_kind() {
        let settings = ChannelSettings::parse(ChannelKind::Dingtalk, &json!({"webhook_url": "https://h/x"})).unwrap();
        assert_eq!(settings.rate_per_minute, 20);
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
        let settings = ChannelSettings::parse(
            ChannelKind::Email,
            &json!({"smtp_host": "mail", "security": "tls", "from": "hubmon <a@b.c>", "to": ["x@y.z"], "timeout": "3s"}),
        )
        .unwrap();
        let KindSettings::Email(email) = &settings.kind else { panic!() };
        assert_eq!(email.port(), 465);
        assert_eq!(settings.timeout, Duration::from_secs(3));
    }

    #[test]
    fn secrets_are_sealed_masked_and_kept_on_update() {
        let secrets = Secrets::generate();
        let config = json!({"webhook_url": "https://oapi.example/robot/send?access_token=abcdef123456", "secret": "SECxyz123456789", "at_all": true});
        let sealed = seal(ChannelKind::Dingtalk, &config, &secrets).unwrap();
        assert!(!sealed.to_string().contains("abcdef123456"));
        assert!(!sealed.to_string().contains("SECxyz"));
        assert_eq!(sealed["at_all"], json!(true));
        let opened = open(ChannelKind::Dingtalk, &sealed, &secrets).unwrap();
        assert_eq!(opened, config);
        let shown = masked(ChannelKind::Dingtalk, &opened);
        assert!(!shown.to_string().contains("abcdef123456"));
        assert_eq!(shown["webhook_url"], "https://oapi.example/••••••");
        assert_eq!(shown["secret"], "SECx••••••");

        let mut update = json!({"webhook_url": shown["webhook_url"], "at_all": false});
        keep_secrets(ChannelKind::Dingtalk, &mut update, &opened);
        assert_eq!(update["webhook_url"], config["webhook_url"]);
        assert_eq!(update["secret"], config["secret"]);
    }
}
