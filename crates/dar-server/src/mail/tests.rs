use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

use super::*;

fn mail(to: &str) -> OutgoingMail {
    OutgoingMail {
        id: 42,
        to: to.to_owned(),
        subject: "A recovery of your account started".to_owned(),
        body: "Cancel it here: https://ap.test/cancel?c=abc\n".to_owned(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dar-mail-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// What a minimal loopback SMTP server saw: envelope and data of each accepted message.
#[derive(Default, Debug)]
pub(crate) struct Received {
    pub(crate) rcpt: Vec<String>,
    pub(crate) data: Vec<String>,
}

/// A plain SMTP server on loopback that accepts every message, or answers `reject` (a reply
/// line such as `550 no such user`) to `RCPT TO`.
pub(crate) async fn smtp_server(reject: Option<&'static str>) -> (u16, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Received::default()));
    let seen = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            seen.lock().unwrap().data.push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "MAIL" => b"250 ok\r\n",
                        "RCPT" => match reject {
                            Some(reply) => {
                                write.write_all(reply.as_bytes()).await.unwrap();
                                write.write_all(b"\r\n").await.unwrap();
                                continue;
                            }
                            None => {
                                seen.lock().unwrap().rcpt.push(line.clone());
                                b"250 ok\r\n"
                            }
                        },
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "RSET" | "NOOP" => b"250 ok\r\n",
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, received)
}

pub(crate) fn plain(port: u16) -> SmtpSettings {
    SmtpSettings {
        url: format!("smtp://127.0.0.1:{port}"),
        allow_plain_loopback: true,
        ..SmtpSettings::default()
    }
}

#[tokio::test]
async fn delivers_over_smtp_to_a_loopback_server() {
    let (port, received) = smtp_server(None).await;
    let mailer = Mailer::smtp(&plain(port), "dar@ap.test").unwrap();
    mailer.send(&mail("alice@example.com")).await.unwrap();
    let received = received.lock().unwrap();
    assert_eq!(received.rcpt, ["RCPT TO:<alice@example.com>"]);
    let data = &received.data[0];
    assert!(data.contains("From: dar@ap.test"), "{data}");
    assert!(data.contains("To: alice@example.com"), "{data}");
    assert!(data.contains("Message-ID: <dar-mail-42@ap.test>"), "{data}");
    assert!(
        data.contains("Cancel it here: https://ap.test/cancel?c=abc"),
        "{data}"
    );
}

#[tokio::test]
async fn a_5xx_reply_is_a_permanent_rejection() {
    let (port, _) = smtp_server(Some("550 no such user")).await;
    let mailer = Mailer::smtp(&plain(port), "dar@ap.test").unwrap();
    let err = mailer.send(&mail("nobody@example.com")).await.unwrap_err();
    assert_eq!(err, MailError::Rejected);
    assert!(err.is_permanent());
}

#[tokio::test]
async fn a_4xx_reply_is_retried_later() {
    let (port, _) = smtp_server(Some("451 try again later")).await;
    let mailer = Mailer::smtp(&plain(port), "dar@ap.test").unwrap();
    let err = mailer.send(&mail("alice@example.com")).await.unwrap_err();
    assert_eq!(err, MailError::Unavailable);
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn an_unreachable_server_is_retried_later() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = Mailer::smtp(&plain(port), "dar@ap.test").unwrap();
    let err = mailer.send(&mail("alice@example.com")).await.unwrap_err();
    assert_eq!(err, MailError::Unavailable);
}

#[test]
fn plain_smtp_is_refused_unless_allowed_and_on_loopback() {
    let mut settings = plain(2525);
    settings.allow_plain_loopback = false;
    assert!(matches!(
        Mailer::smtp(&settings, "dar@ap.test"),
        Err(MailSetupError::PlainSmtp)
    ));
    let settings = SmtpSettings {
        url: "smtp://mail.example.com:25".to_owned(),
        allow_plain_loopback: true,
        ..SmtpSettings::default()
    };
    assert!(matches!(
        Mailer::smtp(&settings, "dar@ap.test"),
        Err(MailSetupError::PlainSmtp)
    ));
}

#[test]
fn tls_urls_are_accepted_and_odd_ones_refused() {
    for url in [
        "smtps://mail.example.com",
        "smtp://mail.example.com:587?tls=required",
    ] {
        let settings = SmtpSettings {
            url: url.to_owned(),
            ..SmtpSettings::default()
        };
        assert!(Mailer::smtp(&settings, "dar@ap.test").is_ok(), "{url}");
    }
    for url in [
        "http://mail.example.com",
        "smtp://mail.example.com?tls=opportunistic",
        "smtps://user:secret@mail.example.com",
        "smtps://mail.example.com/path",
        "smtps://mail.example.com?auth=plain",
        "not a url",
    ] {
        let settings = SmtpSettings {
            url: url.to_owned(),
            ..SmtpSettings::default()
        };
        let err = Mailer::smtp(&settings, "dar@ap.test").unwrap_err();
        assert!(matches!(err, MailSetupError::BadUrl), "{url}: {err:?}");
        assert!(!err.to_string().contains("secret"));
    }
}

#[test]
fn a_sender_that_is_not_an_address_is_refused() {
    assert!(matches!(
        Mailer::files("/tmp", "not an address"),
        Err(MailSetupError::BadSender)
    ));
}

#[tokio::test]
async fn files_are_named_after_the_row_and_a_repeat_overwrites() {
    let dir = temp_dir("files");
    let mailer = Mailer::files(&dir, "dar@ap.test").unwrap();
    mailer.send(&mail("alice@example.com")).await.unwrap();
    mailer.send(&mail("alice@example.com")).await.unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["mail-42.eml"]);
    let text = std::fs::read_to_string(mailer.path_for(42).unwrap()).unwrap();
    assert!(text.contains("Subject: A recovery of your account started\r\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_recipient_is_permanent_and_header_injection_is_impossible() {
    let mailer = Mailer::files("/tmp", "dar@ap.test").unwrap();
    let err = mailer
        .message(&mail("alice@example.com\r\nBcc: eve@example.com"))
        .unwrap_err();
    assert_eq!(err, MailError::BadRecipient);
    assert!(err.is_permanent());
    let mut injected = mail("alice@example.com");
    injected.subject = "hello\r\nBcc: eve@example.com".to_owned();
    let text = String::from_utf8(mailer.message(&injected).unwrap().formatted()).unwrap();
    assert!(!text.contains("\r\nBcc:"), "{text}");
}

#[test]
fn debug_leaves_out_the_body_and_credentials() {
    let m = mail("alice@example.com");
    assert!(!format!("{m:?}").contains("cancel"));
    let settings = SmtpSettings {
        url: "smtps://mail.example.com".to_owned(),
        credentials: Some((
            "dar".to_owned(),
            zeroize::Zeroizing::new("hunter2".to_owned()),
        )),
        ..SmtpSettings::default()
    };
    assert!(!format!("{settings:?}").contains("hunter2"));
}
