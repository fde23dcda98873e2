//! `http`: one request, judged by status, body and (for HTTPS) the certificate's expiry.
//!
//! The client is built once per definition: redirect policy, TLS verification (on by
//! default), extra CAs, and the link-local guard as its resolver. Connections are not kept
//! between runs, so every run measures and sees what a new client would: DNS, connect, TLS
//! handshake and the certificate served now.
//!
//! Response bodies never travel further than a short, sanitised excerpt in the details of a
//! failed run; at most [`MAX_BODY`] bytes are read at all.

use std::sync::Arc;
use std::time::Instant;

use reqwest::redirect::Policy;

use crate::definition::{HttpTarget, mask_url};
use crate::guard::{self, GuardedResolver};
use crate::kinds::{Failure, chain, excerpt, millis};
use crate::status::Observation;

const MAX_BODY: usize = 1024 * 1024;
const EXCERPT_CHARS: usize = 200;
const MAX_REDIRECTS: usize = 10;

pub struct HttpProbe {
    client: reqwest::Client,
    target: HttpTarget,
    body_regex: Option<regex::Regex>,
    allow_link_local: bool,
}

impl HttpProbe {
    pub fn new(target: &HttpTarget, allow_link_local: bool) -> Result<Self, Failure> {
        let policy = if target.follow_redirects {
            Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(Failure::new(format!("more than {MAX_REDIRECTS} redirects")));
                }
                let refused = attempt.url().host_str().and_then(|host| guard::refuse_literal(host, allow_link_local));
                match refused {
                    Some(reason) => attempt.error(Failure::new(format!("redirect refused: {reason}"))),
                    None => attempt.follow(),
                }
            })
        } else {
            Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("hubmon-healthcheck/", env!("CARGO_PKG_VERSION")))
            .redirect(policy)
            .tls_info(true)
            .danger_accept_invalid_certs(!target.tls_verify)
            .pool_max_idle_per_host(0);
        if !allow_link_local {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        if let Some(path) = &target.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Failure::new(format!("cannot read ca_file {}: {e}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Failure::new(format!("ca_file {} holds no PEM certificates: {e}", path.display())))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client =
            builder.build().map_err(|e| Failure::new(format!("cannot build the HTTP client: {}", chain(&e))))?;
        let body_regex = match &target.body_regex {
            Some(pattern) => Some(regex::Regex::new(pattern).map_err(|e| Failure::new(format!("body_regex: {e}")))?),
            None => None,
        };
        Ok(Self { client, target: target.clone(), body_regex, allow_link_local })
    }

    pub async fn run(&self) -> Result<Observation, Failure> {
        let target = &self.target;
        if let Some(host) = reqwest::Url::parse(&target.url).ok().as_ref().and_then(|u| u.host_str())
            && let Some(reason) = guard::refuse_literal(host, self.allow_link_local)
        {
            return Err(Failure::new(reason));
        }
        let method = reqwest::Method::from_bytes(target.method.as_bytes())
            .map_err(|_| Failure::new(format!("{:?} is not an HTTP method", target.method)))?;
        let mut request = self.client.request(method, &target.url);
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &target.body {
            request = request.body(body.clone());
        }

        let started = Instant::now();
        let mut response =
            request.send().await.map_err(|e| Failure::new(format!("request failed: {}", chain(&e.without_url()))))?;
        let status = response.status();
        let final_url = mask_url(response.url().as_str());
        let certificate = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .and_then(certificate_expiry);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::new(format!("reading the response failed: {}", chain(&e.without_url()))))?
        {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                body.truncate(MAX_BODY);
                break;
            }
        }
        let latency = started.elapsed();

        let mut observation = Observation::healthy(format!("HTTP {} in {:.1} ms", status.as_u16(), millis(latency)))
            .with_latency(latency)
            .detail("status_code", status.as_u16())
            .detail("url", final_url);
        if let Some((days, not_after)) = certificate {
            observation.cert_expiry_days = Some(days);
            observation = observation
                .detail("cert_expiry_days", (days * 10.0).round() / 10.0)
                .detail("cert_not_after", not_after);
        }

        let status_ok = if target.expected_status.is_empty() {
            status.is_success()
        } else {
            target.expected_status.contains(&status.as_u16())
        };
        let failure = if !status_ok {
            let expected = if target.expected_status.is_empty() {
                "2xx".to_string()
            } else {
                target.expected_status.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
            };
            Some(format!("HTTP {} (expected {expected})", status.as_u16()))
        } else {
            self.judge_body(&body)
        };
        if let Some(message) = failure {
            let mut failed = Observation { status: hubmon_model::HealthStatus::Unhealthy, message, ..observation };
            failed.details.insert("body_excerpt".into(), excerpt(&body, EXCERPT_CHARS).into());
            return Ok(failed);
        }
        if let Some(days) = observation.cert_expiry_days {
            if days < 0.0 {
                observation.status = hubmon_model::HealthStatus::Unhealthy;
                observation.message = format!("the TLS certificate expired {:.1} days ago", -days);
            } else if days < f64::from(target.cert_expiry_days) {
                observation.degrade(format!(
                    "the TLS certificate expires in {days:.1} days (warning below {} days)",
                    target.cert_expiry_days
                ));
            }
        }
        Ok(observation)
    }

    /// Why the body is not what was asked for, if it is not.
    fn judge_body(&self, body: &[u8]) -> Option<String> {
        let target = &self.target;
        let text = String::from_utf8_lossy(body);
        if let Some(needle) = &target.body_contains
            && !text.contains(needle.as_str())
        {
            return Some(format!("the body does not contain {needle:?}"));
        }
        if let Some(regex) = &self.body_regex
            && !regex.is_match(&text)
        {
            return Some(format!("the body does not match /{}/", regex.as_str()));
        }
        if let (Some(path), Some(expected)) = (&target.json_path, &target.json_equals) {
            let json: serde_json::Value = match serde_json::from_slice(body) {
                Ok(json) => json,
                Err(e) => return Some(format!("the body is not JSON ({e})")),
            };
            let found = path.trim_start_matches("$.").split('.').filter(|part| !part.is_empty()).try_fold(
                &json,
                |value, part| match value {
                    serde_json::Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                    other => other.get(part),
                },
            );
            match found {
                Some(value) if value == expected => {}
                Some(value) => return Some(format!("JSON {path} is {value}, expected {expected}")),
                None => return Some(format!("JSON {path} is missing")),
            }
        }
        None
    }
}

/// Days until the certificate's notAfter (negative when past) and that time in RFC 3339.
fn certificate_expiry(der: &[u8]) -> Option<(f64, String)> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = certificate.validity().not_after.timestamp();
    let now = hubmon_model::Timestamp::now().as_millis() as f64 / 1000.0;
    let days = (not_after as f64 - now) / 86_400.0;
    Some((days, hubmon_model::Timestamp(not_after.saturating_mul(1000)).to_rfc3339()))
}
