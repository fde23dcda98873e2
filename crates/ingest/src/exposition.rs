//! Parser for the Prometheus text exposition format (0.0.4) and OpenMetrics text (1.0):
//! what scrape targets such as node_exporter answer.
//!
//! Differences between the two that matter here: OpenMetrics timestamps are seconds (text
//! format: milliseconds), it ends with `# EOF`, counters' samples carry `_total`, and samples
//! may have exemplars after ` # `, which are ignored. `# HELP`, `# TYPE` and `# UNIT` become
//! [`Metadata`].

use std::collections::BTreeMap;

use hubmon_model::METRIC_NAME;

/// Which dialect a body is in, from the response's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    PrometheusText,
    OpenMetrics,
}

impl Format {
    pub fn from_content_type(content_type: &str) -> Self {
        if content_type.starts_with("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// One parsed sample: label pairs (the name included as `__name__`), value and optional
/// timestamp in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp: Option<i64>,
}

/// What `# TYPE`, `# HELP` and `# UNIT` said about a metric family.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Metadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub samples: Vec<ParsedSample>,
    pub metadata: BTreeMap<String, Metadata>,
}

/// Parses a whole body. A malformed line fails the scrape, as in Prometheus: a half-read
/// target would make `up` and staleness lie.
pub fn parse(body: &str, format: Format) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    for (index, raw) in body.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let error = |reason: String| ParseError { line: index + 1, reason };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if comment == "EOF" {
                break;
            }
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let (Some(name), rest) = (parts.next(), parts.next().unwrap_or_default()) else { continue };
            if !matches!(keyword, "TYPE" | "HELP" | "UNIT") {
                continue;
            }
            let entry = parsed.metadata.entry(name.to_string()).or_default();
            match keyword {
                "TYPE" => entry.kind = rest.trim().to_string(),
                "HELP" => entry.help = unescape_help(rest),
                _ => entry.unit = rest.trim().to_string(),
            }
            continue;
        }
        parsed.samples.push(parse_sample(line, format).map_err(error)?);
    }
    Ok(parsed)
}

fn unescape_help(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\\\", "\\")
}

fn parse_sample(line: &str, format: Format) -> Result<ParsedSample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !hubmon_model::is_valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = vec![(METRIC_NAME.to_string(), name.to_string())];
    let mut rest = &line[name_end..];
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (pairs, remainder) = parse_labels(after_brace)?;
        labels.extend(pairs);
        rest = remainder;
    }
    // Exemplars (OpenMetrics) follow " # ".
    let rest = rest.split(" # ").next().unwrap_or_default();
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("missing value")?;
    let value = parse_value(value_text).ok_or_else(|| format!("invalid value {value_text:?}"))?;
    let timestamp = match fields.next() {
        None => None,
        Some(text) => Some(match format {
            Format::PrometheusText => text.parse::<i64>().map_err(|_| format!("invalid timestamp {text:?}"))?,
            Format::OpenMetrics => {
                let seconds: f64 = text.parse().map_err(|_| format!("invalid timestamp {text:?}"))?;
                (seconds * 1000.0).round() as i64
            }
        }),
    };
    if fields.next().is_some() {
        return Err("unexpected text after the timestamp".into());
    }
    Ok(ParsedSample { labels, value, timestamp })
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

type LabelPairs = Vec<(String, String)>;

/// Parses `a="x",b="y"}` and returns the pairs and the text after the closing brace.
fn parse_labels(text: &str) -> Result<(LabelPairs, &str), String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((pairs, after));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = rest[..eq].trim();
        if !hubmon_model::is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[eq + 1..].trim_start();
        rest = rest.strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        pairs.push((name.to_string(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma.trim_start();
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_exporter_style_text() {
        let body = "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
                    # TYPE node_cpu_seconds_total counter\n\
                    node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12345.67\n\
                    node_load1 0.5 1700000000000\n\
                    weird{path=\"C:\\\\dir\",msg=\"say \\\"hi\\\"\\n\"} +Inf\n\
                    \n";
        let parsed = parse(body, Format::PrometheusText).unwrap();
        assert_eq!(parsed.samples.len(), 3);
        assert_eq!(parsed.samples[0].labels[1], ("cpu".to_string(), "0".to_string()));
        assert_eq!(parsed.samples[0].value, 12345.67);
        assert_eq!(parsed.samples[1].timestamp, Some(1_700_000_000_000));
        assert_eq!(parsed.samples[2].labels[1].1, "C:\\dir");
        assert_eq!(parsed.samples[2].labels[2].1, "say \"hi\"\n");
        assert!(parsed.samples[2].value.is_infinite());
        assert_eq!(parsed.metadata["node_cpu_seconds_total"].kind, "counter");
    }

    #[test]
    fn parses_openmetrics_with_second_timestamps_exemplars_and_eof() {
        let body = "# TYPE requests counter\n# UNIT requests requests\nrequests_total 5 1700000000.5 # {trace_id=\"x\"} 1\n# EOF\nignored 1\n";
        let parsed = parse(body, Format::OpenMetrics).unwrap();
        assert_eq!(parsed.samples.len(), 1);
        assert_eq!(parsed.samples[0].timestamp, Some(1_700_000_000_500));
        assert_eq!(parsed.metadata["requests"].unit, "requests");
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (body, line) in [("ok 1\nbad{ 1\n", 2), ("x{a=b} 1", 1), ("1x 2", 1), ("x nope", 1), ("x 1 2 3", 1)] {
            let error = parse(body, Format::PrometheusText).unwrap_err();
            assert_eq!(error.line, line, "{body:?}: {error}");
        }
    }
}
