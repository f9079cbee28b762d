//! The evidence vocabulary, the declarative [`LockoutPolicy`] and [`decide`].
//!
//! A policy is an ordered list of [`Rule`]s. Each rule names the evidence it requires and the
//! [`Outcome`] it grants; the first rule the evidence satisfies decides. Because
//! [`LockoutPolicy::validate`] requires the rules to be ordered from the best outcome to the
//! worst, the first match is also the best match, and adding evidence never makes a decision
//! worse (see [`Decision::rank`]).
//!
//! ```
//! use dar_account_provider::lockout::{
//!     Decision, Evidence, EvidenceKind, EvidenceSet, LockoutPolicy, Missing, decide,
//! };
//! let policy = LockoutPolicy::default();
//! policy.validate()?;
//! // An email code alone proves only control of a mailbox: refused, with what would help.
//! let evidence: EvidenceSet = [Evidence::EmailCode].into_iter().collect();
//! let Decision::Refused { next_steps } = decide(&policy, &evidence) else {
//!     panic!("an email code alone must not unlock");
//! };
//! // The best next step: any one recovery provider's token unlocks at once.
//! assert_eq!(next_steps[0].rule, "recovery provider and email");
//! assert_eq!(
//!     next_steps[0].missing,
//!     vec![Missing::DelegatedTokens { more: 1, low_friction_counts: false }]
//! );
//! assert_eq!(next_steps[0].missing[0].kind(), EvidenceKind::Delegated);
//! # Ok::<(), dar_account_provider::AccountProviderError>(())
//! ```

use std::collections::BTreeSet;

use dar_core::Origin;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::AccountProviderError;
pub use crate::error::PolicyViolation;
use crate::provider::RecoveryEvidence;

/// The longest duration a policy may configure (10 years, in seconds): far beyond any
/// sensible value, and small enough that adding it to a time never overflows.
pub const MAX_DURATION_SECS: u64 = 10 * 366 * 24 * 60 * 60;

/// The most recovery providers a rule may require: more than any deployment knows.
pub const MAX_DELEGATED_TOKENS: u32 = 16;

/// One piece of evidence gathered during a recovery.
///
/// The caller adds a piece only once it verified it: a countersigned token accepted by
/// [`crate::AccountProvider::accept_countersigned`], a recovery code matched with
/// [`super::codes::match_recovery_code`], an email code checked with
/// [`super::codes::email_code_matches`], an approval made by a trusted contact from their own
/// signed-in session (once the contact's cooldown,
/// [`LockoutPolicy::trusted_contact_usable`], has passed), the password checked in this
/// recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A countersigned recovery token (§3.5).
    Delegated {
        /// The recovery provider that countersigned: tokens count per distinct provider.
        recovery_provider: Origin,
        /// The recovery provider re-authenticated the user only weakly (§6.4): such a token
        /// never counts for an [`Outcome::Unlock`] rule.
        low_friction: bool,
        /// How old the recovery token is: a token older than
        /// [`LockoutPolicy::max_token_age_secs`] does not count.
        token_age: Duration,
    },
    /// One of the account's saved recovery codes.
    RecoveryCode,
    /// A code sent to one of the account's verified notification addresses.
    EmailCode,
    /// The approval of a trusted contact, identified by their account id.
    TrustedContact {
        /// The approving contact's account id: approvals count per distinct contact.
        contact: String,
    },
    /// The account's password, proved in this recovery (a factor still bound to the account).
    Password,
}

impl Evidence {
    /// Its kind.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Self::Delegated { .. } => EvidenceKind::Delegated,
            Self::RecoveryCode => EvidenceKind::RecoveryCode,
            Self::EmailCode => EvidenceKind::EmailCode,
            Self::TrustedContact { .. } => EvidenceKind::TrustedContact,
            Self::Password => EvidenceKind::Password,
        }
    }
}

impl From<&RecoveryEvidence> for Evidence {
    fn from(e: &RecoveryEvidence) -> Self {
        Self::Delegated {
            recovery_provider: e.recovery_provider().clone(),
            low_friction: e.low_friction(),
            token_age: e.token_age(),
        }
    }
}

/// The kinds of [`Evidence`], without their details: what a page names and what storage
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvidenceKind {
    /// [`Evidence::Delegated`].
    Delegated,
    /// [`Evidence::RecoveryCode`].
    RecoveryCode,
    /// [`Evidence::EmailCode`].
    EmailCode,
    /// [`Evidence::TrustedContact`].
    TrustedContact,
    /// [`Evidence::Password`].
    Password,
}

impl EvidenceKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Delegated,
        Self::RecoveryCode,
        Self::EmailCode,
        Self::TrustedContact,
        Self::Password,
    ];

    /// A stable snake-case name (`delegated`, `recovery_code`, `email_code`,
    /// `trusted_contact`, `password`), the one storage uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delegated => "delegated",
            Self::RecoveryCode => "recovery_code",
            Self::EmailCode => "email_code",
            Self::TrustedContact => "trusted_contact",
            Self::Password => "password",
        }
    }
}

impl core::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The evidence gathered in one recovery, in the order it arrived. Repeats are harmless:
/// [`decide`] counts recovery providers and trusted contacts once each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidenceSet {
    items: Vec<Evidence>,
}

impl EvidenceSet {
    /// No evidence yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a piece.
    pub fn push(&mut self, evidence: Evidence) {
        self.items.push(evidence);
    }

    /// The pieces, in the order added.
    pub fn iter(&self) -> core::slice::Iter<'_, Evidence> {
        self.items.iter()
    }

    /// How many pieces (repeats included).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl FromIterator<Evidence> for EvidenceSet {
    fn from_iter<I: IntoIterator<Item = Evidence>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().collect(),
        }
    }
}

impl Extend<Evidence> for EvidenceSet {
    fn extend<I: IntoIterator<Item = Evidence>>(&mut self, iter: I) {
        self.items.extend(iter);
    }
}

impl<'a> IntoIterator for &'a EvidenceSet {
    type Item = &'a Evidence;
    type IntoIter = core::slice::Iter<'a, Evidence>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// What a rule grants, from the least to the most the claimant gets (the derived order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Staff decide (`dar recoveries approve|deny`).
    Review,
    /// Unlock after [`LockoutPolicy::waiting_period_secs`], with notices and cancel links to
    /// every verified address; the owner's cancel or sign-in ends it.
    Timed,
    /// Unlock now.
    Unlock,
}

/// One rule: the evidence it requires and what it grants. Every requirement left out is not
/// required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A unique name: shown to staff, recorded with the recovery.
    pub name: String,
    /// Countersigned tokens from this many distinct recovery providers (not too old; for an
    /// `unlock` rule, not low friction).
    #[serde(default)]
    pub delegated_tokens: u32,
    /// A recovery code.
    #[serde(default)]
    pub recovery_code: bool,
    /// An email code.
    #[serde(default)]
    pub email_code: bool,
    /// Approvals from [`LockoutPolicy::trusted_contacts_required`] distinct trusted contacts.
    #[serde(default)]
    pub trusted_contacts: bool,
    /// The password.
    #[serde(default)]
    pub password: bool,
    /// What the rule grants.
    pub outcome: Outcome,
}

impl Rule {
    /// A rule named `name` granting `outcome` that requires nothing yet; add requirements by
    /// setting the fields.
    pub fn new(name: &str, outcome: Outcome) -> Self {
        Self {
            name: name.to_owned(),
            delegated_tokens: 0,
            recovery_code: false,
            email_code: false,
            trusted_contacts: false,
            password: false,
            outcome,
        }
    }

    /// Whether the rule requires anything besides trusted contacts.
    fn requires_other_than_contacts(&self) -> bool {
        self.delegated_tokens > 0 || self.recovery_code || self.email_code || self.password
    }
}

/// The lockout-recovery policy: durations, limits and the ordered rules.
///
/// It reads from the `[account_provider.lockout]` table of the server configuration; every
/// field left out takes its default ([`LockoutPolicy::default`]), and rules given replace the
/// default rules entirely. Run [`LockoutPolicy::validate`] after loading.
///
/// ```
/// use dar_account_provider::lockout::{LockoutPolicy, Outcome};
/// let policy: LockoutPolicy = toml::from_str(
///     r#"
///     waiting_period_secs = 172800
///     [[rules]]
///     name = "two recovery providers"
///     delegated_tokens = 2
///     outcome = "unlock"
///     "#,
/// )?;
/// assert_eq!(policy.waiting_period_secs, 172_800);
/// assert_eq!(policy.rules[0].outcome, Outcome::Unlock);
/// assert_eq!(policy.notice_interval_secs, 86_400); // a default
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// How long a timed unlock waits (default 72 hours).
    pub waiting_period_secs: u64,
    /// How often a pending timed unlock reminds the owner (default every 24 hours).
    pub notice_interval_secs: u64,
    /// How long before completion the final notice goes out (default 6 hours).
    pub final_notice_before_secs: u64,
    /// How long a newly enabled second factor waits before it takes effect on an established
    /// account (default 24 hours): an attacker who took the session cannot lock the owner out
    /// at once.
    pub factor_enable_pause_secs: u64,
    /// From which account age the pause applies (default 30 days): new accounts have nothing
    /// to protect yet.
    pub factor_enable_pause_min_account_age_secs: u64,
    /// Recovery tokens older than this do not count (default 1 year).
    pub max_token_age_secs: u64,
    /// How many distinct trusted contacts must approve (default 2).
    pub trusted_contacts_required: u32,
    /// How long after being added a trusted contact may approve (default 7 days).
    pub trusted_contact_cooldown_secs: u64,
    /// The rules, best outcome first; the first one satisfied decides.
    pub rules: Vec<Rule>,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        let rule = |name: &str, outcome, f: fn(&mut Rule)| {
            let mut r = Rule::new(name, outcome);
            f(&mut r);
            r
        };
        Self {
            waiting_period_secs: 72 * 3600,
            notice_interval_secs: 24 * 3600,
            final_notice_before_secs: 6 * 3600,
            factor_enable_pause_secs: 24 * 3600,
            factor_enable_pause_min_account_age_secs: 30 * 24 * 3600,
            max_token_age_secs: 365 * 24 * 3600,
            trusted_contacts_required: 2,
            trusted_contact_cooldown_secs: 7 * 24 * 3600,
            rules: vec![
                rule("two recovery providers", Outcome::Unlock, |r| {
                    r.delegated_tokens = 2;
                }),
                rule("recovery provider and email", Outcome::Unlock, |r| {
                    r.delegated_tokens = 1;
                    r.email_code = true;
                }),
                rule("recovery code and password", Outcome::Unlock, |r| {
                    r.recovery_code = true;
                    r.password = true;
                }),
                rule("recovery provider", Outcome::Timed, |r| {
                    r.delegated_tokens = 1;
                }),
                rule("recovery code", Outcome::Timed, |r| r.recovery_code = true),
                rule("trusted contacts and email", Outcome::Timed, |r| {
                    r.trusted_contacts = true;
                    r.email_code = true;
                }),
            ],
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

impl LockoutPolicy {
    /// The waiting period of a timed unlock.
    pub fn waiting_period(&self) -> Duration {
        secs(self.waiting_period_secs)
    }

    /// The interval between reminders of a pending timed unlock.
    pub fn notice_interval(&self) -> Duration {
        secs(self.notice_interval_secs)
    }

    /// How long before completion the final notice is due.
    pub fn final_notice_before(&self) -> Duration {
        secs(self.final_notice_before_secs)
    }

    /// The age beyond which a recovery token does not count.
    pub fn max_token_age(&self) -> Duration {
        secs(self.max_token_age_secs)
    }

    /// How long a second factor enabled now on an account of age `account_age` waits before
    /// it takes effect: [`LockoutPolicy::factor_enable_pause_secs`] from the minimum account
    /// age on, zero before.
    ///
    /// ```
    /// use dar_account_provider::lockout::LockoutPolicy;
    /// use time::Duration;
    /// let policy = LockoutPolicy::default();
    /// assert_eq!(policy.factor_enable_pause(Duration::days(3)), Duration::ZERO);
    /// assert_eq!(policy.factor_enable_pause(Duration::days(400)), Duration::hours(24));
    /// ```
    pub fn factor_enable_pause(&self, account_age: Duration) -> Duration {
        if account_age >= secs(self.factor_enable_pause_min_account_age_secs) {
            secs(self.factor_enable_pause_secs)
        } else {
            Duration::ZERO
        }
    }

    /// Whether a trusted contact added at `added_at` may approve at `now` (its cooldown has
    /// passed). A contact an attacker adds after taking over a session is useless for a week.
    pub fn trusted_contact_usable(&self, added_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        added_at.saturating_add(secs(self.trusted_contact_cooldown_secs)) <= now
    }

    /// Checks the policy for mistakes that would weaken recovery or make it behave oddly.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::InvalidLockoutPolicy`] with the first [`PolicyViolation`]
    /// found.
    pub fn validate(&self) -> Result<(), AccountProviderError> {
        self.violation().map_or(Ok(()), |v| {
            Err(AccountProviderError::InvalidLockoutPolicy(v))
        })
    }

    fn violation(&self) -> Option<PolicyViolation> {
        let durations = [
            ("waiting_period_secs", self.waiting_period_secs),
            ("notice_interval_secs", self.notice_interval_secs),
            ("final_notice_before_secs", self.final_notice_before_secs),
            ("factor_enable_pause_secs", self.factor_enable_pause_secs),
            (
                "factor_enable_pause_min_account_age_secs",
                self.factor_enable_pause_min_account_age_secs,
            ),
            ("max_token_age_secs", self.max_token_age_secs),
            (
                "trusted_contact_cooldown_secs",
                self.trusted_contact_cooldown_secs,
            ),
        ];
        if let Some((field, _)) = durations.iter().find(|(_, s)| *s > MAX_DURATION_SECS) {
            return Some(PolicyViolation::DurationTooLong { field });
        }
        if self.rules.is_empty() {
            return Some(PolicyViolation::NoRules);
        }
        if self.max_token_age_secs == 0 {
            return Some(PolicyViolation::ZeroMaxTokenAge);
        }
        if self.trusted_contacts_required == 0 {
            return Some(PolicyViolation::ZeroTrustedContactsRequired);
        }
        let mut names = BTreeSet::new();
        let mut previous: Option<&Rule> = None;
        for rule in &self.rules {
            if rule.name.trim().is_empty() {
                return Some(PolicyViolation::UnnamedRule);
            }
            if !names.insert(rule.name.as_str()) {
                return Some(PolicyViolation::DuplicateRuleName(rule.name.clone()));
            }
            if !rule.requires_other_than_contacts() && !rule.trusted_contacts {
                return Some(PolicyViolation::RuleWithoutRequirement(rule.name.clone()));
            }
            if rule.trusted_contacts && !rule.requires_other_than_contacts() {
                return Some(PolicyViolation::TrustedContactsAlone(rule.name.clone()));
            }
            if rule.trusted_contacts && rule.outcome == Outcome::Unlock {
                return Some(PolicyViolation::TrustedContactsUnlock(rule.name.clone()));
            }
            if rule.delegated_tokens > MAX_DELEGATED_TOKENS {
                return Some(PolicyViolation::TooManyDelegatedTokens(rule.name.clone()));
            }
            if let Some(before) = previous
                && before.outcome < rule.outcome
            {
                return Some(PolicyViolation::RulesOutOfOrder {
                    rule: rule.name.clone(),
                    after: before.name.clone(),
                });
            }
            previous = Some(rule);
        }
        if self.rules.iter().any(|r| r.outcome == Outcome::Timed) {
            if self.waiting_period_secs == 0 {
                return Some(PolicyViolation::ZeroWaitingPeriod);
            }
            if self.notice_interval_secs == 0 {
                return Some(PolicyViolation::ZeroNoticeInterval);
            }
            if self.final_notice_before_secs >= self.waiting_period_secs {
                return Some(PolicyViolation::FinalNoticeNotInsideWaitingPeriod);
            }
        }
        None
    }
}

/// What [`decide`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Restore access now (reset the second factor, revoke sessions, notify).
    UnlockNow {
        /// The rule that matched.
        rule: String,
    },
    /// Restore access after `waiting_period`, unless the owner cancels or signs in with the
    /// existing second factor first.
    TimedUnlock {
        /// The rule that matched.
        rule: String,
        /// How long to wait.
        waiting_period: Duration,
    },
    /// Hand the recovery to staff.
    Review {
        /// The rule that matched.
        rule: String,
    },
    /// Nothing yet: the evidence satisfies no rule.
    Refused {
        /// What would satisfy each rule, best outcome first, then least
        /// [effort](NextStep::effort).
        next_steps: Vec<NextStep>,
    },
}

impl Decision {
    /// The outcome granted; `None` when refused.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Self::UnlockNow { .. } => Some(Outcome::Unlock),
            Self::TimedUnlock { .. } => Some(Outcome::Timed),
            Self::Review { .. } => Some(Outcome::Review),
            Self::Refused { .. } => None,
        }
    }

    /// How much the decision grants: refused < review < timed < unlock. For a valid policy,
    /// adding evidence never lowers it. Timed ranks above review because it completes without
    /// anyone's action, unless the owner objects.
    pub fn rank(&self) -> u8 {
        match self.outcome() {
            None => 0,
            Some(Outcome::Review) => 1,
            Some(Outcome::Timed) => 2,
            Some(Outcome::Unlock) => 3,
        }
    }

    /// The name of the rule that matched, if one did.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::UnlockNow { rule } | Self::TimedUnlock { rule, .. } | Self::Review { rule } => {
                Some(rule)
            }
            Self::Refused { .. } => None,
        }
    }
}

/// What a refused recovery lacks to satisfy one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    /// The rule.
    pub rule: String,
    /// What it grants.
    pub outcome: Outcome,
    /// What is missing (at least one item).
    pub missing: Vec<Missing>,
}

impl NextStep {
    /// How many pieces of evidence are missing, counting each further recovery provider or
    /// contact.
    pub fn effort(&self) -> u32 {
        self.missing
            .iter()
            .map(|m| match m {
                Missing::DelegatedTokens { more, .. } | Missing::TrustedContacts { more } => *more,
                _ => 1,
            })
            .fold(0, u32::saturating_add)
    }
}

/// One missing piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Tokens from `more` further recovery providers (distinct from those already counted).
    DelegatedTokens {
        /// How many more providers.
        more: u32,
        /// Whether a low-friction token would do (not for an `unlock` rule).
        low_friction_counts: bool,
    },
    /// A recovery code.
    RecoveryCode,
    /// An email code.
    EmailCode,
    /// Approvals from `more` further trusted contacts.
    TrustedContacts {
        /// How many more contacts.
        more: u32,
    },
    /// The password.
    Password,
}

impl Missing {
    /// The kind of evidence that is missing.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Self::DelegatedTokens { .. } => EvidenceKind::Delegated,
            Self::RecoveryCode => EvidenceKind::RecoveryCode,
            Self::EmailCode => EvidenceKind::EmailCode,
            Self::TrustedContacts { .. } => EvidenceKind::TrustedContact,
            Self::Password => EvidenceKind::Password,
        }
    }
}

/// What the evidence amounts to, counted once.
struct Tally<'a> {
    /// Distinct recovery providers of tokens that are not too old.
    providers: BTreeSet<&'a Origin>,
    /// Those of them with at least one token that is not low friction.
    strong_providers: BTreeSet<&'a Origin>,
    contacts: BTreeSet<&'a str>,
    recovery_code: bool,
    email_code: bool,
    password: bool,
}

impl<'a> Tally<'a> {
    fn new(policy: &LockoutPolicy, evidence: &'a EvidenceSet) -> Self {
        let max_age = policy.max_token_age();
        let mut t = Tally {
            providers: BTreeSet::new(),
            strong_providers: BTreeSet::new(),
            contacts: BTreeSet::new(),
            recovery_code: false,
            email_code: false,
            password: false,
        };
        for e in evidence {
            match e {
                Evidence::Delegated {
                    recovery_provider,
                    low_friction,
                    token_age,
                } => {
                    if *token_age <= max_age {
                        t.providers.insert(recovery_provider);
                        if !low_friction {
                            t.strong_providers.insert(recovery_provider);
                        }
                    }
                }
                Evidence::RecoveryCode => t.recovery_code = true,
                Evidence::EmailCode => t.email_code = true,
                Evidence::TrustedContact { contact } => {
                    t.contacts.insert(contact.as_str());
                }
                Evidence::Password => t.password = true,
            }
        }
        t
    }

    /// What `rule` still lacks; empty when it is satisfied.
    fn missing(&self, policy: &LockoutPolicy, rule: &Rule) -> Vec<Missing> {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut missing = Vec::new();
        let low_friction_counts = rule.outcome != Outcome::Unlock;
        let providers = if low_friction_counts {
            count(self.providers.len())
        } else {
            count(self.strong_providers.len())
        };
        if providers < rule.delegated_tokens {
            missing.push(Missing::DelegatedTokens {
                more: rule.delegated_tokens - providers,
                low_friction_counts,
            });
        }
        if rule.recovery_code && !self.recovery_code {
            missing.push(Missing::RecoveryCode);
        }
        if rule.email_code && !self.email_code {
            missing.push(Missing::EmailCode);
        }
        let contacts = count(self.contacts.len());
        if rule.trusted_contacts && contacts < policy.trusted_contacts_required {
            missing.push(Missing::TrustedContacts {
                more: policy.trusted_contacts_required - contacts,
            });
        }
        if rule.password && !self.password {
            missing.push(Missing::Password);
        }
        missing
    }
}

/// Decides what `evidence` earns under `policy`: the first rule it satisfies, or refused with
/// the next steps.
///
/// Recovery providers count once each however many tokens they countersigned; a token older
/// than the policy's maximum age does not count; a low-friction token counts only for
/// `timed` and `review` rules; trusted contacts count only when at least
/// [`LockoutPolicy::trusted_contacts_required`] distinct ones approved. Never panics, for any
/// policy; for a policy that passes [`LockoutPolicy::validate`], more evidence never gives a
/// lower [`Decision::rank`].
pub fn decide(policy: &LockoutPolicy, evidence: &EvidenceSet) -> Decision {
    let tally = Tally::new(policy, evidence);
    let mut next_steps = Vec::new();
    for rule in &policy.rules {
        let missing = tally.missing(policy, rule);
        if missing.is_empty() {
            let name = rule.name.clone();
            return match rule.outcome {
                Outcome::Unlock => Decision::UnlockNow { rule: name },
                Outcome::Timed => Decision::TimedUnlock {
                    rule: name,
                    waiting_period: policy.waiting_period(),
                },
                Outcome::Review => Decision::Review { rule: name },
            };
        }
        next_steps.push(NextStep {
            rule: rule.name.clone(),
            outcome: rule.outcome,
            missing,
        });
    }
    // Best outcome first; among equals, the least effort; otherwise policy order
    // (the sort is stable).
    next_steps.sort_by(|a, b| b.outcome.cmp(&a.outcome).then(a.effort().cmp(&b.effort())));
    Decision::Refused { next_steps }
}

#[cfg(test)]
mod tests;
