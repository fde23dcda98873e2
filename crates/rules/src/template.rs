//! Annotation templates in the subset of Prometheus's Go templates that rule files use:
//! `{{ $labels.name }}`, `{{ $value }}`, `{{ .Labels.name }}`, `{{ .Value }}`, the pipes
//! `humanize`, `humanizePercentage`, `humanizeDuration`, and `printf "%.2f" $value`.
//!
//! Anything else inside `{{ }}` is a syntax error when the rule is saved, rather than text
//! that silently renders wrong when the alert fires.

use std::collections::BTreeMap;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("template {text:?}: {reason}")]
pub struct TemplateError {
    pub text: String,
    pub reason: String,
}

/// A parsed template: literal text and actions, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action { source: Source, format: Format },
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Label(String),
    Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Format {
    Plain,
    Humanize,
    Percentage,
    Duration,
    /// `printf "%.Nf"`.
    Fixed(usize),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let error = |reason: &str| TemplateError { text: text.to_string(), reason: reason.to_string() };
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| error("unclosed {{"))?;
            let action = after[..close].trim().trim_start_matches('-').trim_end_matches('-').trim();
            parts.push(parse_action(action).map_err(|reason| error(&reason))?);
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err(error("}} without {{"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    pub fn render(&self, labels: &BTreeMap<String, String>, value: f64) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action { source, format } => match source {
                    Source::Label(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
                    Source::Value => out.push_str(&format_value(value, format)),
                },
            }
        }
        out
    }
}

fn parse_action(action: &str) -> Result<Part, String> {
    let mut stages = action.split('|').map(str::trim);
    let head = stages.next().unwrap_or("");
    let (source, mut format) = if let Some(spec) = head.strip_prefix("printf") {
        // printf "%.2f" $value
        let spec = spec.trim();
        let (quoted, operand) = spec
            .strip_prefix('"')
            .and_then(|s| s.split_once('"'))
            .ok_or_else(|| format!("printf needs a quoted format, got {spec:?}"))?;
        let digits = quoted
            .strip_prefix("%.")
            .and_then(|s| s.strip_suffix('f'))
            .and_then(|d| d.parse::<usize>().ok())
            .or_else(|| (quoted == "%f").then_some(6))
            .ok_or_else(|| format!("printf supports \"%.Nf\", got {quoted:?}"))?;
        (source_of(operand.trim())?, Format::Fixed(digits))
    } else {
        (source_of(head)?, Format::Plain)
    };
    for stage in stages {
        format = match stage {
            "humanize" => Format::Humanize,
            "humanizePercentage" => Format::Percentage,
            "humanizeDuration" => Format::Duration,
            other => {
                return Err(format!(
                    "unsupported function {other:?} (use humanize, humanizePercentage or humanizeDuration)"
                ));
            }
        };
    }
    Ok(Part::Action { source, format })
}

fn source_of(operand: &str) -> Result<Source, String> {
    if operand == "$value" || operand == ".Value" {
        return Ok(Source::Value);
    }
    let name = operand.strip_prefix("$labels.").or_else(|| operand.strip_prefix(".Labels."));
    match name {
        Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Ok(Source::Label(name.to_string()))
        }
        _ => Err(format!("unsupported action {operand:?} (use $labels.<name> or $value)")),
    }
}

fn format_value(value: f64, format: &Format) -> String {
    match format {
        Format::Plain => format!("{value}"),
        Format::Fixed(digits) => format!("{value:.digits$}"),
        Format::Humanize => humanize(value),
        Format::Percentage => format!("{}%", trim(value * 100.0)),
        Format::Duration => humanize_duration(value),
    }
}

/// At most four significant digits, like Go's `%.4g`, without a trailing `.0`.
fn trim(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

/// Prometheus's `humanize`: SI prefixes (k, M, G, … and m, u, n for small values).
fn humanize(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let big = ["", "k", "M", "G", "T", "P", "E"];
    let small = ["", "m", "u", "n", "p"];
    let abs = value.abs();
    if abs >= 1.0 {
        let mut scaled = value;
        let mut i = 0;
        while scaled.abs() >= 1000.0 && i + 1 < big.len() {
            scaled /= 1000.0;
            i += 1;
        }
        format!("{}{}", trim(scaled), big[i])
    } else {
        let mut scaled = value;
        let mut i = 0;
        while scaled.abs() < 1.0 && i + 1 < small.len() {
            scaled *= 1000.0;
            i += 1;
        }
        format!("{}{}", trim(scaled), small[i])
    }
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`.
fn humanize_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return format!("{seconds}");
    }
    if seconds.abs() < 1.0 {
        return format!("{}s", trim(seconds));
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let total = seconds.abs() as u64;
    let (d, h, m, s) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    format!("{sign}{}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("instance".to_string(), "web-1".to_string()), ("mountpoint".to_string(), "/".to_string())])
    }

    #[test]
    fn renders_labels_and_values_as_prometheus_does() {
        let cases = [
            ("CPU on {{ $labels.instance }} is {{ $value }}%", 93.5, "CPU on web-1 is 93.5%"),
            ("{{$labels.mountpoint}} at {{ printf \"%.1f\" $value }}", 91.234, "/ at 91.2"),
            ("{{ .Labels.instance }}: {{ .Value | humanize }}B", 2_500_000.0, "web-1: 2.5MB"),
            ("{{ $value | humanizePercentage }}", 0.0512, "5.12%"),
            ("up {{ $value | humanizeDuration }}", 93_784.0, "up 1d 2h 3m 4s"),
            ("{{ $labels.missing }}", 1.0, ""),
            ("latency {{ $value | humanize }}s", 0.0021, "latency 2.1ms"),
        ];
        for (text, value, want) in cases {
            assert_eq!(Template::parse(text).unwrap().render(&labels(), value), want, "{text}");
        }
    }

    #[test]
    fn unsupported_or_broken_templates_are_errors() {
        for bad in
            ["{{ $labels.instance", "{{ range .Alerts }}", "{{ $value | title }}", "oops }}", "{{ printf %d $value }}"]
        {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
