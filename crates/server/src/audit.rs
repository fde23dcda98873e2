//! What goes into an audit entry's summary: the request body with every secret masked.
//!
//! The entries themselves are written by the audit layer (`http::middleware::audit`) for
//! every mutating call, and read through `GET /api/v1/audit`; nothing can change them.

use serde_json::Value;

/// Keys whose values never reach the audit log, matched case-insensitively as substrings.
const SECRET_KEY_PARTS: [&str; 7] = ["password", "secret", "token", "key", "authorization", "credential", "webhook"];

/// Longest summary kept; larger bodies are reduced to their top-level keys.
const MAX_SUMMARY_CHARS: usize = 4096;

pub const MASK: &str = "***";

/// A summary of a request body for the audit log: JSON with secrets masked, or its size.
pub fn summarize_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return serde_json::json!({ "body_bytes": bytes.len() });
    };
    mask_secrets(&mut value);
    if value.to_string().len() <= MAX_SUMMARY_CHARS {
        return value;
    }
    let keys: Vec<Value> = match &value {
        Value::Object(map) => map.keys().take(50).map(|k| Value::String(k.clone())).collect(),
        _ => Vec::new(),
    };
    serde_json::json!({ "truncated": true, "body_bytes": bytes.len(), "keys": keys })
}

/// Replaces the value of every secret-looking key, at any depth, with `***`.
pub fn mask_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_KEY_PARTS.iter().any(|part| lower.contains(part)) && !inner.is_null() {
                    *inner = Value::String(MASK.to_string());
                } else {
                    mask_secrets(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        Value::String(text) => {
            if let Some(masked) = mask_url_password(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// `scheme://user:password@host…` with the password replaced (DSNs in health checks and
/// channels); `None` when `text` holds no such credentials.
fn mask_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (credentials, host) = rest[..authority_end].rsplit_once('@')?;
    let (user, _password) = credentials.split_once(':')?;
    Some(format!("{scheme}://{user}:{MASK}@{host}{}", &rest[authority_end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_in_urls_are_masked_wherever_they_are() {
        let mut value =
            json!({"url": "postgres://app:s3cret@db:5432/x?sslmode=require", "plain": "https://a.test/x@y"});
        mask_secrets(&mut value);
        assert_eq!(value["url"], "postgres://app:***@db:5432/x?sslmode=require");
        assert_eq!(value["plain"], "https://a.test/x@y", "an @ in the path is not a credential");
    }

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let body = json!({
            "username": "alice",
            "password": "hunter22",
            "config": {"webhook_url": "https://hooks.example/T0/B0/xyz", "channel": "#ops", "nested": [{"api_key": "k"}]},
            "role": "viewer"
        });
        let summary = summarize_body(body.to_string().as_bytes());
        assert_eq!(
            summary,
            json!({
                "username": "alice",
                "password": "***",
                "config": {"webhook_url": "***", "channel": "#ops", "nested": [{"api_key": "***"}]},
                "role": "viewer"
            })
        );
        assert!(!summary.to_string().contains("hunter22"));
    }

    #[test]
    fn non_json_and_huge_bodies_are_summarised_by_size() {
        assert_eq!(summarize_body(b"not json"), json!({"body_bytes": 8}));
        assert_eq!(summarize_body(b""), Value::Null);
        let big = json!({"name": "x".repeat(10_000), "password": "p"});
        let summary = summarize_body(big.to_string().as_bytes());
        assert_eq!(summary["truncated"], json!(true));
        assert_eq!(summary["keys"], json!(["name", "password"]));
    }
}
