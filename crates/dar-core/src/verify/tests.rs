use time::Duration;

use super::*;
use crate::testutil::*;
use crate::{IssuedTime, MAX_TOKEN_LEN, Misuse};

struct Save {
    issuer: Origin,
    keys: VerifyingKeys,
    authoritative: Vec<Origin>,
    freshness: Freshness,
    binding: Option<Vec<u8>>,
}

impl Save {
    fn new() -> Self {
        Self {
            issuer: ap(),
            keys: keys(&ap_key()),
            authoritative: vec![rp()],
            freshness: Freshness::DEFAULT,
            binding: None,
        }
    }

    fn run(&self, bytes: &[u8]) -> Result<(), Error> {
        let check = SaveCheck {
            issuer: &self.issuer,
            issuer_keys: &self.keys,
            authoritative: &self.authoritative,
            freshness: self.freshness,
            binding: self.binding.as_deref(),
        };
        RecoveryToken::decode(bytes)?
            .verify_for_save(&check, NOW)
            .map(|_| ())
    }
}

fn rt_bytes() -> Vec<u8> {
    signed(&recovery_token(), &ap_key())
}

#[test]
fn save_accepts_a_good_token() {
    assert_eq!(Save::new().run(&rt_bytes()), Ok(()));
}

#[test]
fn save_rejects_other_issuer() {
    let mut s = Save::new();
    s.issuer = Origin::parse("https://other.example.com").unwrap();
    assert_eq!(s.run(&rt_bytes()), Err(Rejected::IssuerMismatch.into()));
}

#[test]
fn save_rejects_bad_signature() {
    let mut s = Save::new();
    s.keys = keys(&other_key());
    assert_eq!(s.run(&rt_bytes()), Err(Rejected::SignatureInvalid.into()));
}

#[test]
fn save_accepts_any_key_of_a_rotating_set() {
    let mut s = Save::new();
    s.keys = VerifyingKeys::new([other_key().verifying_key(), ap_key().verifying_key()]).unwrap();
    assert_eq!(s.run(&rt_bytes()), Ok(()));
}

#[test]
fn save_rejects_tampered_data() {
    let mut b = rt_bytes();
    let at = b.len() - 75;
    b[at] ^= 1;
    assert_eq!(Save::new().run(&b), Err(Rejected::SignatureInvalid.into()));
}

#[test]
fn save_rejects_foreign_audience() {
    let mut s = Save::new();
    s.authoritative = vec![Origin::parse("https://mail.rp.example.net").unwrap()];
    assert_eq!(
        s.run(&rt_bytes()),
        Err(Rejected::AudienceNotAuthoritative.into())
    );
}

#[test]
fn save_accepts_any_authoritative_audience() {
    let mut s = Save::new();
    s.authoritative = vec![Origin::parse("https://mail.rp.example.net").unwrap(), rp()];
    assert_eq!(s.run(&rt_bytes()), Ok(()));
}

#[test]
fn save_rejects_stale_and_future_tokens() {
    let mut s = Save::new();
    s.freshness = Freshness::symmetric(Duration::seconds(10)).unwrap();
    assert_eq!(s.run(&rt_bytes()), Err(Rejected::Stale.into()));
    let mut t = recovery_token();
    t.issued_time = IssuedTime::from_instant(NOW + Duration::seconds(11));
    assert_eq!(
        s.run(&signed(&t, &ap_key())),
        Err(Rejected::IssuedInFuture.into())
    );
}

#[test]
fn save_checks_binding() {
    let mut t = recovery_token();
    t.binding = vec![0xaa; 8];
    let b = signed(&t, &ap_key());
    let mut s = Save::new();
    assert_eq!(s.run(&b), Err(Rejected::BindingUnexpected.into()));
    s.binding = Some(vec![0xbb; 8]);
    assert_eq!(s.run(&b), Err(Rejected::BindingMismatch.into()));
    s.binding = Some(vec![0xaa; 8]);
    assert_eq!(s.run(&b), Ok(()));
    s.binding = Some(vec![0xaa; 8]);
    assert_eq!(s.run(&rt_bytes()), Err(Rejected::BindingMismatch.into()));
}

struct Ret {
    ap: Origin,
    own: VerifyingKeys,
    rp: Origin,
    cs: VerifyingKeys,
    freshness: Freshness,
    binding: Option<Vec<u8>>,
}

impl Ret {
    fn new() -> Self {
        Self {
            ap: ap(),
            own: keys(&ap_key()),
            rp: rp(),
            cs: keys(&rp_key()),
            freshness: Freshness::DEFAULT,
            binding: None,
        }
    }

    fn run(&self, bytes: &[u8]) -> Result<bool, Error> {
        let check = ReturnCheck {
            account_provider: &self.ap,
            own_keys: &self.own,
            recovery_provider: &self.rp,
            countersign_keys: &self.cs,
            freshness: self.freshness,
            binding: self.binding.as_deref(),
        };
        CountersignedToken::decode(bytes)?
            .verify_return(&check, NOW)
            .map(|v| v.low_friction())
    }
}

fn cs_bytes() -> Vec<u8> {
    signed(&countersigned_over(rt_bytes()), &rp_key())
}

#[test]
fn return_accepts_a_good_token() {
    assert_eq!(Ret::new().run(&cs_bytes()), Ok(false));
}

#[test]
fn return_rejects_audience_of_another_provider() {
    let mut t = countersigned_over(rt_bytes());
    t.audience = Origin::parse("https://other.example.com").unwrap();
    assert_eq!(
        Ret::new().run(&signed(&t, &rp_key())),
        Err(Rejected::AudienceNotThisProvider.into())
    );
}

#[test]
fn return_rejects_inner_token_of_another_provider() {
    let mut inner = recovery_token();
    inner.issuer = Origin::parse("https://other.example.com").unwrap();
    let t = countersigned_over(signed(&inner, &ap_key()));
    assert_eq!(
        Ret::new().run(&signed(&t, &rp_key())),
        Err(Rejected::InnerIssuerNotThisProvider.into())
    );
}

#[test]
fn return_rejects_bad_inner_signature() {
    let t = countersigned_over(signed(&recovery_token(), &other_key()));
    assert_eq!(
        Ret::new().run(&signed(&t, &rp_key())),
        Err(Rejected::InnerSignatureInvalid.into())
    );
}

#[test]
fn return_rejects_countersigner_that_is_not_the_inner_audience() {
    let mut t = countersigned_over(rt_bytes());
    t.issuer = Origin::parse("https://evil.example.org").unwrap();
    let mut r = Ret::new();
    r.rp = t.issuer.clone();
    assert_eq!(
        r.run(&signed(&t, &rp_key())),
        Err(Rejected::CountersignerNotInnerAudience.into())
    );
}

#[test]
fn return_rejects_unexpected_countersigner() {
    let mut r = Ret::new();
    r.rp = Origin::parse("https://other-rp.example.net").unwrap();
    assert_eq!(
        r.run(&cs_bytes()),
        Err(Rejected::CountersignerMismatch.into())
    );
}

#[test]
fn return_rejects_bad_countersignature() {
    let b = signed(&countersigned_over(rt_bytes()), &other_key());
    assert_eq!(
        Ret::new().run(&b),
        Err(Rejected::CountersignatureInvalid.into())
    );
}

#[test]
fn return_checks_outer_freshness_only() {
    // The inner token is old: it was saved long ago. Only the countersignature must be fresh.
    let mut inner = recovery_token();
    inner.issued_time = IssuedTime::from_instant(NOW - Duration::days(400));
    let ok = signed(&countersigned_over(signed(&inner, &ap_key())), &rp_key());
    assert_eq!(Ret::new().run(&ok), Ok(false));

    let mut stale = countersigned_over(rt_bytes());
    stale.issued_time = IssuedTime::from_instant(NOW - Duration::hours(2));
    assert_eq!(
        Ret::new().run(&signed(&stale, &rp_key())),
        Err(Rejected::Stale.into())
    );
    let mut future = countersigned_over(rt_bytes());
    future.issued_time = IssuedTime::from_instant(NOW + Duration::hours(2));
    assert_eq!(
        Ret::new().run(&signed(&future, &rp_key())),
        Err(Rejected::IssuedInFuture.into())
    );
}

#[test]
fn return_checks_outer_binding_only() {
    let mut inner = recovery_token();
    inner.binding = vec![1, 2, 3];
    let ok = signed(&countersigned_over(signed(&inner, &ap_key())), &rp_key());
    assert_eq!(Ret::new().run(&ok), Ok(false));

    let mut t = countersigned_over(rt_bytes());
    t.binding = vec![0xaa; 8];
    let b = signed(&t, &rp_key());
    let mut r = Ret::new();
    assert_eq!(r.run(&b), Err(Rejected::BindingUnexpected.into()));
    r.binding = Some(vec![0xbb; 8]);
    assert_eq!(r.run(&b), Err(Rejected::BindingMismatch.into()));
    r.binding = Some(vec![0xaa; 8]);
    assert_eq!(r.run(&b), Ok(false));
}

/// The saved-token re-check, by the recorded key's id or (without one) verifying again; the
/// key it names as the signer.
fn recheck(
    bytes: &[u8],
    check: &SavedCheck<'_>,
    signer: Option<&KeyId>,
) -> Result<VerifyingKey, Error> {
    let token = RecoveryToken::decode(bytes)?;
    let verified = match signer {
        Some(id) => token.verify_saved_signed_by(check, id)?,
        None => token.verify_saved(check)?,
    };
    Ok(verified.signer().clone())
}

#[test]
fn the_signer_is_the_key_of_a_rotating_set_that_verified() {
    let set = VerifyingKeys::new([other_key().verifying_key(), ap_key().verifying_key()]).unwrap();
    let check = SavedCheck {
        issuer: &ap(),
        issuer_keys: &set,
        authoritative: &[rp()],
    };
    assert_eq!(
        recheck(&rt_bytes(), &check, None),
        Ok(ap_key().verifying_key())
    );
}

#[test]
fn saved_token_signed_by_a_published_key_is_accepted_without_its_signature() {
    let set = VerifyingKeys::new([other_key().verifying_key(), ap_key().verifying_key()]).unwrap();
    let check = SavedCheck {
        issuer: &ap(),
        issuer_keys: &set,
        authoritative: &[rp()],
    };
    let signer = ap_key().verifying_key().key_id();
    // A broken signature: the check relies on the recorded key, not on verifying it again.
    let mut bytes = rt_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        recheck(&bytes, &check, None),
        Err(Rejected::SignatureInvalid.into())
    );
    assert_eq!(
        recheck(&bytes, &check, Some(&signer)),
        Ok(ap_key().verifying_key())
    );
}

#[test]
fn saved_token_whose_signer_was_retired_is_refused() {
    let check = SavedCheck {
        issuer: &ap(),
        issuer_keys: &keys(&other_key()),
        authoritative: &[rp()],
    };
    let signer = ap_key().verifying_key().key_id();
    let got = recheck(&rt_bytes(), &check, Some(&signer));
    assert_eq!(got, Err(Rejected::SignerNotPublished.into()));
    let e = got.unwrap_err();
    assert_eq!(
        (e.code(), e.step()),
        ("signer_not_published", "§3.4 step 4")
    );
}

#[test]
fn saved_token_signed_by_still_checks_issuer_and_audience() {
    let published = keys(&ap_key());
    let signer = ap_key().verifying_key().key_id();
    let other_issuer = SavedCheck {
        issuer: &Origin::parse("https://other.example.com").unwrap(),
        issuer_keys: &published,
        authoritative: &[rp()],
    };
    assert_eq!(
        recheck(&rt_bytes(), &other_issuer, Some(&signer)),
        Err(Rejected::IssuerMismatch.into())
    );
    let foreign_audience = SavedCheck {
        issuer: &ap(),
        issuer_keys: &published,
        authoritative: &[Origin::parse("https://mail.rp.example.net").unwrap()],
    };
    assert_eq!(
        recheck(&rt_bytes(), &foreign_audience, Some(&signer)),
        Err(Rejected::AudienceNotAuthoritative.into())
    );
}

#[test]
fn countersign_produces_what_the_account_provider_accepts() {
    let rt = rt_bytes();
    let saved = RecoveryToken::decode(&rt).unwrap();
    let verified = saved
        .verify_saved(&SavedCheck {
            issuer: &ap(),
            issuer_keys: &keys(&ap_key()),
            authoritative: &[rp()],
        })
        .unwrap();
    let key = rp_key();
    let cs = countersign(
        &verified,
        Countersign {
            key: &key,
            token_id: TokenId::new([0x33; 16]),
            issued: NOW,
            binding: Vec::new(),
            low_friction: true,
            max_size: MAX_TOKEN_LEN,
        },
    )
    .unwrap();
    let view = TokenView::decode(cs.as_bytes()).unwrap();
    assert_eq!(view.issuer(), "https://rp.example.net");
    assert_eq!(view.audience(), "https://ap.example.com");
    assert_eq!(view.data(), &rt[..]);
    assert_eq!(Ret::new().run(cs.as_bytes()), Ok(true));
}

#[test]
fn countersign_refuses_an_inner_token_too_large_for_the_data_field() {
    let mut inner = recovery_token();
    inner.data = vec![0; 65_500];
    let rt = signed(&inner, &ap_key());
    let verified = RecoveryToken::decode(&rt)
        .unwrap()
        .verify_saved(&SavedCheck {
            issuer: &ap(),
            issuer_keys: &keys(&ap_key()),
            authoritative: &[rp()],
        })
        .unwrap();
    let key = rp_key();
    let err = countersign(
        &verified,
        Countersign {
            key: &key,
            token_id: TokenId::new([0x33; 16]),
            issued: NOW,
            binding: Vec::new(),
            low_friction: false,
            max_size: MAX_TOKEN_LEN,
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::Misuse(Misuse::FieldTooLong {
            field: "data",
            len: rt.len()
        })
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn flipping_any_bit_of_a_countersigned_token_fails(bit in 0usize..8 * 400) {
        let mut b = cs_bytes();
        let at = (bit / 8) % b.len();
        b[at] ^= 1 << (bit % 8);
        proptest::prop_assert!(Ret::new().run(&b).is_err());
    }

    #[test]
    fn flipping_any_bit_of_a_recovery_token_fails(bit in 0usize..8 * 200) {
        let mut b = rt_bytes();
        let at = (bit / 8) % b.len();
        b[at] ^= 1 << (bit % 8);
        proptest::prop_assert!(Save::new().run(&b).is_err());
    }
}
