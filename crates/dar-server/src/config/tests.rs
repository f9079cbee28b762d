use std::path::Path;

use super::*;
use crate::testutil::{ORIGIN, config, config_with};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("dar.toml"), Path::new("/srv/dar"))
}

/// The test configuration's text with `from` replaced by `to`.
fn variant(from: &str, to: &str) -> String {
    let base = r#"listen = "127.0.0.1:8443"
public_origin = "https://dar.test"
database = "sqlite:dar.db"
privacy_policy = "/privacy"
icon_152px = "/icon.png"

[tls]
local_ca_dir = "tls"

[account_provider]
signing_keys = ["ap.pem"]
sealing_keys = [{ id = 1, file = "seal.hex" }]
allowed_recovery_providers = ["https://rp.example.net"]

[recovery_provider]
countersign_keys = ["rp.pem"]
"#;
    assert!(base.contains(from), "fixture lacks {from:?}");
    base.replacen(from, to, 1)
}

fn invalid_key(result: Result<Config, ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { key, file, .. }) => {
            assert_eq!(file, Path::new("dar.toml"));
            key
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn syntax_message(result: Result<Config, ConfigError>) -> String {
    match result {
        Err(e @ ConfigError::Syntax { .. }) => e.to_string(),
        other => panic!("expected Syntax, got {other:?}"),
    }
}

#[test]
fn example_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dar.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.public_origin.as_str(), "https://dar.example.com");
    assert!(config.account_provider.is_some() && config.recovery_provider.is_some());
    assert_eq!(config.http_listen, Some("0.0.0.0:8080".parse().unwrap()));
    let dir = path.parent().unwrap();
    assert_eq!(
        config.tls,
        TlsSettings::LocalCa {
            dir: dir.join("tls-local"),
            names: vec!["dar.test".into()]
        }
    );
    assert_eq!(
        config.account_provider.unwrap().signing_keys,
        vec![dir.join("keys/ap-signing.pem")]
    );
}

#[test]
fn minimal_config_gets_defaults() {
    let c = config();
    assert_eq!(c.public_origin.as_str(), ORIGIN);
    assert!(!c.development);
    assert_eq!(c.http_listen, None);
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.body_limit_bytes, 64 * 1024);
    assert_eq!(c.log, LogSettings::default());
    assert_eq!(c.privacy_policy.as_string(), "https://dar.test/privacy");
    let ap = c.account_provider.as_ref().unwrap();
    assert_eq!(ap.save_token_return_path, "/dar/save-token-return");
    assert_eq!(
        ap.recover_account_return_path,
        "/dar/recover-account-return"
    );
    assert_eq!(ap.current_sealing_key, 1);
    assert_eq!(ap.sealing_layout, Layout::DarV1);
    let rp = c.recovery_provider.as_ref().unwrap();
    assert_eq!(rp.save_token_path, "/dar/save-token");
    assert_eq!(rp.recover_account_path, "/dar/recover-account");
    assert_eq!(rp.token_max_size, 8192);
    assert_eq!(rp.authoritative_audiences, vec![c.public_origin.clone()]);
    assert_eq!(rp.allowed_account_providers, None);
    assert_eq!(rp.recovery_sign_in_max_age, Duration::from_secs(600));
}

#[test]
fn resolves_relative_paths_against_the_config_directory() {
    let c = parse(&variant(
        "signing_keys = [\"ap.pem\"]",
        "signing_keys = [\"/abs/ap.pem\"]",
    ))
    .unwrap();
    assert_eq!(
        c.account_provider.unwrap().signing_keys,
        vec![PathBuf::from("/abs/ap.pem")]
    );
    assert_eq!(
        c.recovery_provider.unwrap().countersign_keys,
        vec![PathBuf::from("/srv/dar/rp.pem")]
    );
}

#[test]
fn rejects_unknown_top_level_key_naming_it() {
    let message = syntax_message(parse(&variant("listen =", "listn = \"x\"\nlisten =")));
    assert!(message.contains("listn"), "{message}");
    assert!(message.starts_with("dar.toml:1:"), "{message}");
}

#[test]
fn rejects_unknown_key_in_a_section_naming_it() {
    let message = syntax_message(parse(&format!(
        "{}\n[limits]\nburts = 3\n",
        variant("", "")
    )));
    assert!(message.contains("burts"), "{message}");
}

#[test]
fn rejects_wrong_type_without_quoting_the_value() {
    let message = syntax_message(parse(&variant(
        "database = \"sqlite:dar.db\"",
        "database = \"sqlite:dar.db\"\ndevelopment = \"hunter2-secret\"",
    )));
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("development"), "{message}");
}

#[test]
fn rejects_missing_required_key() {
    let message = syntax_message(parse(&variant("database = \"sqlite:dar.db\"\n", "")));
    assert!(message.contains("database"), "{message}");
}

#[test]
fn rejects_http_public_origin_outside_development() {
    let key = invalid_key(parse(&variant("https://dar.test", "http://localhost:8080")));
    assert_eq!(key, "public_origin");
}

#[test]
fn accepts_http_loopback_origin_in_development() {
    let c = parse(&variant(
        "public_origin = \"https://dar.test\"",
        "development = true\npublic_origin = \"http://localhost:8080\"",
    ))
    .unwrap();
    assert_eq!(c.public_origin.as_str(), "http://localhost:8080");
    assert_eq!(
        c.privacy_policy.as_string(),
        "http://localhost:8080/privacy"
    );
}

#[test]
fn rejects_http_non_loopback_origin_even_in_development() {
    let key = invalid_key(parse(&variant(
        "public_origin = \"https://dar.test\"",
        "development = true\npublic_origin = \"http://dar.test\"",
    )));
    assert_eq!(key, "public_origin");
}

#[test]
fn normalizes_the_public_origin() {
    let c = parse(&variant("https://dar.test", "HTTPS://Dar.Test:443/")).unwrap();
    assert_eq!(c.public_origin.as_str(), "https://dar.test");
}

#[test]
fn rejects_bad_socket_address() {
    assert_eq!(
        invalid_key(parse(&variant("127.0.0.1:8443", "localhost:8443"))),
        "listen"
    );
}

#[test]
fn rejects_http_listen_equal_to_listen() {
    let text = variant(
        "listen = \"127.0.0.1:8443\"",
        "listen = \"127.0.0.1:8443\"\nhttp_listen = \"127.0.0.1:8443\"",
    );
    assert_eq!(invalid_key(parse(&text)), "http_listen");
}

#[test]
fn rejects_database_url_without_echoing_it() {
    let result = parse(&variant("sqlite:dar.db", "mysql://admin:s3cr3t@db/dar"));
    let message = result.as_ref().unwrap_err().to_string();
    assert!(!message.contains("s3cr3t"), "{message}");
    assert_eq!(invalid_key(result), "database");
}

#[test]
fn database_url_debug_is_redacted() {
    let c = parse(&variant("sqlite:dar.db", "postgres://admin:s3cr3t@db/dar")).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert_eq!(c.database.scheme(), "postgres");
    assert_eq!(c.database.expose(), "postgres://admin:s3cr3t@db/dar");
}

#[test]
fn rejects_both_tls_modes() {
    let text = variant(
        "local_ca_dir = \"tls\"",
        "local_ca_dir = \"tls\"\ncert = \"c\"\nkey = \"k\"",
    );
    assert_eq!(invalid_key(parse(&text)), "tls.local_ca_dir");
}

#[test]
fn rejects_tls_cert_without_key() {
    let text = variant("local_ca_dir = \"tls\"", "cert = \"c.pem\"");
    assert_eq!(invalid_key(parse(&text)), "tls.key");
}

#[test]
fn rejects_empty_tls_section() {
    assert_eq!(
        invalid_key(parse(&variant("local_ca_dir = \"tls\"", ""))),
        "tls"
    );
}

#[test]
fn accepts_tls_files() {
    let c = parse(&variant(
        "local_ca_dir = \"tls\"",
        "cert = \"c.pem\"\nkey = \"/k.pem\"",
    ))
    .unwrap();
    assert_eq!(
        c.tls,
        TlsSettings::Files {
            cert: PathBuf::from("/srv/dar/c.pem"),
            key: PathBuf::from("/k.pem")
        }
    );
}

#[test]
fn rejects_bad_local_name() {
    let text = variant(
        "local_ca_dir = \"tls\"",
        "local_ca_dir = \"tls\"\nlocal_names = [\"a b\"]",
    );
    assert_eq!(invalid_key(parse(&text)), "tls.local_names[0]");
}

#[test]
fn rejects_a_deployment_without_roles() {
    let text = variant("", "");
    let cut = text.find("[account_provider]").unwrap();
    assert_eq!(invalid_key(parse(&text[..cut])), "account_provider");
}

#[test]
fn rejects_endpoint_path_under_well_known() {
    let text = config_text_with_rp("save_token_path = \"/.well-known/save\"");
    assert_eq!(
        invalid_key(parse(&text)),
        "recovery_provider.save_token_path"
    );
}

#[test]
fn rejects_endpoint_path_without_leading_slash_or_with_query() {
    for bad in ["\"dar/save\"", "\"/save?x=1\"", "\"/a/../b\"", "\"/\""] {
        let text = config_text_with_rp(&format!("save_token_path = {bad}"));
        assert_eq!(
            invalid_key(parse(&text)),
            "recovery_provider.save_token_path",
            "{bad}"
        );
    }
}

#[test]
fn rejects_the_same_path_for_two_endpoints() {
    let text = config_text_with_rp("save_token_path = \"/dar/save-token-return\"");
    assert_eq!(invalid_key(parse(&text)), "recovery_provider");
}

#[test]
fn rejects_token_max_size_out_of_range() {
    for bad in ["0", "10000000"] {
        let text = config_text_with_rp(&format!("token_max_size = {bad}"));
        assert_eq!(
            invalid_key(parse(&text)),
            "recovery_provider.token_max_size"
        );
    }
}

#[test]
fn recovery_sign_in_max_age_is_between_a_minute_and_a_session() {
    for bad in ["0", "59", "43201"] {
        let text = config_text_with_rp(&format!("recovery_sign_in_max_age_secs = {bad}"));
        assert_eq!(
            invalid_key(parse(&text)),
            "recovery_provider.recovery_sign_in_max_age_secs"
        );
    }
    for (good, secs) in [("60", 60), ("43200", 43_200)] {
        let text = config_text_with_rp(&format!("recovery_sign_in_max_age_secs = {good}"));
        let c = parse(&text).unwrap();
        let rp = c.recovery_provider.as_ref().unwrap();
        assert_eq!(rp.recovery_sign_in_max_age, Duration::from_secs(secs));
    }
}

#[test]
fn rejects_bad_audience_naming_its_index() {
    let text = config_text_with_rp("authoritative_audiences = [\"https://dar.test\", \"ftp://x\"]");
    assert_eq!(
        invalid_key(parse(&text)),
        "recovery_provider.authoritative_audiences[1]"
    );
}

#[test]
fn rejects_current_sealing_key_that_is_not_listed() {
    let text = variant(
        "sealing_keys = [{ id = 1, file = \"seal.hex\" }]",
        "sealing_keys = [{ id = 1, file = \"seal.hex\" }]\ncurrent_sealing_key = 2",
    );
    assert_eq!(
        invalid_key(parse(&text)),
        "account_provider.current_sealing_key"
    );
}

#[test]
fn rejects_duplicate_sealing_key_ids() {
    let text = variant(
        "sealing_keys = [{ id = 1, file = \"seal.hex\" }]",
        "sealing_keys = [{ id = 1, file = \"a.hex\" }, { id = 1, file = \"b.hex\" }]",
    );
    assert_eq!(
        invalid_key(parse(&text)),
        "account_provider.sealing_keys[1].id"
    );
}

#[test]
fn rejects_unknown_sealing_layout() {
    let text = variant(
        "sealing_keys = [{ id = 1, file = \"seal.hex\" }]",
        "sealing_keys = [{ id = 1, file = \"seal.hex\" }]\nsealing_layout = \"v9\"",
    );
    assert_eq!(invalid_key(parse(&text)), "account_provider.sealing_layout");
}

#[test]
fn rejects_empty_allowed_recovery_providers() {
    let text = variant(
        "allowed_recovery_providers = [\"https://rp.example.net\"]",
        "allowed_recovery_providers = []",
    );
    assert_eq!(
        invalid_key(parse(&text)),
        "account_provider.allowed_recovery_providers"
    );
}

#[test]
fn rejects_too_many_signing_keys() {
    let many = (0..9)
        .map(|i| format!("\"k{i}.pem\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = variant(
        "signing_keys = [\"ap.pem\"]",
        &format!("signing_keys = [{many}]"),
    );
    assert_eq!(invalid_key(parse(&text)), "account_provider.signing_keys");
}

#[test]
fn rejects_limits_out_of_range() {
    for (line, key) in [
        ("body_limit_bytes = 10", "limits.body_limit_bytes"),
        ("request_timeout_secs = 0", "limits.request_timeout_secs"),
        ("client_timeout_secs = 0", "limits.client_timeout_secs"),
        ("client_timeout_secs = 301", "limits.client_timeout_secs"),
        (
            "connections_per_address = 0",
            "limits.connections_per_address",
        ),
        (
            "connections_per_address = 1000001",
            "limits.connections_per_address",
        ),
        ("requests_per_second = 0", "limits.requests_per_second"),
        ("burst = 0", "limits.burst"),
        ("trusted_proxies = [\"proxy\"]", "limits.trusted_proxies[0]"),
    ] {
        let text = format!("{}\n[limits]\n{line}\n", variant("", ""));
        assert_eq!(invalid_key(parse(&text)), key);
    }
}

#[test]
fn reads_limits() {
    let c = config_with(
        "",
        "[limits]\nbody_limit_bytes = 2048\nrequest_timeout_secs = 5\nrequests_per_second = 3\n\
         burst = 4\ntrusted_proxies = [\"10.0.0.2\"]\nclient_timeout_secs = 2\n\
         connections_per_address = 8\n",
    );
    assert_eq!(c.limits.connections_per_address, 8);
    assert_eq!(c.limits.body_limit_bytes, 2048);
    assert_eq!(c.limits.request_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.client_timeout, Duration::from_secs(2));
    assert_eq!(c.limits.requests_per_second, 3);
    assert_eq!(c.limits.burst, 4);
    assert_eq!(
        c.limits.trusted_proxies,
        vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn rejects_bad_log_level() {
    let text = format!("{}\n[log]\nlevel = \"dar_server=loud\"\n", variant("", ""));
    assert_eq!(invalid_key(parse(&text)), "log.level");
}

#[test]
fn reads_json_log_format() {
    let c = config_with("", "[log]\nformat = \"json\"\n");
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn protocol_paths_list_every_endpoint() {
    let c = config();
    assert_eq!(
        c.protocol_paths(),
        vec![
            "/dar/save-token-return",
            "/dar/recover-account-return",
            "/dar/save-token",
            "/dar/recover-account",
            "/dar/save-token-iframe",
        ]
    );
}

#[test]
fn local_tls_names_cover_loopback_and_the_public_host() {
    let c = parse(&variant(
        "local_ca_dir = \"tls\"",
        "local_ca_dir = \"tls\"\nlocal_names = [\"dar.test\", \"10.1.2.3\"]",
    ))
    .unwrap();
    assert_eq!(
        c.local_tls_names(),
        vec!["localhost", "127.0.0.1", "::1", "dar.test", "10.1.2.3"]
    );
}

#[test]
fn origin_host_strips_port_and_brackets() {
    assert_eq!(
        origin_host(&Origin::parse("https://a.test:8443").unwrap()),
        "a.test"
    );
    assert_eq!(
        origin_host(&Origin::parse("https://[::1]:8443").unwrap()),
        "::1"
    );
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let e = Config::load(Path::new("/nonexistent/dar.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/dar.toml"));
}

fn config_text_with_rp(line: &str) -> String {
    variant(
        "countersign_keys = [\"rp.pem\"]",
        &format!("countersign_keys = [\"rp.pem\"]\n{line}"),
    )
}

#[test]
fn status_addresses_are_parsed_and_checked() {
    let config = config_with(
        "",
        "[account_provider.status_addresses]\n\"https://rp.example.net\" = [\"192.0.2.0/24\", \"2001:db8::1\"]\n",
    );
    let ap = config.account_provider.unwrap();
    assert_eq!(ap.status_addresses.len(), 1);
    assert_eq!(ap.status_addresses[0].0.as_str(), "https://rp.example.net");
    assert_eq!(ap.status_addresses[0].1.len(), 2);

    let text = |extra: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\npublic_origin = \"https://dar.test\"\n\
             database = \"sqlite::memory:\"\nprivacy_policy = \"/privacy\"\n\
             icon_152px = \"/icon.png\"\n[tls]\nlocal_ca_dir = \"tls\"\n\
             [account_provider]\nsigning_keys = [\"ap.pem\"]\n\
             sealing_keys = [{{ id = 1, file = \"seal.hex\" }}]\n\
             allowed_recovery_providers = [\"https://rp.example.net\"]\n{extra}"
        )
    };
    for (extra, needle) in [
        (
            "[account_provider.status_addresses]\n\"https://other.example\" = [\"192.0.2.1\"]\n",
            "not in allowed_recovery_providers",
        ),
        (
            "[account_provider.status_addresses]\n\"https://rp.example.net\" = [\"nonsense\"]\n",
            "not an address",
        ),
    ] {
        let err = Config::from_toml_str(&text(extra), Path::new("t.toml"), Path::new("/etc/dar"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("account_provider.status_addresses"), "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn outbox_settings_have_defaults_and_can_be_set() {
    let c = parse(&variant("", "")).unwrap();
    let outbox = c.recovery_provider.unwrap().outbox;
    assert_eq!(outbox.interval, Duration::from_secs(10));
    assert_eq!(outbox.mail_dir, PathBuf::from("/srv/dar/mail"));
    assert_eq!(outbox.mail_from, "dar@dar.test");
    assert_eq!(outbox.site_name, "dar.test");
    assert_eq!(outbox.repudiate_url, "https://dar.test/rp/tokens");
    assert_eq!(outbox.recipient_domain, None);
    assert_eq!(outbox.smtp, None);

    let text = variant(
        "countersign_keys = [\"rp.pem\"]\n",
        "countersign_keys = [\"rp.pem\"]\n[recovery_provider.outbox]\ninterval_secs = 3\n\
         mail_dir = \"/var/spool/dar\"\nmail_from = \"noreply@dar.test\"\n\
         site_name = \"Example RP\"\nrepudiate_url = \"https://dar.test/repudiate\"\n\
         recipient_domain = \"example.com\"\n",
    );
    let outbox = parse(&text).unwrap().recovery_provider.unwrap().outbox;
    assert_eq!(outbox.interval, Duration::from_secs(3));
    assert_eq!(outbox.mail_dir, PathBuf::from("/var/spool/dar"));
    assert_eq!(outbox.mail_from, "noreply@dar.test");
    assert_eq!(outbox.site_name, "Example RP");
    assert_eq!(outbox.repudiate_url, "https://dar.test/repudiate");
    assert_eq!(outbox.recipient_domain.as_deref(), Some("example.com"));

    let text = variant(
        "countersign_keys = [\"rp.pem\"]\n",
        "countersign_keys = [\"rp.pem\"]\n[recovery_provider.outbox]\n\
         smtp_url = \"smtps://mail.dar.test\"\nsmtp_user = \"rp\"\n\
         smtp_password_file = \"smtp.pass\"\nsmtp_ca_file = \"mail-ca.pem\"\n",
    );
    let smtp = parse(&text).unwrap().recovery_provider.unwrap().outbox.smtp;
    let smtp = smtp.unwrap();
    assert_eq!(smtp.url, "smtps://mail.dar.test");
    assert_eq!(smtp.user.as_deref(), Some("rp"));
    assert_eq!(
        smtp.password_file,
        Some(PathBuf::from("/srv/dar/smtp.pass"))
    );
    assert_eq!(smtp.ca_file, Some(PathBuf::from("/srv/dar/mail-ca.pem")));

    // Plain SMTP (not in development), credentials split apart, or smtp_* keys without a server.
    for (outbox, key) in [
        ("smtp_url = \"smtp://mail.dar.test\"", "smtp_url"),
        (
            "smtp_url = \"smtps://mail.dar.test\"\nsmtp_user = \"rp\"",
            "smtp_user",
        ),
        ("smtp_password_file = \"smtp.pass\"", "smtp_password_file"),
        (
            "smtp_url = \"smtps://mail.dar.test\"\nmail_from = \"nobody\"",
            "mail_from",
        ),
    ] {
        let text = variant(
            "countersign_keys = [\"rp.pem\"]\n",
            &format!("countersign_keys = [\"rp.pem\"]\n[recovery_provider.outbox]\n{outbox}\n"),
        );
        assert_eq!(
            invalid_key(parse(&text)),
            format!("recovery_provider.outbox.{key}"),
            "{outbox}"
        );
    }

    let text = variant(
        "countersign_keys = [\"rp.pem\"]\n",
        "countersign_keys = [\"rp.pem\"]\n[recovery_provider.outbox]\ninterval_secs = 0\n",
    );
    assert_eq!(
        invalid_key(parse(&text)),
        "recovery_provider.outbox.interval_secs"
    );
    let text = variant(
        "countersign_keys = [\"rp.pem\"]\n",
        "countersign_keys = [\"rp.pem\"]\n[recovery_provider.outbox]\nunknown = 1\n",
    );
    assert!(parse(&text).is_err());
}

#[test]
fn the_lockout_policy_and_mail_default_and_can_be_set() {
    let config = parse(&variant("", "")).unwrap();
    let ap = config.account_provider.unwrap();
    assert_eq!(ap.lockout, dar_account_provider::LockoutPolicy::default());
    assert_eq!(ap.mail.from, "dar@dar.test");
    assert_eq!(ap.mail.dir, Path::new("/srv/dar/mail"));
    assert_eq!(ap.mail.smtp, None);
    assert_eq!(ap.mail.lease, Duration::from_secs(120));

    let text = variant(
        "[recovery_provider]",
        "[account_provider.lockout]\nwaiting_period_secs = 3600\n\
         [[account_provider.lockout.rules]]\nname = \"two\"\ndelegated_tokens = 2\noutcome = \"unlock\"\n\
         [account_provider.mail]\nsmtp_url = \"smtp://mail.example.com:587?tls=required\"\n\
         from = \"security@dar.test\"\nlease_secs = 30\n\n[recovery_provider]",
    );
    let ap = parse(&text).unwrap().account_provider.unwrap();
    assert_eq!(ap.mail.lease, Duration::from_secs(30));
    assert_eq!(ap.lockout.waiting_period_secs, 3600);
    assert_eq!(ap.lockout.rules.len(), 1);
    assert_eq!(ap.mail.from, "security@dar.test");
    let smtp = ap.mail.smtp.unwrap();
    assert_eq!(smtp.url, "smtp://mail.example.com:587?tls=required");
    assert_eq!(
        (smtp.user, smtp.password_file, smtp.ca_file),
        (None, None, None)
    );
}

#[test]
fn rejects_an_unsafe_lockout_policy_or_mail_setting_naming_the_key() {
    let alone = variant(
        "[recovery_provider]",
        "[[account_provider.lockout.rules]]\nname = \"friends\"\ntrusted_contacts = true\n\
         outcome = \"timed\"\n\n[recovery_provider]",
    );
    assert_eq!(invalid_key(parse(&alone)), "account_provider.lockout");
    let plain = variant(
        "[recovery_provider]",
        "[account_provider.mail]\nsmtp_url = \"smtp://mail.example.com\"\n\n[recovery_provider]",
    );
    assert_eq!(invalid_key(parse(&plain)), "account_provider.mail.smtp_url");
    let sender = variant(
        "[recovery_provider]",
        "[account_provider.mail]\nfrom = \"not an address\"\n\n[recovery_provider]",
    );
    assert_eq!(invalid_key(parse(&sender)), "account_provider.mail.from");
    let lease = variant(
        "[recovery_provider]",
        "[account_provider.mail]\nlease_secs = 0\n\n[recovery_provider]",
    );
    assert_eq!(
        invalid_key(parse(&lease)),
        "account_provider.mail.lease_secs"
    );
    let unknown = variant(
        "[recovery_provider]",
        "[account_provider.lockout]\nwaiting_days = 3\n\n[recovery_provider]",
    );
    assert!(syntax_message(parse(&unknown)).contains("waiting_days"));
}
