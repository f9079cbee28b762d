//! Exit statuses, error messages and the JSON shapes of the CLI contract.

use dar_core::{Error, TokenView};
use serde_json::{Map, Value, json};

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The input was judged and refused (exit 1); the reason was already printed.
    Invalid,
    /// The command could not be carried out as asked (exit 2).
    Usage(String),
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }
}

/// Reports a refused input: one line on stderr with the stable code and the step; with
/// `--json`, the verdict object on stdout.
pub(crate) fn invalid(json: bool, error: &Error, mut fields: Map<String, Value>) -> Failure {
    eprintln!(
        "dar: invalid: {} ({}): {}",
        error.code(),
        error.step(),
        error
    );
    if json {
        fields.insert("valid".into(), false.into());
        fields.insert("error".into(), error_json(error));
        print_json(&Value::Object(fields));
    }
    Failure::Invalid
}

pub(crate) fn error_json(error: &Error) -> Value {
    json!({ "code": error.code(), "step": error.step(), "message": error.to_string() })
}

pub(crate) fn print_json(value: &Value) {
    println!("{value}");
}

/// The decoded fields of a token, as `dar token inspect --json` prints them.
pub(crate) fn token_json(view: &TokenView<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("version".into(), dar_core::VERSION.into());
    m.insert("type".into(), view.token_type().as_u8().into());
    m.insert("token_id".into(), view.token_id().to_string().into());
    m.insert("options".into(), view.options().bits().into());
    m.insert("issuer".into(), view.issuer().into());
    m.insert("audience".into(), view.audience().into());
    m.insert("issued_time".into(), view.issued_time_raw().into());
    m.insert("data".into(), hex::encode(view.data()).into());
    m.insert("binding".into(), hex::encode(view.binding()).into());
    m.insert(
        "signature".into(),
        hex::encode(view.signature_bytes()).into(),
    );
    m
}

/// Human-readable lines for a decoded token.
pub(crate) fn token_text(view: &TokenView<'_>, indent: &str) -> String {
    let kind = match view.token_type() {
        dar_core::TokenType::Recovery => "recovery token (type 0)",
        dar_core::TokenType::Countersigned => "countersigned token (type 1)",
    };
    let o = view.options();
    format!(
        "{indent}{kind}\n{indent}  token_id     {}\n{indent}  options      {:#04x}{}{}\n{indent}  issuer       {}\n{indent}  audience     {}\n{indent}  issued_time  {}\n{indent}  data         {} bytes\n{indent}  binding      {} bytes\n{indent}  signature    {} bytes DER",
        view.token_id(),
        o.bits(),
        if o.status_requested() {
            " status-requested"
        } else {
            ""
        },
        if o.low_friction() {
            " low-friction"
        } else {
            ""
        },
        view.issuer(),
        view.audience(),
        view.issued_time_raw(),
        view.data().len(),
        view.binding().len(),
        view.signature_bytes().len(),
    )
}
