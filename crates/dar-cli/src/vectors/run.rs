//! Runs the files of `test-vectors/` through dar-core: the library, never the CLI.
//!
//! Shared by `dar vectors check` (crates/dar-cli/src/vectors.rs) and by dar-core's integration
//! test `crates/dar-core/tests/vectors.rs`, which includes this file with `#[path]`. It therefore
//! uses only crates both packages depend on: dar-core, serde_json, base64, hex and time.
//!
//! The case schema is described in test-vectors/README.md.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use dar_core::{
    CountersignedToken, Error, Freshness, Layout, MAX_TOKEN_LEN, Origin, RecoveryToken,
    ReturnCheck, SaveCheck, SealContext, Sealer, SealingKey, TokenView, VerifyingKey,
    VerifyingKeys, decode_base64, issued_time,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// The clock the interop vectors were made at (fb-sdk-vectors.json `dar_expected_note`).
pub(crate) const INTEROP_NOW: &str = "2026-11-22T15:31:35Z";
const INTEROP_AP: &str = "https://ap.example.com";
const INTEROP_RP: &str = "https://rp.example.net";

/// The case files, in the order they are run.
pub(crate) const CASE_FILES: [&str; 3] = [
    "recovery-tokens.json",
    "countersigned-tokens.json",
    "negative.json",
];

/// What a run found.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Positive cases of the case files that passed.
    pub(crate) positive: usize,
    /// Negative cases of the case files that passed.
    pub(crate) negative: usize,
    /// Interop cases judged (accept/reject) that passed.
    pub(crate) interop: usize,
    /// Interop cases marked `decide`, with dar's decision.
    pub(crate) decided: Vec<String>,
    /// One line per case that did not behave as recorded.
    pub(crate) failures: Vec<String>,
}

/// A verifier's outcome: the observed fields of an accepted token, or dar-core's error.
pub(crate) type Outcome = Result<Value, Error>;

/// Runs every case file of `dir`, then `dir/interop/`. `log` receives the id of each case
/// before it runs, so that a crash names the case.
///
/// # Errors
///
/// A message when a file is missing or not in the expected shape.
pub(crate) fn run_dir(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let keys = load_keys(&read_json(&dir.join("keys.json"))?)?;
    for file in CASE_FILES {
        let doc = read_json(&dir.join(file))?;
        for case in array(&doc, "cases")? {
            let id = str_field(case, "id")?;
            log(&format!("{file}: {id}"));
            let outcome = run_case(case, &keys)?;
            match judge_case(case, &outcome)? {
                Ok(true) => summary.positive += 1,
                Ok(false) => summary.negative += 1,
                Err(why) => summary.failures.push(format!("{file}: {id}: {why}")),
            }
        }
    }
    let fb = read_json(&dir.join("interop/fb-sdk-vectors.json"))?;
    let decisions = read_json(&dir.join("interop/decisions.json"))?;
    let mut recorded: BTreeMap<String, &Value> = BTreeMap::new();
    for d in array(&decisions, "decisions")? {
        recorded.insert(str_field(d, "case_id")?.to_owned(), d);
    }
    for r in interop_results(&fb)? {
        log(&format!("interop/fb-sdk-vectors.json: {}", r.case_id));
        let got = verdict(&r.outcome);
        if let Some(d) = recorded.get(&r.case_id) {
            let want = str_field(d, "dar_decision")?;
            let want_code = d.get("dar_code").and_then(Value::as_str);
            let got_code = r.outcome.as_ref().err().map(Error::code);
            if want != got || want_code != got_code {
                summary.failures.push(format!(
                    "interop {}: decisions.json says {want} {want_code:?}, dar gives {got} {got_code:?}",
                    r.case_id
                ));
            }
        }
        match r.dar_expected.as_str() {
            "decide" => {
                summary
                    .decided
                    .push(format!("{}: {}", r.case_id, describe(&r.outcome)));
                if !recorded.contains_key(&r.case_id) {
                    summary.failures.push(format!(
                        "interop {}: a `decide` case is missing from decisions.json",
                        r.case_id
                    ));
                }
            }
            want if want == got => summary.interop += 1,
            want => summary.failures.push(format!(
                "interop {}: want {want}, got {}",
                r.case_id,
                describe(&r.outcome)
            )),
        }
    }
    Ok(summary)
}

/// `accept` or `reject`.
pub(crate) fn verdict(outcome: &Outcome) -> &'static str {
    if outcome.is_ok() { "accept" } else { "reject" }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Ok(_) => "accept".to_owned(),
        Err(e) => format!("reject {} ({})", e.code(), e.step()),
    }
}

/// Compares an outcome with the case's `expected`: `Ok(true)` for a passing positive,
/// `Ok(false)` for a passing negative, `Err(why)` for a mismatch.
fn judge_case(case: &Value, outcome: &Outcome) -> Result<Result<bool, String>, String> {
    let expected = case.get("expected").ok_or("case without `expected`")?;
    let valid = expected
        .get("valid")
        .and_then(Value::as_bool)
        .ok_or("`expected.valid` is not a boolean")?;
    Ok(match (valid, outcome) {
        (true, Ok(observed)) => {
            let obj = expected.as_object().ok_or("`expected` is not an object")?;
            let mut diff = None;
            for (key, want) in obj.iter().filter(|(k, _)| k.as_str() != "valid") {
                let got = observed.get(key).unwrap_or(&Value::Null);
                if got != want {
                    diff = Some(format!("{key}: want {want}, got {got}"));
                    break;
                }
            }
            diff.map_or(Ok(true), Err)
        }
        (true, Err(e)) => Err(format!("want accept, got {} ({})", e.code(), e.step())),
        (false, Ok(_)) => Err(format!(
            "want {} ({}), got accept",
            expected.get("code").unwrap_or(&Value::Null),
            expected.get("step").unwrap_or(&Value::Null)
        )),
        (false, Err(e)) => {
            let code = str_field(expected, "code")?;
            let step = str_field(expected, "step")?;
            if e.code() == code && e.step() == step {
                Ok(false)
            } else {
                Err(format!(
                    "want {code} ({step}), got {} ({})",
                    e.code(),
                    e.step()
                ))
            }
        }
    })
}

/// Verifying keys by name, from keys.json `signing_keys`.
pub(crate) type Keys = BTreeMap<String, VerifyingKey>;

fn load_keys(doc: &Value) -> Result<Keys, String> {
    let obj = doc
        .get("signing_keys")
        .and_then(Value::as_object)
        .ok_or("keys.json has no `signing_keys` object")?;
    let mut keys = Keys::new();
    for (name, k) in obj {
        let spki = str_field(k, "public_spki_der_b64")?;
        let key = VerifyingKey::from_spki_base64(spki).map_err(|e| format!("key {name}: {e}"))?;
        keys.insert(name.clone(), key);
    }
    Ok(keys)
}

/// Runs one case of the case files. `Err` only when the case itself is malformed.
pub(crate) fn run_case(case: &Value, keys: &Keys) -> Result<Outcome, String> {
    let v = case.get("verifier").ok_or("case without `verifier`")?;
    let text = str_field(case, "token_b64")?;
    let now = time_field(v, "now")?;
    let freshness = Freshness::new(
        Duration::seconds(int_field(v, "max_future_s")?),
        Duration::seconds(int_field(v, "max_age_s")?),
    )
    .map_err(|e| e.to_string())?;
    let binding = opt_hex(v, "binding_hex")?;
    let sealer = sealer(v.get("sealing").unwrap_or(&Value::Null))?;
    match str_field(case, "pipeline")? {
        "recovery" => {
            let issuer = origin(str_field(v, "issuer")?)?;
            let issuer_keys = key_list(v, "issuer_keys", keys)?;
            let authoritative = array(v, "authoritative")?
                .iter()
                .map(|o| {
                    o.as_str()
                        .ok_or("origin is not a string".to_owned())
                        .and_then(origin)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let check = SaveCheck {
                issuer: &issuer,
                issuer_keys: &issuer_keys,
                authoritative: &authoritative,
                freshness,
                binding: binding.as_deref(),
            };
            Ok(verify_recovery(text, &check, now, sealer.as_ref()))
        }
        "countersigned" => {
            let ap = origin(str_field(v, "account_provider")?)?;
            let rp = origin(str_field(v, "recovery_provider")?)?;
            let own_keys = key_list(v, "own_keys", keys)?;
            let countersign_keys = key_list(v, "countersign_keys", keys)?;
            let check = ReturnCheck {
                account_provider: &ap,
                own_keys: &own_keys,
                recovery_provider: &rp,
                countersign_keys: &countersign_keys,
                freshness,
                binding: binding.as_deref(),
            };
            Ok(verify_countersigned(text, &check, now, sealer.as_ref()))
        }
        other => Err(format!("unknown pipeline {other:?}")),
    }
}

/// §3.1 steps 2–10, then (when a sealer is given) opens the data as its issuer would.
pub(crate) fn verify_recovery(
    text: &str,
    check: &SaveCheck<'_>,
    now: OffsetDateTime,
    sealer: Option<&Sealer>,
) -> Outcome {
    let bytes = decode_base64(text, MAX_TOKEN_LEN)?;
    let token = RecoveryToken::decode(&bytes)?;
    let verified = token.verify_for_save(check, now)?;
    let view = verified.view();
    let mut out = json!({ "token": fields(view)? });
    if let Some(sealer) = sealer {
        out["plaintext_hex"] = json!(open(sealer, view)?);
    }
    Ok(out)
}

/// §3.5 steps 1–8 and 11–12, then (when a sealer is given) step 13 on the inner token.
pub(crate) fn verify_countersigned(
    text: &str,
    check: &ReturnCheck<'_>,
    now: OffsetDateTime,
    sealer: Option<&Sealer>,
) -> Outcome {
    let bytes = decode_base64(text, MAX_TOKEN_LEN)?;
    let token = CountersignedToken::decode(&bytes)?;
    let verified = token.verify_return(check, now)?;
    let mut out = json!({ "token": fields(verified.outer())?, "inner": fields(verified.inner())? });
    if let Some(sealer) = sealer {
        out["plaintext_hex"] = json!(open(sealer, verified.inner())?);
    }
    Ok(out)
}

fn open(sealer: &Sealer, view: &TokenView<'_>) -> Result<String, Error> {
    let token_id = view.token_id();
    let ctx = SealContext {
        token_id: token_id.as_bytes(),
        issuer: view.issuer(),
        audience: view.audience(),
    };
    Ok(hex::encode(sealer.open(view.data(), &ctx)?.as_slice()))
}

/// The decoded fields of a token, as the case files record them. Also checks the round trip:
/// the owned token re-encodes to exactly the signed bytes.
fn fields(view: &TokenView<'_>) -> Result<Value, Error> {
    let again = view.to_token()?.encode_internals()?;
    let round_trip = again == view.signed_bytes();
    Ok(json!({
        "type": view.token_type().as_u8(),
        "token_id_hex": view.token_id().to_string(),
        "options": view.options().bits(),
        "issuer": view.issuer(),
        "audience": view.audience(),
        "issued_time": view.issued_time_raw(),
        "data_hex": hex::encode(view.data()),
        "binding_hex": hex::encode(view.binding()),
        "signature_hex": hex::encode(view.signature_bytes()),
        "reencodes_identically": round_trip,
    }))
}

fn sealer(v: &Value) -> Result<Option<Sealer>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let layout: Layout = str_field(v, "layout")?
        .parse()
        .map_err(|e: Error| e.to_string())?;
    let mut keys = Vec::new();
    for k in array(v, "keys")? {
        let id = u32::try_from(int_field(k, "id")?).map_err(|e| e.to_string())?;
        keys.push(SealingKey::from_hex(id, str_field(k, "key_hex")?).map_err(|e| e.to_string())?);
    }
    let current = u32::try_from(int_field(v, "current_key_id")?).map_err(|e| e.to_string())?;
    let mut sealer = Sealer::new(keys, current, layout).map_err(|e| e.to_string())?;
    if v.get("also_open_darrrr_v0").and_then(Value::as_bool) == Some(true) {
        sealer = sealer.also_open_darrrr_v0();
    }
    Ok(Some(sealer))
}

/// One interop case and what dar decided.
pub(crate) struct InteropResult {
    /// `case_id` in fb-sdk-vectors.json.
    pub(crate) case_id: String,
    /// `dar_expected`: accept, reject or decide.
    pub(crate) dar_expected: String,
    /// The peers' verdicts (`js_sdk`, `java_sdk`): accept or reject.
    pub(crate) peers: BTreeMap<String, &'static str>,
    /// dar's outcome.
    pub(crate) outcome: Outcome,
}

/// Runs fb-sdk-vectors.json with the rules of /work/shared/tools/check-fb-vectors: recovery
/// tokens with the issuer, audience and binding from `decoded` and the clock at their own
/// issued_time (whole seconds), skew 3600 s; countersigned tokens and negative cases with the
/// clock at 2026-11-22T15:31:35Z and `verifier_inputs`.
pub(crate) fn interop_results(fb: &Value) -> Result<Vec<InteropResult>, String> {
    let mut keys = Keys::new();
    let key_obj = fb
        .get("keys")
        .and_then(Value::as_object)
        .ok_or("no `keys`")?;
    for (name, k) in key_obj {
        if let Some(spki) = k.get("public_spki_der_b64").and_then(Value::as_str) {
            let key = VerifyingKey::from_spki_base64(spki).map_err(|e| e.to_string())?;
            keys.insert(name.clone(), key);
        }
    }
    let ap = origin(INTEROP_AP)?;
    let rp = origin(INTEROP_RP)?;
    let now = time_text(INTEROP_NOW)?;
    let ap_keys = named_keys(&["account_provider"], &keys)?;
    let mut out = Vec::new();
    for t in array(fb, "recovery_tokens")? {
        let dec = t.get("decoded").ok_or("no `decoded`")?;
        let issuer = origin(str_field(dec, "issuer")?)?;
        let audience = origin(str_field(dec, "audience")?)?;
        let binding = hex::decode(str_field(dec, "binding_hex")?).map_err(|e| e.to_string())?;
        let own_time = str_field(dec, "issued_time")?.to_ascii_uppercase();
        let own_time = match own_time.split_once('.') {
            Some((whole, _)) => format!("{whole}Z"),
            None => own_time,
        };
        let check = SaveCheck {
            issuer: &issuer,
            issuer_keys: &ap_keys,
            authoritative: core::slice::from_ref(&audience),
            freshness: symmetric(3600)?,
            binding: (!binding.is_empty()).then_some(binding.as_slice()),
        };
        let outcome = verify_recovery(
            str_field(t, "token_b64")?,
            &check,
            time_text(&own_time)?,
            None,
        );
        out.push(interop_result(t, "verification", outcome)?);
    }
    for t in array(fb, "countersigned_tokens")? {
        let vi = t.get("verifier_inputs").unwrap_or(&Value::Null);
        let rp_here = origin(
            vi.get("expected_issuer")
                .and_then(Value::as_str)
                .unwrap_or(INTEROP_RP),
        )?;
        let ap_here = origin(
            vi.get("expected_audience")
                .and_then(Value::as_str)
                .unwrap_or(INTEROP_AP),
        )?;
        let binding = interop_binding(vi)?;
        let cs_keys = named_keys(&["recovery_provider"], &keys)?;
        let check = ReturnCheck {
            account_provider: &ap_here,
            own_keys: &ap_keys,
            recovery_provider: &rp_here,
            countersign_keys: &cs_keys,
            freshness: symmetric(skew(vi)?)?,
            binding: binding.as_deref(),
        };
        let outcome = verify_countersigned(str_field(t, "token_b64")?, &check, now, None);
        out.push(interop_result(t, "verification", outcome)?);
    }
    for n in array(fb, "negative_cases")? {
        let vi = n.get("verifier_inputs").unwrap_or(&Value::Null);
        let want = str_field(n, "dar_expected")?;
        let names: Vec<&str> = vi
            .get("keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let text = str_field(n, "token_b64")?;
        let outcome = if str_field(n, "kind")? == "recovery" {
            let names = if names.is_empty() {
                vec!["account_provider"]
            } else {
                names
            };
            let check = SaveCheck {
                issuer: &ap,
                issuer_keys: &named_keys(&names, &keys)?,
                authoritative: core::slice::from_ref(&rp),
                freshness: symmetric(3600)?,
                binding: None,
            };
            verify_recovery(text, &check, now, None)
        } else {
            // As check-fb-vectors: the verifier is told to expect `expected_issuer` only for
            // cases that must be accepted; refusals are judged against the usual RP.
            let rp_here = match vi.get("expected_issuer").and_then(Value::as_str) {
                Some(i) if want == "accept" && !i.is_empty() => origin(i)?,
                _ => rp.clone(),
            };
            let names: Vec<&str> = if names.is_empty() {
                vec!["recovery_provider"]
            } else {
                names
            };
            let names: Vec<&str> = names
                .into_iter()
                .filter(|n| keys.contains_key(*n))
                .collect();
            let binding = interop_binding(vi)?;
            let check = ReturnCheck {
                account_provider: &ap,
                own_keys: &ap_keys,
                recovery_provider: &rp_here,
                countersign_keys: &named_keys(&names, &keys)?,
                freshness: symmetric(skew(vi)?)?,
                binding: binding.as_deref(),
            };
            verify_countersigned(text, &check, now, None)
        };
        out.push(interop_result(n, "results", outcome)?);
    }
    Ok(out)
}

fn interop_result(
    case: &Value,
    peers_key: &str,
    outcome: Outcome,
) -> Result<InteropResult, String> {
    let mut peers = BTreeMap::new();
    if let Some(obj) = case.get(peers_key).and_then(Value::as_object) {
        for (sdk, r) in obj {
            if let Some(accepted) = r.get("accepted").and_then(Value::as_bool) {
                peers.insert(sdk.clone(), if accepted { "accept" } else { "reject" });
            }
        }
    }
    Ok(InteropResult {
        case_id: str_field(case, "case_id")?.to_owned(),
        dar_expected: str_field(case, "dar_expected")?.to_owned(),
        peers,
        outcome,
    })
}

fn interop_binding(vi: &Value) -> Result<Option<Vec<u8>>, String> {
    match vi.get("expected_binding_hex").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(h) => hex::decode(h).map(Some).map_err(|e| e.to_string()),
    }
}

fn skew(vi: &Value) -> Result<i64, String> {
    match vi.get("allowed_clock_skew_s") {
        None | Some(Value::Null) => Ok(3600),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| "skew is not an integer".to_owned()),
    }
}

fn symmetric(seconds: i64) -> Result<Freshness, String> {
    Freshness::symmetric(Duration::seconds(seconds)).map_err(|e| e.to_string())
}

fn named_keys(names: &[&str], keys: &Keys) -> Result<VerifyingKeys, String> {
    let list = names
        .iter()
        .map(|n| keys.get(*n).cloned().ok_or(format!("unknown key {n}")))
        .collect::<Result<Vec<_>, _>>()?;
    VerifyingKeys::new(list).ok_or_else(|| "empty key list".to_owned())
}

fn key_list(v: &Value, field: &str, keys: &Keys) -> Result<VerifyingKeys, String> {
    let names = array(v, field)?
        .iter()
        .map(|n| n.as_str().ok_or(format!("`{field}` holds a non-string")))
        .collect::<Result<Vec<_>, _>>()?;
    named_keys(&names, keys)
}

fn origin(text: &str) -> Result<Origin, String> {
    Origin::parse_development(text).map_err(|e| format!("origin {text:?}: {e}"))
}

fn time_text(text: &str) -> Result<OffsetDateTime, String> {
    issued_time::parse(text.as_bytes()).map_err(|e| format!("time {text:?}: {e}"))
}

fn time_field(v: &Value, field: &str) -> Result<OffsetDateTime, String> {
    time_text(str_field(v, field)?)
}

fn opt_hex(v: &Value, field: &str) -> Result<Option<Vec<u8>>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(h)) => hex::decode(h)
            .map(Some)
            .map_err(|e| format!("{field}: {e}")),
        Some(_) => Err(format!("`{field}` is not a string")),
    }
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn array<'v>(v: &'v Value, field: &str) -> Result<&'v Vec<Value>, String> {
    v.get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("`{field}` is not an array"))
}

fn str_field<'v>(v: &'v Value, field: &str) -> Result<&'v str, String> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{field}` is not a string"))
}

fn int_field(v: &Value, field: &str) -> Result<i64, String> {
    v.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("`{field}` is not an integer"))
}

/// Standard base64 with padding, as dar emits tokens.
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
