//! Checking the answer: status, media type, size and the document itself.
//!
//! Each check is a pure function over what the client received, applied in the order the
//! answer arrives: status and headers before a single body byte is read, the size while the body
//! streams, and the document once it is complete.

use dar_core::{Configuration, Origin};

use crate::DiscoveryError;

/// The status line: only 200 carries a document.
///
/// # Errors
///
/// [`DiscoveryError::Redirected`] for a 3xx other than 304, [`DiscoveryError::NotFound`] for
/// 404, [`DiscoveryError::Status`] for anything else but 200.
pub(crate) fn check_status(status: u16) -> Result<(), DiscoveryError> {
    match status {
        200 => Ok(()),
        // §1.8, §2: redirects are not followed, whatever their target.
        300..=399 if status != 304 => Err(DiscoveryError::Redirected { status }),
        404 => Err(DiscoveryError::NotFound),
        other => Err(DiscoveryError::Status(other)),
    }
}

/// The `Content-Type` header lines: exactly one, whose media type is `application/json`
/// (case-insensitive, parameters such as `charset` allowed).
///
/// # Errors
///
/// [`DiscoveryError::NotJson`] for a missing, repeated, unreadable or other media type.
pub(crate) fn check_content_type<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), DiscoveryError> {
    let mut values = values.into_iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(DiscoveryError::NotJson);
    };
    let text = core::str::from_utf8(value).map_err(|_| DiscoveryError::NotJson)?;
    let essence = text.split(';').next().unwrap_or_default().trim();
    // §2: the entire response body is a JSON dictionary.
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(DiscoveryError::NotJson)
    }
}

/// A declared `Content-Length`, checked before reading so an honest oversize answer is refused
/// at once.
///
/// # Errors
///
/// [`DiscoveryError::TooLarge`] when the declared length exceeds `cap`.
pub(crate) fn check_declared_length(length: Option<u64>, cap: usize) -> Result<(), DiscoveryError> {
    match length {
        Some(n) if u64::try_from(cap).is_ok_and(|cap| n > cap) => Err(DiscoveryError::TooLarge),
        _ => Ok(()),
    }
}

/// The body as it streams in, never holding more than its cap.
#[derive(Debug)]
pub(crate) struct BodyBuffer {
    bytes: Vec<u8>,
    cap: usize,
}

impl BodyBuffer {
    /// An empty buffer that refuses to grow past `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
        }
    }

    /// Appends a chunk.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::TooLarge`] when the body would exceed the cap; nothing is appended.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), DiscoveryError> {
        let total = self
            .bytes
            .len()
            .checked_add(chunk.len())
            .ok_or(DiscoveryError::TooLarge)?;
        if total > self.cap {
            return Err(DiscoveryError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The complete body.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Parses and validates the document and checks that it speaks for the origin asked for.
///
/// `development` admits an http loopback issuer and endpoints, as
/// [`Configuration::from_json`] does.
///
/// # Errors
///
/// [`DiscoveryError::Invalid`] when the document fails §2 validation and
/// [`DiscoveryError::IssuerMismatch`] when its issuer is another origin.
pub(crate) fn check_document(
    body: &[u8],
    asked: &Origin,
    development: bool,
) -> Result<Configuration, DiscoveryError> {
    let config = Configuration::from_json(body, development).map_err(DiscoveryError::Invalid)?;
    // §3.1 step 6, §3.5 step 11: the issuer is the origin asked for, byte for byte.
    if config.issuer().as_str().as_bytes() != asked.as_str().as_bytes() {
        return Err(DiscoveryError::IssuerMismatch);
    }
    Ok(config)
}

#[cfg(test)]
mod tests;
