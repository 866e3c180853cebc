//! Email over SMTP with lettre: STARTTLS, implicit TLS or plain (a local
//! relay), optional authentication and an extra CA for private relays. The
//! message is multipart (plain text + HTML); its Message-ID is derived from
//! the delivery id, so a mail resent after a crash can be recognised.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::NotifyError;
use super::config::{SmtpSecurity, SmtpSettings};
use super::outbox::Outcome;
use super::render::Email;

/// An SMTP client for one relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
    /// Deadline of one whole SMTP conversation (lettre's timeout is per read/write).
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("relay", &self.relay).finish()
    }
}

impl Mailer {
    pub fn new(smtp: &SmtpSettings) -> Result<Mailer, NotifyError> {
        let tls = match smtp.security {
            SmtpSecurity::Plain => Tls::None,
            security => {
                let mut builder = TlsParameters::builder(smtp.host.clone());
                if let Some(file) = &smtp.ca_file {
                    let pem = std::fs::read(file).map_err(|error| {
                        NotifyError::Setup(format!("`notify.smtp.ca_file` {}: {error}", file.display()))
                    })?;
                    let certificate = Certificate::from_pem(&pem).map_err(|error| {
                        NotifyError::Setup(format!(
                            "`notify.smtp.ca_file` {} is not a PEM certificate: {error}",
                            file.display()
                        ))
                    })?;
                    builder = builder.add_root_certificate(certificate);
                }
                let parameters = builder
                    .build_rustls()
                    .map_err(|error| NotifyError::Setup(format!("SMTP TLS for {}: {error}", smtp.host)))?;
                if security == SmtpSecurity::Tls {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        let from = smtp
            .from
            .parse::<Mailbox>()
            .map_err(|error| NotifyError::Setup(format!("`notify.smtp.from`: {error}")))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
            relay: format!("{}:{}", smtp.host, smtp.port),
            timeout: smtp.timeout,
        })
    }

    /// Send one rendered email to `to`.
    pub async fn send(&self, to: &[String], email: &Email, delivery_id: &str) -> Outcome {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.clone())
            .message_id(Some(format!("<{delivery_id}@trailwarden>")));
        for address in to {
            match address.parse::<Mailbox>() {
                Ok(mailbox) => builder = builder.to(mailbox),
                Err(error) => {
                    return Outcome::Failed {
                        error: format!("recipient {address}: {error}"),
                        status: None,
                        permanent: true,
                    };
                }
            }
        }
        let message = match builder.multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        )) {
            Ok(message) => message,
            Err(error) => {
                return Outcome::Failed {
                    error: format!("building the message: {error}"),
                    status: None,
                    permanent: true,
                };
            }
        };
        let sent = match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(sent) => sent,
            Err(_) => {
                return Outcome::Failed {
                    error: format!(
                        "SMTP {}: no answer within {} (notify.smtp.timeout)",
                        self.relay,
                        humantime::format_duration(self.timeout)
                    ),
                    status: None,
                    permanent: false,
                };
            }
        };
        match sent {
            Ok(response) => Outcome::Delivered {
                status: response.code().to_string().parse().ok(),
            },
            Err(error) => {
                let status = error.status().and_then(|code| code.to_string().parse().ok());
                Outcome::Failed {
                    error: format!("SMTP {}: {}", self.relay, super::describe_error(&error)),
                    status,
                    permanent: error.is_permanent(),
                }
            }
        }
    }
}
