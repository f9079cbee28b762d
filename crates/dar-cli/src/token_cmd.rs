//! The key and token commands.

use std::io::Write as _;

use dar_core::{
    Countersign, CountersignedToken, EncodedToken, Error, Freshness, Layout, MAX_TOKEN_LEN,
    Options, Payload, Purpose, RecoveryToken, ReturnCheck, SaveCheck, SavedCheck, SealContext,
    Sealer, SealingKey, SigningKey, Token, TokenId, TokenType, TokenView,
};
use getrandom::SysRng;
use serde_json::{Map, Value};
use time::Duration;

use crate::cli::{
    CheckArgs, CountersignArgs, CountersignedVerifyArgs, DecryptArgs, InspectArgs, IssueArgs,
    KeygenArgs, VerifyArgs,
};
use crate::input;
use crate::output::{self, Failure};

pub(crate) fn keygen(args: &KeygenArgs) -> Result<(), Failure> {
    let key = SigningKey::generate(&mut SysRng)
        .map_err(|e| Failure::usage(format!("key generation failed: {e}")))?;
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| Failure::usage(format!("cannot encode key: {e}")))?;
    write_private(&args.out, pem.as_bytes(), args.force)?;
    println!("{}", key.verifying_key().to_spki_base64());
    Ok(())
}

/// Writes a private key readable by its owner only, refusing to overwrite unless asked.
fn write_private(path: &std::path::Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

pub(crate) fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let text = input::token_text(&args.token)?;
    let bytes = match input::token_bytes(&text) {
        Ok(b) => b,
        Err(e) => return Err(output::invalid(args.json, &e, Map::new())),
    };
    let view = match TokenView::decode(&bytes) {
        Ok(v) => v,
        Err(e) => return Err(output::invalid(args.json, &e.into(), Map::new())),
    };
    let inner = (view.token_type() == TokenType::Countersigned)
        .then(|| TokenView::decode(view.data()).ok())
        .flatten();
    if args.json {
        let mut m = output::token_json(&view);
        if let Some(inner) = &inner {
            m.insert("inner".into(), Value::Object(output::token_json(inner)));
        }
        output::print_json(&Value::Object(m));
    } else {
        println!("{}", output::token_text(&view, ""));
        if let Some(inner) = &inner {
            println!("  inner:\n{}", output::token_text(inner, "    "));
        }
    }
    Ok(())
}

fn freshness(check: &CheckArgs) -> Freshness {
    // A u32 number of seconds always makes a non-negative window.
    check
        .skew
        .and_then(|s| Freshness::symmetric(Duration::seconds(i64::from(s))).ok())
        .unwrap_or_default()
}

fn binding(check: &CheckArgs) -> Result<Option<Vec<u8>>, Failure> {
    check
        .binding
        .as_deref()
        .map(|b| input::hex_arg("binding", b))
        .transpose()
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let keys = input::public_keys(&args.keys)?;
    let issuer = input::origin("issuer", &args.issuer)?;
    let audiences = args
        .audiences
        .iter()
        .map(|a| input::origin("audience", a))
        .collect::<Result<Vec<_>, _>>()?;
    let now = input::now(args.check.now.as_deref())?;
    let binding = binding(&args.check)?;
    let text = input::token_text(&args.token)?;
    let json = args.check.json;
    let bytes = input::token_bytes(&text).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let token = RecoveryToken::decode(&bytes).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let fields = output::token_json(token.view());
    let check = SaveCheck {
        issuer: &issuer,
        issuer_keys: &keys,
        authoritative: &audiences,
        freshness: freshness(&args.check),
        binding: binding.as_deref(),
    };
    match token.verify_for_save(&check, now) {
        Ok(verified) => {
            report_valid(json, fields, || output::token_text(verified.view(), ""));
            Ok(())
        }
        Err(e) => Err(output::invalid(json, &e, fields)),
    }
}

pub(crate) fn verify_countersigned(args: &CountersignedVerifyArgs) -> Result<(), Failure> {
    let rp_keys = input::public_keys(&args.rp_keys)?;
    let ap_keys = input::public_keys(&args.ap_keys)?;
    let ap = input::origin("ap", &args.ap)?;
    let rp = input::origin("rp", &args.rp)?;
    let now = input::now(args.check.now.as_deref())?;
    let binding = binding(&args.check)?;
    let text = input::token_text(&args.token)?;
    let json = args.check.json;
    let bytes = input::token_bytes(&text).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let token =
        CountersignedToken::decode(&bytes).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let mut fields = output::token_json(token.outer());
    fields.insert(
        "inner".into(),
        Value::Object(output::token_json(token.inner().view())),
    );
    let check = ReturnCheck {
        account_provider: &ap,
        own_keys: &ap_keys,
        recovery_provider: &rp,
        countersign_keys: &rp_keys,
        freshness: freshness(&args.check),
        binding: binding.as_deref(),
    };
    match token.verify_return(&check, now) {
        Ok(verified) => {
            report_valid(json, fields, || {
                format!(
                    "{}\n  inner:\n{}",
                    output::token_text(verified.outer(), ""),
                    output::token_text(verified.inner(), "    ")
                )
            });
            Ok(())
        }
        Err(e) => Err(output::invalid(json, &e, fields)),
    }
}

fn report_valid(json: bool, mut fields: Map<String, Value>, text: impl FnOnce() -> String) {
    if json {
        fields.insert("valid".into(), true.into());
        fields.insert("error".into(), Value::Null);
        output::print_json(&Value::Object(fields));
    } else {
        println!("valid\n{}", text());
    }
}

pub(crate) fn issue(args: &IssueArgs) -> Result<(), Failure> {
    let key = input::private_key(&args.key)?;
    let issuer = input::origin("issuer", &args.issuer)?;
    let audience = input::origin("audience", &args.audience)?;
    let now = input::now(args.now.as_deref())?;
    let token_id = token_id_arg(args.token_id.as_deref())?;
    let mut options = Options::NONE;
    if args.status_requested {
        options = options | Options::STATUS_REQUESTED;
    }
    if args.low_friction {
        options = options | Options::LOW_FRICTION;
    }
    let data = match (&args.data_hex, &args.account, &args.aes_key) {
        (Some(hex), _, _) => input::hex_arg("data-hex", hex)?,
        (None, Some(account), Some(aes)) => {
            let layout: Layout = args
                .layout
                .parse()
                .map_err(|_| Failure::usage("--layout must be darrrr-v0 or dar-v1"))?;
            let sealer = sealer(aes, args.aes_key_id, layout)?;
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| Failure::usage(format!("rng: {e}")))?;
            let payload = Payload {
                account_id: account.clone(),
                created_at: now.unix_timestamp(),
                secret,
                purpose: Purpose::AccountRecovery,
            };
            let plaintext = payload
                .to_bytes()
                .map_err(|e| Failure::usage(e.to_string()))?;
            let ctx = SealContext {
                token_id: token_id.as_bytes(),
                issuer: issuer.as_str(),
                audience: audience.as_str(),
            };
            sealer
                .seal(&plaintext, &ctx, &mut SysRng)
                .map_err(|e| Failure::usage(e.to_string()))?
        }
        _ => Vec::new(),
    };
    let mut token = Token::recovery(token_id, options, issuer, audience, now, data);
    if let Some(b) = &args.binding {
        token.binding = input::hex_arg("binding", b)?;
    }
    let encoded = token
        .sign(&key, MAX_TOKEN_LEN)
        .map_err(|e| Failure::usage(format!("cannot issue: {} ({})", e, e.code())))?;
    print_token(&encoded, args.json)
}

fn sealer(aes_hex: &str, id: u32, layout: Layout) -> Result<Sealer, Failure> {
    let key = SealingKey::from_hex(id, aes_hex)
        .map_err(|_| Failure::usage("--aes-key must be 64 hex digits (256 bits)"))?;
    Sealer::new(vec![key], id, layout).map_err(|e| Failure::usage(e.to_string()))
}

pub(crate) fn decrypt(args: &DecryptArgs) -> Result<(), Failure> {
    let want_layout: Option<Layout> = args
        .layout
        .as_deref()
        .map(|l| {
            l.parse()
                .map_err(|_| Failure::usage("--layout must be darrrr-v0 or dar-v1"))
        })
        .transpose()?;
    // Without --layout, detect it: this command inspects data, it does not decide trust.
    let sealer = match want_layout {
        Some(layout) => sealer(&args.aes_key, args.aes_key_id, layout)?,
        None => sealer(&args.aes_key, args.aes_key_id, Layout::DarV1)?.also_open_darrrr_v0(),
    };
    let text = input::token_text(&args.token)?;
    let json = args.json;
    let bytes = input::token_bytes(&text).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let outer =
        TokenView::decode(&bytes).map_err(|e| output::invalid(json, &e.into(), Map::new()))?;
    // The sealed data is the account provider's: for a countersigned token, the inner token's.
    let view = match outer.token_type() {
        TokenType::Recovery => outer,
        TokenType::Countersigned => CountersignedToken::decode(&bytes)
            .map(|t| t.inner().view().clone())
            .map_err(|e| output::invalid(json, &e, Map::new()))?,
    };
    let sealed = view.data();
    if let Some(layout) = want_layout
        && Layout::of_sealed(sealed) != Some(layout)
    {
        let e = Error::from(dar_core::DecodeError::SealedData);
        return Err(output::invalid(json, &e, Map::new()));
    }
    let token_id = view.token_id();
    let ctx = SealContext {
        token_id: token_id.as_bytes(),
        issuer: view.issuer(),
        audience: view.audience(),
    };
    let plaintext = sealer
        .open(sealed, &ctx)
        .map_err(|e| output::invalid(json, &e, Map::new()))?;
    if json {
        output::print_json(&serde_json::json!({ "plaintext_hex": hex::encode(&*plaintext) }));
    } else {
        println!("{}", hex::encode(&*plaintext));
    }
    Ok(())
}

pub(crate) fn countersign(args: &CountersignArgs) -> Result<(), Failure> {
    let key = input::private_key(&args.key)?;
    let ap_keys = input::public_keys(&args.ap_keys)?;
    let now = input::now(args.now.as_deref())?;
    let token_id = token_id_arg(args.token_id.as_deref())?;
    let binding = args
        .binding
        .as_deref()
        .map(|b| input::hex_arg("binding", b))
        .transpose()?;
    let text = input::token_text(&args.token)?;
    let json = args.json;
    let bytes = input::token_bytes(&text).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let token = RecoveryToken::decode(&bytes).map_err(|e| output::invalid(json, &e, Map::new()))?;
    let issuer = match &args.ap {
        Some(ap) => input::origin("ap", ap)?,
        None => input::origin("ap", token.view().issuer())?,
    };
    let authoritative = if args.rp.is_empty() {
        vec![input::origin("rp", token.view().audience())?]
    } else {
        args.rp
            .iter()
            .map(|r| input::origin("rp", r))
            .collect::<Result<Vec<_>, _>>()?
    };
    let low_friction = args.low_friction || token.view().options().low_friction();
    let check = SavedCheck {
        issuer: &issuer,
        issuer_keys: &ap_keys,
        authoritative: &authoritative,
    };
    let verified = token
        .verify_saved(&check)
        .map_err(|e| output::invalid(json, &e, Map::new()))?;
    let params = Countersign {
        key: &key,
        token_id,
        issued: now,
        binding: binding.unwrap_or_default(),
        low_friction,
        max_size: MAX_TOKEN_LEN,
    };
    let encoded = dar_core::countersign(&verified, params)
        .map_err(|e| output::invalid(json, &e, Map::new()))?;
    print_token(&encoded, json)
}

/// Prints a token this command made: its base64, or with `--json` its fields and `token`.
fn print_token(encoded: &EncodedToken, json: bool) -> Result<(), Failure> {
    if json {
        let view = TokenView::decode(encoded.as_bytes())
            .map_err(|e| Failure::usage(format!("internal: {e}")))?;
        let mut m = output::token_json(&view);
        m.insert("token".into(), encoded.to_base64().into());
        output::print_json(&Value::Object(m));
    } else {
        println!("{}", encoded.to_base64());
    }
    Ok(())
}

/// `--token-id HEX`, or a fresh random id.
fn token_id_arg(arg: Option<&str>) -> Result<TokenId, Failure> {
    match arg {
        Some(hex) => {
            TokenId::from_hex(hex).map_err(|_| Failure::usage("--token-id must be 32 hex digits"))
        }
        None => TokenId::generate(&mut SysRng).map_err(|e| Failure::usage(e.to_string())),
    }
}
