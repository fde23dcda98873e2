//! Email over SMTP (lettre, rustls): STARTTLS, implicit TLS or plain for a local relay,
//! optional authentication, several recipients, multipart text + HTML.
//!
//! SMTP 4xx replies are retryable, 5xx are permanent (a refused recipient must not cause a
//! retry storm). Addresses were parsed when the channel was saved; the subject is one line by
//! construction (see `template`).

use std::time::Duration;

use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Delivery, Receipt, SendError};
use crate::settings::{EmailSettings, SmtpSecurity, mailbox};

pub fn message(settings: &EmailSettings, delivery: &Delivery<'_>) -> Result<Message, SendError> {
    let invalid = |e: crate::Error| SendError::permanent(e.to_string());
    let mut builder = Message::builder().from(mailbox("config.from", &settings.from).map_err(invalid)?);
    for to in &settings.to {
        builder = builder.to(mailbox("config.to", to).map_err(invalid)?);
    }
    let rendered = delivery.rendered;
    let html = rendered.html.clone().unwrap_or_else(|| rendered.body.clone());
    builder
        .subject(rendered.title.clone())
        .multipart(MultiPart::alternative_plain_html(rendered.body.clone(), html))
        .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))
}

fn transport(settings: &EmailSettings, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(settings.smtp_host.clone())
            .dangerous_accept_invalid_certs(settings.tls_insecure_skip_verify);
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| SendError::permanent(format!("cannot read config.ca_file {}: {e}", path.display())))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|e| SendError::permanent(format!("config.ca_file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build_rustls().map_err(|e| SendError::permanent(format!("TLS setup failed: {e}")))
    };
    let tls = match settings.security {
        SmtpSecurity::Starttls => Tls::Required(tls_parameters()?),
        SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
        SmtpSecurity::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.smtp_host.as_str())
        .port(settings.port())
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(username) = &settings.username {
        builder =
            builder.credentials(Credentials::new(username.clone(), settings.password.clone().unwrap_or_default()));
    }
    Ok(builder.build())
}

pub async fn send(settings: &EmailSettings, delivery: &Delivery<'_>, timeout: Duration) -> Result<Receipt, SendError> {
    let email = message(settings, delivery)?;
    let transport = transport(settings, timeout)?;
    match transport.send(email).await {
        Ok(response) => Ok(Receipt {
            status_code: code_number(&response.code().to_string()),
            detail: response.message().collect::<Vec<_>>().join(" "),
        }),
        Err(error) => {
            let status_code = error.status().and_then(|code| code_number(&code.to_string()));
            let text = describe(&error);
            Err(SendError {
                // Permanent means the server said 5xx; everything else (4xx, a dropped
                // connection, a timeout) may pass later.
                retryable: !error.is_permanent(),
                status_code,
                retry_after: None,
                message: format!("SMTP: {text}"),
            })
        }
    }
}

fn code_number(text: &str) -> Option<u16> {
    text.get(..3)?.parse().ok()
}

fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = inner.source();
    }
    text
}
