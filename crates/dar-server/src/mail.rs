//! Sending mail: the account provider's lockout-recovery notices and email codes, and the
//! recovery provider's notices that a token was exercised (through
//! [`crate::outbox::MailerNotifier`] when its outbox has an `smtp_url`).
//!
//! The account provider writes each message into its mail outbox in the same transaction as the
//! event it reports (a recovery started, a cancel link, an unlock, a new second factor held);
//! a worker reads the due rows and hands each to a [`Mailer`]:
//!
//! - [`Mailer::smtp`]: SMTP through lettre, over implicit TLS (`smtps://`) or STARTTLS that
//!   must succeed (`smtp://...?tls=required`), with rustls on aws-lc-rs. Plain SMTP is refused
//!   unless the deployment runs in development mode *and* the server is on loopback, because
//!   these messages carry cancel links and one-time codes.
//! - [`Mailer::files`]: RFC 5322 `.eml` files in a directory, one per outbox row, named after
//!   the row id (so the at-least-once worker overwrites a repeat instead of duplicating it).
//!   The demo uses it; so can a mail system that picks files up.
//!
//! Messages are built with lettre's builder, which encodes header values; a value holding a
//! line break cannot inject a header. Addresses that do not parse are a permanent failure of
//! that row, never a panic. Nothing here logs a message body (it may hold a code or a link).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dar_server::mail::{Mailer, OutgoingMail};
//!
//! let mailer = Mailer::files("/var/spool/dar/mail", "dar@ap.example.com")?;
//! let mail = OutgoingMail {
//!     id: 7,
//!     to: "alice@example.com".into(),
//!     subject: "A recovery of your account started".into(),
//!     body: "...".into(),
//! };
//! mailer.send(&mail).await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// The `Message-ID` prefix of the account provider's mail.
const DEFAULT_MESSAGE_ID_PREFIX: &str = "dar-mail";

/// How long one SMTP exchange may take before it counts as a failure.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One message to send. `Debug` leaves out the body, which may hold a code or a link.
#[derive(Clone)]
pub struct OutgoingMail {
    /// The outbox row id: names the `.eml` file and the `Message-ID`.
    pub id: i64,
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a [`Mailer`] could not be built from its settings.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// `from` is not an address (`name@domain`).
    #[error("the sender address is not a mail address")]
    BadSender,
    /// The SMTP URL does not parse, or names an unsupported scheme or option.
    #[error("the SMTP URL is not usable (smtps://host[:port] or smtp://host[:port]?tls=required)")]
    BadUrl,
    /// The URL asks for plain SMTP outside development on loopback.
    #[error(
        "plain SMTP is refused: use smtps:// or smtp://...?tls=required (plain is allowed only \
         in development, to a loopback server)"
    )]
    PlainSmtp,
    /// The CA file could not be read or holds no certificate.
    #[error("the SMTP CA file {file} could not be used")]
    CaFile {
        /// The file named in the configuration.
        file: PathBuf,
    },
}

/// Why one message was not sent. No variant holds any part of the message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The recipient address does not parse: retrying cannot help.
    #[error("the recipient address is not a mail address")]
    BadRecipient,
    /// The message could not be built (a header value lettre refuses): permanent.
    #[error("the message could not be built")]
    Build,
    /// The SMTP server refused the message permanently (a 5xx reply).
    #[error("the SMTP server refused the message")]
    Rejected,
    /// The server could not be reached, timed out, or answered 4xx: try again later.
    #[error("the SMTP server is unavailable")]
    Unavailable,
    /// The `.eml` file could not be written: try again later.
    #[error("the mail file could not be written")]
    File,
}

impl MailError {
    /// A short stable code for the outbox row's `last_error` and for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRecipient => "bad-recipient",
            Self::Build => "build",
            Self::Rejected => "rejected",
            Self::Unavailable => "unavailable",
            Self::File => "file",
        }
    }

    /// Whether retrying the same message can never succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::BadRecipient | Self::Build | Self::Rejected)
    }
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// Sends [`OutgoingMail`] over SMTP or into `.eml` files.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    message_id_prefix: &'static str,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Files(_) => "files",
        };
        f.debug_struct("Mailer")
            .field("from", &self.from.email.to_string())
            .field("transport", &kind)
            .finish()
    }
}

/// The SMTP side of a [`Mailer`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct SmtpSettings {
    /// `smtps://host[:port]` (implicit TLS) or `smtp://host[:port]?tls=required` (STARTTLS);
    /// `smtp://host[:port]` (plain) only with `allow_plain_loopback`.
    pub url: String,
    /// A user name and password, when the server requires authentication.
    pub credentials: Option<(String, zeroize::Zeroizing<String>)>,
    /// A PEM CA file to trust instead of the public web roots (a private mail relay).
    pub ca_file: Option<PathBuf>,
    /// Allows plain SMTP to a loopback host (development and tests only).
    pub allow_plain_loopback: bool,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("ca_file", &self.ca_file)
            .field("allow_plain_loopback", &self.allow_plain_loopback)
            .finish_non_exhaustive()
    }
}

fn mailbox(address: &str) -> Option<Mailbox> {
    address.parse::<lettre::Address>().ok().map(Mailbox::from)
}

impl Mailer {
    /// A mailer that writes `mail-<id>.eml` files into `dir` (created when missing).
    ///
    /// # Errors
    ///
    /// [`MailSetupError::BadSender`] when `from` is not an address.
    pub fn files(dir: impl Into<PathBuf>, from: &str) -> Result<Self, MailSetupError> {
        Ok(Self {
            from: mailbox(from).ok_or(MailSetupError::BadSender)?,
            transport: Transport::Files(dir.into()),
            message_id_prefix: DEFAULT_MESSAGE_ID_PREFIX,
        })
    }

    /// A mailer that sends through the SMTP server `settings` names.
    ///
    /// # Errors
    ///
    /// [`MailSetupError`] when the sender, URL or CA file is unusable, or the URL asks for
    /// plain SMTP where it is not allowed.
    pub fn smtp(settings: &SmtpSettings, from: &str) -> Result<Self, MailSetupError> {
        let from = mailbox(from).ok_or(MailSetupError::BadSender)?;
        let url = reqwest::Url::parse(&settings.url).map_err(|_| MailSetupError::BadUrl)?;
        let host = url.host_str().ok_or(MailSetupError::BadUrl)?.to_owned();
        if !url.username().is_empty() || url.password().is_some() || url.path() != "" {
            // Credentials belong in `credentials` (read from a file), not in a URL that may
            // be printed.
            return Err(MailSetupError::BadUrl);
        }
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        if url.query_pairs().any(|(k, _)| k != "tls") {
            return Err(MailSetupError::BadUrl);
        }
        let parameters = || -> Result<TlsParameters, MailSetupError> {
            let mut builder = TlsParameters::builder(host.clone());
            if let Some(file) = &settings.ca_file {
                let ca_err = || MailSetupError::CaFile { file: file.clone() };
                let pem = crate::tls::read_pem(file).map_err(|_| ca_err())?;
                let cert = Certificate::from_pem(&pem).map_err(|_| ca_err())?;
                builder = builder.add_root_certificate(cert);
            }
            builder.build_rustls().map_err(|_| MailSetupError::BadUrl)
        };
        let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None) => (Tls::Wrapper(parameters()?), 465),
            ("smtp", Some("required")) => (Tls::Required(parameters()?), 587),
            ("smtp", None) => {
                let loopback = host == "localhost"
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !(settings.allow_plain_loopback && loopback) {
                    return Err(MailSetupError::PlainSmtp);
                }
                (Tls::None, 25)
            }
            _ => return Err(MailSetupError::BadUrl),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Self {
            from,
            transport: Transport::Smtp(builder.build()),
            message_id_prefix: DEFAULT_MESSAGE_ID_PREFIX,
        })
    }

    /// The same mailer, naming messages `<{prefix}-{id}@{sender's domain}>` instead of
    /// `<dar-mail-{id}@...>`: for a second outbox whose row ids would repeat the first's.
    #[must_use]
    pub fn with_message_id_prefix(mut self, prefix: &'static str) -> Self {
        self.message_id_prefix = prefix;
        self
    }

    /// The sender address.
    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    /// Builds the RFC 5322 message for `mail`.
    ///
    /// # Errors
    ///
    /// [`MailError::BadRecipient`] or [`MailError::Build`].
    pub fn message(&self, mail: &OutgoingMail) -> Result<Message, MailError> {
        let to = mailbox(&mail.to).ok_or(MailError::BadRecipient)?;
        let domain = self.from.email.domain().to_owned();
        let body = body(&mail.body);
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!(
                "<{}-{}@{domain}>",
                self.message_id_prefix, mail.id
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|_| MailError::Build)
    }

    /// The file [`Mailer::files`] writes for the row `id`, if this mailer writes files.
    pub fn path_for(&self, id: i64) -> Option<PathBuf> {
        match &self.transport {
            Transport::Files(dir) => Some(dir.join(format!("mail-{id}.eml"))),
            Transport::Smtp(_) => None,
        }
    }

    /// Sends one message.
    ///
    /// # Errors
    ///
    /// [`MailError`]; [`MailError::is_permanent`] tells whether to retry.
    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = self.message(mail)?;
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(MailError::Rejected),
                Err(_) => Err(MailError::Unavailable),
            },
            Transport::Files(dir) => write_file(dir, mail.id, &message.formatted()).await,
        }
    }
}

/// The mailer a mail section of the configuration describes: SMTP through `smtp` (the password
/// read from its `smtp_password_file`), else `.eml` files in `dir`. Plain SMTP is allowed only
/// in `development`, to a loopback host.
///
/// # Errors
///
/// What is wrong, for the caller's error (never the password).
pub fn mailer_for(
    smtp: Option<&crate::config::SmtpServer>,
    dir: &Path,
    from: &str,
    development: bool,
) -> Result<Mailer, String> {
    let Some(smtp) = smtp else {
        return Mailer::files(dir, from).map_err(|e| e.to_string());
    };
    let credentials = match (&smtp.user, &smtp.password_file) {
        (Some(user), Some(file)) => {
            let text = crate::state::read_secret_file(file)
                .map_err(|reason| format!("smtp_password_file {}: {reason}", file.display()))?;
            Some((
                user.clone(),
                zeroize::Zeroizing::new(text.trim_end().to_owned()),
            ))
        }
        (None, None) => None,
        _ => return Err("smtp_user and smtp_password_file go together".to_owned()),
    };
    let settings = SmtpSettings {
        url: smtp.url.clone(),
        credentials,
        ca_file: smtp.ca_file.clone(),
        allow_plain_loopback: development,
    };
    Mailer::smtp(&settings, from).map_err(|e| e.to_string())
}

/// The body as 8bit text when RFC 2045 allows it (CRLF line ends, no line over 998 octets, no
/// NUL), else lettre's own choice. lettre's chooser picks quoted-printable for any line over 76
/// characters, and every link in these messages is longer: quoted-printable would cut the links
/// and codes with `=` soft breaks, which a person reading the raw `.eml` cannot click or copy.
fn body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let fits = !crlf.contains('\0')
        && !crlf
            .split("\r\n")
            .any(|line| line.len() > 998 || line.contains('\r'));
    if fits {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
    } else {
        Body::new(text.to_owned())
    }
}

/// Writes through a temporary name and renames, so a reader never sees half a message.
async fn write_file(dir: &Path, id: i64, bytes: &[u8]) -> Result<(), MailError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|_| MailError::File)?;
    let tmp = dir.join(format!(".mail-{id}.eml.tmp"));
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|_| MailError::File)?;
    tokio::fs::rename(&tmp, dir.join(format!("mail-{id}.eml")))
        .await
        .map_err(|_| MailError::File)
}

#[cfg(test)]
pub(crate) mod tests;
