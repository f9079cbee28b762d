//! Configuration documents (§2): what each provider publishes at
//! `/.well-known/delegated-account-recovery/configuration`.
//!
//! [`Configuration::from_json`] parses and validates a fetched document: the issuer is a
//! canonical https origin, every endpoint URL is https (or, for a development loopback issuer,
//! loopback http) with no userinfo, query or fragment, keys parse as P-256 SPKIs and
//! `token-max-size` is positive. Unknown keys are ignored. Endpoints need not share the issuer's
//! host: §2 allows a provider to serve its endpoints from another origin.
//!
//! `privacy-policy`, `icon-152px` and `save-token-async-api-iframe` are optional when reading
//! (they do not affect security, and the iframe API is optional in §3.3); dar always publishes
//! the first two.

use serde_json::{Map, Value};

use crate::error::{DecodeError, Error};
use crate::keys::{VerifyingKey, VerifyingKeys};
use crate::origin::Origin;
use crate::token::MAX_TOKEN_LEN;

/// The well-known path of the configuration document (§2).
pub const CONFIGURATION_PATH: &str = "/.well-known/delegated-account-recovery/configuration";
/// The well-known path of the token status endpoint (§3.6).
pub const TOKEN_STATUS_PATH: &str = "/.well-known/delegated-account-recovery/token-status";

/// Largest configuration document dar reads; real ones are under 2 KiB.
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;
/// Most keys a document may list. §2 advises at most two; a few more leave room for overlap,
/// and the bound caps the work of one verification.
pub const MAX_KEYS: usize = 8;
const MAX_URL_LEN: usize = 2048;

/// An endpoint URL from a configuration document: https, a host, optional port and path, no
/// userinfo, query or fragment (§2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    origin: Origin,
    path: String,
}

impl EndpointUrl {
    /// Parses an endpoint URL; `development` also allows http on loopback hosts.
    ///
    /// ```
    /// use dar_core::EndpointUrl;
    /// let u = EndpointUrl::parse("https://RP.example.net/recover", false)?;
    /// assert_eq!(u.as_string(), "https://rp.example.net/recover");
    /// # Ok::<(), dar_core::DecodeError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DecodeError::Config`] naming what is wrong (field `url`).
    pub fn parse(input: &str, development: bool) -> Result<Self, DecodeError> {
        let bad = |reason| DecodeError::Config {
            field: "url",
            reason,
        };
        if input.len() > MAX_URL_LEN {
            return Err(bad("too long"));
        }
        if input.contains(['?', '#']) {
            return Err(bad("query and fragment are not allowed"));
        }
        if input
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || !c.is_ascii())
        {
            return Err(bad("invalid character"));
        }
        let after_scheme = input.find("://").map_or(0, |i| i + 3);
        let split = input
            .get(after_scheme..)
            .and_then(|rest| rest.find('/'))
            .map_or(input.len(), |i| i + after_scheme);
        let (origin_text, path) = input.split_at_checked(split).ok_or(bad("invalid URL"))?;
        let origin = if development {
            Origin::parse_development(origin_text)
        } else {
            Origin::parse(origin_text)
        }
        .map_err(|_| bad("not an https URL with a valid host"))?;
        let path = if path.is_empty() { "/" } else { path };
        Ok(Self {
            origin,
            path: path.to_owned(),
        })
    }

    /// The origin part.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The path (at least `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL as text.
    pub fn as_string(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }
}

/// The account provider's part of a configuration document (§2).
#[derive(Debug, Clone)]
pub struct AccountProviderConfig {
    /// `tokensign-pubkeys-secp256r1`.
    pub tokensign_keys: VerifyingKeys,
    /// `save-token-return`.
    pub save_token_return: EndpointUrl,
    /// `recover-account-return`.
    pub recover_account_return: EndpointUrl,
}

/// The recovery provider's part of a configuration document (§2).
#[derive(Debug, Clone)]
pub struct RecoveryProviderConfig {
    /// `countersign-pubkeys-secp256r1`.
    pub countersign_keys: VerifyingKeys,
    /// `token-max-size`, at most [`MAX_TOKEN_LEN`] (a larger value cannot matter).
    pub token_max_size: usize,
    /// `save-token`.
    pub save_token: EndpointUrl,
    /// `save-token-async-api-iframe`, if offered (§3.3).
    pub save_token_async_api_iframe: Option<EndpointUrl>,
    /// `recover-account`.
    pub recover_account: EndpointUrl,
}

/// A parsed configuration document: an account provider's, a recovery provider's, or both
/// (one document for an origin that plays both roles, §2).
///
/// ```
/// use dar_core::{Configuration, SigningKey};
/// let key = SigningKey::from_scalar_bytes(&[7u8; 32])?.verifying_key().to_spki_base64();
/// let doc = format!(r#"{{"issuer": "https://ap.example.com",
///     "tokensign-pubkeys-secp256r1": ["{key}"],
///     "save-token-return": "https://ap.example.com/dar/save-return",
///     "recover-account-return": "https://ap.example.com/dar/recover-return",
///     "privacy-policy": "https://ap.example.com/privacy",
///     "icon-152px": "https://ap.example.com/icon.png"}}"#);
/// let config = Configuration::from_json(doc.as_bytes(), false)?;
/// assert!(config.account_provider().is_some() && config.recovery_provider().is_none());
/// assert_eq!(config.issuer().as_str(), "https://ap.example.com");
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Configuration {
    issuer: Origin,
    privacy_policy: Option<EndpointUrl>,
    icon_152px: Option<EndpointUrl>,
    account_provider: Option<AccountProviderConfig>,
    recovery_provider: Option<RecoveryProviderConfig>,
}

impl Configuration {
    /// Parses and validates a document. `development` accepts an http loopback issuer and
    /// http loopback endpoints (local tests only).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Config`] naming the key at fault, or the key parse error of a key.
    pub fn from_json(bytes: &[u8], development: bool) -> Result<Self, Error> {
        if bytes.len() > MAX_DOCUMENT_LEN {
            return Err(DecodeError::Config {
                field: "document",
                reason: "too large",
            }
            .into());
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|_| DecodeError::Config {
            field: "document",
            reason: "not valid JSON",
        })?;
        let doc = value.as_object().ok_or(DecodeError::Config {
            field: "document",
            reason: "not a JSON object",
        })?;
        let issuer_text = string(doc, "issuer")?.ok_or(missing("issuer"))?;
        let issuer = if development {
            Origin::parse_development(issuer_text)
        } else {
            Origin::parse(issuer_text)
        }
        .map_err(|_| DecodeError::Config {
            field: "issuer",
            reason: "not an https origin",
        })?;
        // §2: the issuer is the origin's ASCII serialization, so it must already be canonical.
        if issuer.as_str() != issuer_text {
            return Err(DecodeError::Config {
                field: "issuer",
                reason: "not in canonical serialized form",
            }
            .into());
        }
        let url = |key: &'static str| -> Result<Option<EndpointUrl>, Error> {
            string(doc, key)?
                .map(|s| {
                    let u = EndpointUrl::parse(s, development).map_err(|e| match e {
                        DecodeError::Config { reason, .. } => {
                            DecodeError::Config { field: key, reason }
                        }
                        other => other,
                    })?;
                    // A secure issuer never points its users at plain http.
                    if issuer.is_https() && !u.origin().is_https() {
                        return Err(DecodeError::Config {
                            field: key,
                            reason: "must be https",
                        });
                    }
                    Ok(u)
                })
                .transpose()
                .map_err(Error::from)
        };

        let account_provider = match doc.get("tokensign-pubkeys-secp256r1") {
            None => None,
            Some(_) => Some(AccountProviderConfig {
                tokensign_keys: keys(doc, "tokensign-pubkeys-secp256r1")?,
                save_token_return: url("save-token-return")?.ok_or(missing("save-token-return"))?,
                recover_account_return: url("recover-account-return")?
                    .ok_or(missing("recover-account-return"))?,
            }),
        };
        let recovery_provider = match doc.get("countersign-pubkeys-secp256r1") {
            None => None,
            Some(_) => Some(RecoveryProviderConfig {
                countersign_keys: keys(doc, "countersign-pubkeys-secp256r1")?,
                token_max_size: token_max_size(doc)?,
                save_token: url("save-token")?.ok_or(missing("save-token"))?,
                save_token_async_api_iframe: url("save-token-async-api-iframe")?,
                recover_account: url("recover-account")?.ok_or(missing("recover-account"))?,
            }),
        };
        if account_provider.is_none() && recovery_provider.is_none() {
            return Err(DecodeError::Config {
                field: "document",
                reason: "neither tokensign-pubkeys-secp256r1 nor countersign-pubkeys-secp256r1",
            }
            .into());
        }
        Ok(Self {
            privacy_policy: url("privacy-policy")?,
            icon_152px: url("icon-152px")?,
            issuer,
            account_provider,
            recovery_provider,
        })
    }

    /// The issuer.
    pub fn issuer(&self) -> &Origin {
        &self.issuer
    }

    /// `privacy-policy`, if given.
    pub fn privacy_policy(&self) -> Option<&EndpointUrl> {
        self.privacy_policy.as_ref()
    }

    /// `icon-152px`, if given.
    pub fn icon_152px(&self) -> Option<&EndpointUrl> {
        self.icon_152px.as_ref()
    }

    /// The account provider part, when the document has one.
    pub fn account_provider(&self) -> Option<&AccountProviderConfig> {
        self.account_provider.as_ref()
    }

    /// The recovery provider part, when the document has one.
    pub fn recovery_provider(&self) -> Option<&RecoveryProviderConfig> {
        self.recovery_provider.as_ref()
    }

    /// Builds a document to publish.
    pub fn new(
        issuer: Origin,
        privacy_policy: Option<EndpointUrl>,
        icon_152px: Option<EndpointUrl>,
        account_provider: Option<AccountProviderConfig>,
        recovery_provider: Option<RecoveryProviderConfig>,
    ) -> Self {
        Self {
            issuer,
            privacy_policy,
            icon_152px,
            account_provider,
            recovery_provider,
        }
    }

    /// The document as published, with the draft's key names.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("issuer".into(), self.issuer.as_str().into());
        let mut put = |k: &str, u: Option<&EndpointUrl>| {
            if let Some(u) = u {
                m.insert(k.into(), u.as_string().into());
            }
        };
        put("privacy-policy", self.privacy_policy.as_ref());
        put("icon-152px", self.icon_152px.as_ref());
        if let Some(ap) = &self.account_provider {
            put("save-token-return", Some(&ap.save_token_return));
            put("recover-account-return", Some(&ap.recover_account_return));
        }
        if let Some(rp) = &self.recovery_provider {
            put("save-token", Some(&rp.save_token));
            put(
                "save-token-async-api-iframe",
                rp.save_token_async_api_iframe.as_ref(),
            );
            put("recover-account", Some(&rp.recover_account));
        }
        if let Some(ap) = &self.account_provider {
            m.insert(
                "tokensign-pubkeys-secp256r1".into(),
                key_list(&ap.tokensign_keys),
            );
        }
        if let Some(rp) = &self.recovery_provider {
            m.insert(
                "countersign-pubkeys-secp256r1".into(),
                key_list(&rp.countersign_keys),
            );
            m.insert("token-max-size".into(), rp.token_max_size.into());
        }
        Value::Object(m)
    }
}

fn key_list(keys: &VerifyingKeys) -> Value {
    Value::Array(
        keys.iter()
            .map(|k| Value::from(k.to_spki_base64()))
            .collect(),
    )
}

fn missing(field: &'static str) -> DecodeError {
    DecodeError::Config {
        field,
        reason: "missing",
    }
}

fn string<'a>(doc: &'a Map<String, Value>, field: &'static str) -> Result<Option<&'a str>, Error> {
    match doc.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DecodeError::Config {
            field,
            reason: "not a string",
        }
        .into()),
    }
}

fn keys(doc: &Map<String, Value>, field: &'static str) -> Result<VerifyingKeys, Error> {
    let list = doc
        .get(field)
        .and_then(Value::as_array)
        .ok_or(DecodeError::Config {
            field,
            reason: "not an array",
        })?;
    if list.is_empty() || list.len() > MAX_KEYS {
        return Err(DecodeError::Config {
            field,
            reason: "must list 1 to 8 keys",
        }
        .into());
    }
    let keys = list
        .iter()
        .map(|v| {
            let text = v.as_str().ok_or(DecodeError::Config {
                field,
                reason: "not a string",
            })?;
            VerifyingKey::from_spki_base64(text)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(VerifyingKeys::new(keys).ok_or(DecodeError::Config {
        field,
        reason: "must list 1 to 8 keys",
    })?)
}

fn token_max_size(doc: &Map<String, Value>) -> Result<usize, Error> {
    let field = "token-max-size";
    let n = doc
        .get(field)
        .ok_or(missing(field))?
        .as_u64()
        .filter(|&n| n > 0)
        .ok_or(DecodeError::Config {
            field,
            reason: "not a positive integer",
        })?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX).min(MAX_TOKEN_LEN))
}

#[doc(hidden)]
/// Fuzzing entry point: parses a document and, when it is accepted, checks that publishing and
/// re-reading it gives the same document.
pub fn fuzz_configuration(data: &[u8]) {
    if let Ok(config) = Configuration::from_json(data, false) {
        let again = serde_json::to_vec(&config.to_json()).unwrap_or_default();
        let reparsed = Configuration::from_json(&again, false);
        assert!(reparsed.is_ok_and(|r| r.to_json() == config.to_json()));
    }
}

#[cfg(test)]
mod tests;
