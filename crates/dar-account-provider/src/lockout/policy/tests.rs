//! Tests of the policy: the default rules on every combination of evidence, validation,
//! configuration parsing, and monotonicity.

use proptest::prelude::*;

use super::*;

/// The evidence items the tables combine.
const ITEMS: [&str; 10] = ["A", "B", "A2", "LF", "OLD", "RC", "EC", "TC1", "TC2", "PW"];

fn origin(host: &str) -> Origin {
    Origin::parse(&format!("https://{host}")).unwrap()
}

fn delegated(host: &str, low_friction: bool, days: i64) -> Evidence {
    Evidence::Delegated {
        recovery_provider: origin(host),
        low_friction,
        token_age: Duration::days(days),
    }
}

fn contact(name: &str) -> Evidence {
    Evidence::TrustedContact {
        contact: name.to_owned(),
    }
}

/// The evidence an item stands for.
fn item(name: &str) -> Vec<Evidence> {
    match name {
        // A token from recovery provider A (a month old, full friction).
        "A" => vec![delegated("rp-a.example", false, 30)],
        // A token from recovery provider B.
        "B" => vec![delegated("rp-b.example", false, 200)],
        // A second token from recovery provider A: the same provider counts once.
        "A2" => vec![delegated("rp-a.example", false, 90)],
        // A low-friction token from recovery provider C.
        "LF" => vec![delegated("rp-c.example", true, 30)],
        // A token from recovery provider D, older than a year.
        "OLD" => vec![delegated("rp-d.example", false, 366)],
        "RC" => vec![Evidence::RecoveryCode],
        "EC" => vec![Evidence::EmailCode],
        // One trusted contact's approval.
        "TC1" => vec![contact("carol")],
        // Two more trusted contacts' approvals.
        "TC2" => vec![contact("dave"), contact("erin")],
        "PW" => vec![Evidence::Password],
        _ => panic!("unknown item {name}"),
    }
}

fn evidence(items: &str) -> EvidenceSet {
    items.split_whitespace().flat_map(item).collect()
}

/// A decision in table form: `unlock: <rule>`, `timed: <rule>`, `review: <rule>`, `refused`.
fn summary(d: &Decision) -> String {
    match d {
        Decision::UnlockNow { rule } => format!("unlock: {rule}"),
        Decision::TimedUnlock {
            rule,
            waiting_period,
        } => {
            assert_eq!(*waiting_period, Duration::hours(72));
            format!("timed: {rule}")
        }
        Decision::Review { rule } => format!("review: {rule}"),
        Decision::Refused { .. } => "refused".to_owned(),
    }
}

/// The default policy on chosen combinations: every rule, and each boundary around it.
#[test]
fn default_policy_table() {
    let table = [
        // evidence                  decision
        ("", "refused"),
        // Delegated tokens alone.
        ("A", "timed: recovery provider"),
        ("A A2", "timed: recovery provider"), // one provider, two tokens
        ("A B", "unlock: two recovery providers"),
        ("A A2 B", "unlock: two recovery providers"),
        ("LF", "timed: recovery provider"), // low friction counts for timed
        ("A LF", "timed: recovery provider"), // ...but not for unlock
        ("OLD", "refused"),                 // too old: does not count at all
        ("A OLD", "timed: recovery provider"),
        ("LF OLD", "timed: recovery provider"),
        // Delegated and email.
        ("A EC", "unlock: recovery provider and email"),
        ("B EC", "unlock: recovery provider and email"),
        ("LF EC", "timed: recovery provider"),
        ("OLD EC", "refused"),
        ("A B EC", "unlock: two recovery providers"),
        // Recovery code.
        ("RC", "timed: recovery code"),
        ("RC PW", "unlock: recovery code and password"),
        ("RC EC", "timed: recovery code"),
        ("LF RC", "timed: recovery provider"),
        ("LF RC PW", "unlock: recovery code and password"),
        ("A RC", "timed: recovery provider"),
        // Email, password: never enough, alone or together.
        ("EC", "refused"),
        ("PW", "refused"),
        ("EC PW", "refused"),
        ("A PW", "timed: recovery provider"),
        // Trusted contacts: never alone, need two distinct, and then only timed.
        ("TC1", "refused"),
        ("TC2", "refused"),
        ("TC1 TC2", "refused"),
        ("TC1 EC", "refused"),
        ("TC2 EC", "timed: trusted contacts and email"),
        ("TC1 TC2 EC PW", "timed: trusted contacts and email"),
        ("TC2 PW", "refused"),
        ("TC2 OLD EC", "timed: trusted contacts and email"),
        ("TC2 EC A", "unlock: recovery provider and email"),
        // Everything.
        (
            "A B A2 LF OLD RC EC TC1 TC2 PW",
            "unlock: two recovery providers",
        ),
    ];
    let policy = LockoutPolicy::default();
    for (items, expected) in table {
        let got = summary(&decide(&policy, &evidence(items)));
        assert_eq!(got, expected, "evidence {items:?}");
    }
}

/// The default rules restated in plain terms, independently of [`decide`]'s rule matching.
fn default_oracle(items: &[&str]) -> String {
    let has = |n: &str| items.contains(&n);
    // Distinct full-friction providers that are not too old: A (A or A2) and B.
    let strong = usize::from(has("A") || has("A2")) + usize::from(has("B"));
    // Any provider that is not too old: also C, the low-friction one. D is too old.
    let any = strong + usize::from(has("LF"));
    let contacts = usize::from(has("TC1")) + 2 * usize::from(has("TC2"));
    let (rc, ec, pw) = (has("RC"), has("EC"), has("PW"));
    if strong >= 2 {
        "unlock: two recovery providers"
    } else if strong >= 1 && ec {
        "unlock: recovery provider and email"
    } else if rc && pw {
        "unlock: recovery code and password"
    } else if any >= 1 {
        "timed: recovery provider"
    } else if rc {
        "timed: recovery code"
    } else if contacts >= 2 && ec {
        "timed: trusted contacts and email"
    } else {
        "refused"
    }
    .to_owned()
}

fn subset(mask: u32) -> Vec<&'static str> {
    ITEMS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// Every one of the 1024 combinations of the ten items, against the plain restatement.
#[test]
fn default_policy_on_the_whole_power_set() {
    let policy = LockoutPolicy::default();
    for mask in 0..(1u32 << ITEMS.len()) {
        let items = subset(mask);
        let got = summary(&decide(&policy, &evidence(&items.join(" "))));
        assert_eq!(got, default_oracle(&items), "evidence {items:?}");
    }
}

/// Adding any item to any combination never lowers the decision under the default policy.
#[test]
fn default_policy_is_monotonic_on_the_power_set() {
    let policy = LockoutPolicy::default();
    for mask in 0..(1u32 << ITEMS.len()) {
        let before = decide(&policy, &evidence(&subset(mask).join(" "))).rank();
        for (extra, name) in ITEMS.iter().enumerate() {
            let more = subset(mask | (1 << extra));
            let after = decide(&policy, &evidence(&more.join(" "))).rank();
            assert!(after >= before, "adding {name} to {:?}", subset(mask));
        }
    }
}

#[test]
fn decisions_rank_refused_review_timed_unlock() {
    let rule = || "r".to_owned();
    let ranks = [
        Decision::Refused { next_steps: vec![] }.rank(),
        Decision::Review { rule: rule() }.rank(),
        Decision::TimedUnlock {
            rule: rule(),
            waiting_period: Duration::HOUR,
        }
        .rank(),
        Decision::UnlockNow { rule: rule() }.rank(),
    ];
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    assert!(Outcome::Review < Outcome::Timed && Outcome::Timed < Outcome::Unlock);
    assert_eq!(Decision::Review { rule: rule() }.rule(), Some("r"));
    assert_eq!(Decision::Refused { next_steps: vec![] }.outcome(), None);
}

fn refused_steps(items: &str) -> Vec<NextStep> {
    match decide(&LockoutPolicy::default(), &evidence(items)) {
        Decision::Refused { next_steps } => next_steps,
        other => panic!("{items:?} gave {other:?}"),
    }
}

#[test]
fn refusal_names_the_cheapest_way_to_the_best_outcome() {
    // An email code: one recovery provider more unlocks at once.
    let steps = refused_steps("EC");
    assert_eq!(steps[0].rule, "recovery provider and email");
    assert_eq!(
        steps[0].missing,
        vec![Missing::DelegatedTokens {
            more: 1,
            low_friction_counts: false
        }]
    );
    // The password: a recovery code more.
    let steps = refused_steps("PW");
    assert_eq!(steps[0].rule, "recovery code and password");
    assert_eq!(steps[0].missing, vec![Missing::RecoveryCode]);
    // One trusted contact and an email code: the unlock rules first, then (among the timed
    // ones) any recovery provider, even low friction, or a recovery code.
    let steps = refused_steps("TC1 EC");
    let timed: Vec<_> = steps
        .iter()
        .filter(|s| s.outcome == Outcome::Timed)
        .map(|s| (s.rule.as_str(), s.missing.clone()))
        .collect();
    assert_eq!(
        timed,
        vec![
            (
                "recovery provider",
                vec![Missing::DelegatedTokens {
                    more: 1,
                    low_friction_counts: true
                }]
            ),
            ("recovery code", vec![Missing::RecoveryCode]),
            (
                "trusted contacts and email",
                vec![Missing::TrustedContacts { more: 1 }]
            ),
        ]
    );
    // Every rule appears, best outcome first; each step's missing kinds are named.
    assert_eq!(steps.len(), 6);
    assert!(steps.windows(2).all(|w| w[0].outcome >= w[1].outcome));
    assert_eq!(steps[0].missing[0].kind(), EvidenceKind::Delegated);
    // Nothing at all: three unlock rules of effort 2, in policy order.
    let steps = refused_steps("");
    assert_eq!(steps[0].rule, "two recovery providers");
    assert_eq!(steps[0].effort(), 2);
    // A too-old token is as good as none.
    assert_eq!(refused_steps("OLD"), steps);
}

#[test]
fn token_age_boundary_is_inclusive() {
    let policy = LockoutPolicy::default();
    let at = |age: Duration| {
        let e: EvidenceSet = [Evidence::Delegated {
            recovery_provider: origin("rp-a.example"),
            low_friction: false,
            token_age: age,
        }]
        .into_iter()
        .collect();
        decide(&policy, &e).rank()
    };
    assert_eq!(at(policy.max_token_age()), 2);
    assert_eq!(at(policy.max_token_age() + Duration::SECOND), 0);
    // A token from the future (clock skew) is not too old.
    assert_eq!(at(-Duration::MINUTE), 2);
}

#[test]
fn trusted_contacts_count_distinct_approvals() {
    let mut policy = LockoutPolicy::default();
    let twice_carol: EvidenceSet = [contact("carol"), contact("carol"), Evidence::EmailCode]
        .into_iter()
        .collect();
    assert_eq!(summary(&decide(&policy, &twice_carol)), "refused");
    policy.trusted_contacts_required = 1;
    assert_eq!(
        summary(&decide(&policy, &twice_carol)),
        "timed: trusted contacts and email"
    );
}

#[test]
fn evidence_from_a_recovery_and_kinds() {
    assert_eq!(
        delegated("rp-a.example", true, 1).kind(),
        EvidenceKind::Delegated
    );
    let kinds: Vec<_> = EvidenceKind::ALL.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        kinds,
        [
            "delegated",
            "recovery_code",
            "email_code",
            "trusted_contact",
            "password"
        ]
    );
    let mut set = EvidenceSet::new();
    assert!(set.is_empty());
    set.extend([Evidence::Password, Evidence::RecoveryCode]);
    assert_eq!(set.len(), 2);
    assert_eq!(
        set.iter().map(Evidence::kind).collect::<Vec<_>>(),
        [EvidenceKind::Password, EvidenceKind::RecoveryCode]
    );
}

#[test]
fn helpers_for_the_factor_pause_and_contact_cooldown() {
    let policy = LockoutPolicy::default();
    assert_eq!(
        policy.factor_enable_pause(Duration::days(29)),
        Duration::ZERO
    );
    assert_eq!(
        policy.factor_enable_pause(Duration::days(30)),
        Duration::hours(24)
    );
    let added = time::macros::datetime!(2026-12-01 12:00 UTC);
    assert!(!policy.trusted_contact_usable(added, added + Duration::days(7) - Duration::SECOND));
    assert!(policy.trusted_contact_usable(added, added + Duration::days(7)));
}

/// The policy as the design writes it in the server configuration.
const DESIGN_TOML: &str = r#"
waiting_period_secs = 259200
notice_interval_secs = 86400
final_notice_before_secs = 21600
factor_enable_pause_secs = 86400
factor_enable_pause_min_account_age_secs = 2592000
max_token_age_secs = 31536000
trusted_contacts_required = 2
trusted_contact_cooldown_secs = 604800
[[rules]]
name = "two recovery providers"
delegated_tokens = 2
outcome = "unlock"
[[rules]]
name = "recovery provider and email"
delegated_tokens = 1
email_code = true
outcome = "unlock"
[[rules]]
name = "recovery code and password"
recovery_code = true
password = true
outcome = "unlock"
[[rules]]
name = "recovery provider"
delegated_tokens = 1
outcome = "timed"
[[rules]]
name = "recovery code"
recovery_code = true
outcome = "timed"
[[rules]]
name = "trusted contacts and email"
trusted_contacts = true
email_code = true
outcome = "timed"
"#;

#[test]
fn default_is_the_documented_configuration_and_valid() {
    let parsed: LockoutPolicy = toml::from_str(DESIGN_TOML).unwrap();
    assert_eq!(parsed, LockoutPolicy::default());
    LockoutPolicy::default().validate().unwrap();
    // An empty table is the default; serialising and reading back changes nothing.
    assert_eq!(
        toml::from_str::<LockoutPolicy>("").unwrap(),
        LockoutPolicy::default()
    );
    let text = toml::to_string(&LockoutPolicy::default()).unwrap();
    assert_eq!(
        toml::from_str::<LockoutPolicy>(&text).unwrap(),
        LockoutPolicy::default()
    );
}

#[test]
fn configuration_refuses_unknown_keys_and_outcomes() {
    let unknown = toml::from_str::<LockoutPolicy>("waiting_period = 3600").unwrap_err();
    assert!(unknown.to_string().contains("unknown field"), "{unknown}");
    let in_rule = "[[rules]]\nname = \"x\"\nemail = true\noutcome = \"unlock\"";
    let err = toml::from_str::<LockoutPolicy>(in_rule).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let outcome = "[[rules]]\nname = \"x\"\npassword = true\noutcome = \"maybe\"";
    let err = toml::from_str::<LockoutPolicy>(outcome).unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
    let no_outcome = "[[rules]]\nname = \"x\"\npassword = true";
    let err = toml::from_str::<LockoutPolicy>(no_outcome).unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
}

fn violation(edit: impl FnOnce(&mut LockoutPolicy)) -> PolicyViolation {
    let mut policy = LockoutPolicy::default();
    edit(&mut policy);
    match policy.validate() {
        Err(AccountProviderError::InvalidLockoutPolicy(v)) => v,
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

fn rule(name: &str, outcome: Outcome, edit: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule::new(name, outcome);
    edit(&mut r);
    r
}

#[test]
fn validation_names_each_mistake() {
    use PolicyViolation as V;
    let s = |x: &str| x.to_owned();
    assert_eq!(violation(|p| p.rules.clear()), V::NoRules);
    assert_eq!(violation(|p| p.rules[2].name = s(" ")), V::UnnamedRule);
    assert_eq!(
        violation(|p| p.rules[1].name = s("two recovery providers")),
        V::DuplicateRuleName(s("two recovery providers"))
    );
    assert_eq!(
        violation(|p| p.rules.push(Rule::new("anyone", Outcome::Review))),
        V::RuleWithoutRequirement(s("anyone"))
    );
    assert_eq!(
        violation(|p| p
            .rules
            .push(rule("friends", Outcome::Review, |r| r.trusted_contacts = true))),
        V::TrustedContactsAlone(s("friends"))
    );
    assert_eq!(
        violation(|p| p.rules.insert(
            0,
            rule("friends and mail", Outcome::Unlock, |r| {
                r.trusted_contacts = true;
                r.email_code = true;
            })
        )),
        V::TrustedContactsUnlock(s("friends and mail"))
    );
    assert_eq!(
        violation(|p| p.rules[0].delegated_tokens = MAX_DELEGATED_TOKENS + 1),
        V::TooManyDelegatedTokens(s("two recovery providers"))
    );
    assert_eq!(
        violation(|p| p
            .rules
            .push(rule("late", Outcome::Unlock, |r| r.password = true))),
        V::RulesOutOfOrder {
            rule: s("late"),
            after: s("trusted contacts and email"),
        }
    );
    assert_eq!(
        violation(|p| p.waiting_period_secs = 0),
        V::ZeroWaitingPeriod
    );
    assert_eq!(
        violation(|p| p.notice_interval_secs = 0),
        V::ZeroNoticeInterval
    );
    assert_eq!(
        violation(|p| p.final_notice_before_secs = p.waiting_period_secs),
        V::FinalNoticeNotInsideWaitingPeriod
    );
    assert_eq!(violation(|p| p.max_token_age_secs = 0), V::ZeroMaxTokenAge);
    assert_eq!(
        violation(|p| p.trusted_contacts_required = 0),
        V::ZeroTrustedContactsRequired
    );
    assert_eq!(
        violation(|p| p.trusted_contact_cooldown_secs = MAX_DURATION_SECS + 1),
        V::DurationTooLong {
            field: "trusted_contact_cooldown_secs"
        }
    );
    let e = AccountProviderError::InvalidLockoutPolicy(V::TrustedContactsAlone(s("friends")));
    assert_eq!(e.code(), "invalid_lockout_policy");
    assert_eq!(
        e.to_string(),
        "invalid lockout policy: rule \"friends\" requires only trusted contacts"
    );
}

#[test]
fn waiting_settings_matter_only_with_timed_rules() {
    let mut policy = LockoutPolicy::default();
    policy.rules.retain(|r| r.outcome != Outcome::Timed);
    policy.rules.push(rule("staff", Outcome::Review, |r| {
        r.trusted_contacts = true;
        r.email_code = true;
    }));
    policy.waiting_period_secs = 0;
    policy.notice_interval_secs = 0;
    policy.validate().unwrap();
}

fn any_evidence() -> impl Strategy<Value = Evidence> {
    prop_oneof![
        (0..4u8, any::<bool>(), -10..800i64).prop_map(|(rp, lf, days)| delegated(
            &format!("rp-{rp}.example"),
            lf,
            days
        )),
        Just(Evidence::RecoveryCode),
        Just(Evidence::EmailCode),
        (0..4u8).prop_map(|c| contact(&format!("contact-{c}"))),
        Just(Evidence::Password),
    ]
}

fn any_rule() -> impl Strategy<Value = Rule> {
    (
        0..4u32,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(Outcome::Unlock),
            Just(Outcome::Timed),
            Just(Outcome::Review)
        ],
    )
        .prop_map(|(delegated_tokens, rc, ec, tc, pw, outcome)| Rule {
            name: String::new(),
            delegated_tokens,
            recovery_code: rc,
            email_code: ec,
            trusted_contacts: tc,
            password: pw,
            outcome,
        })
}

/// A policy from arbitrary rules, sorted and named, valid or not.
fn any_policy() -> impl Strategy<Value = LockoutPolicy> {
    (
        proptest::collection::vec(any_rule(), 0..8),
        0..4u32,
        0..3u64,
    )
        .prop_map(|(mut rules, required, age_years)| {
            rules.sort_by_key(|r| core::cmp::Reverse(r.outcome));
            for (i, r) in rules.iter_mut().enumerate() {
                r.name = format!("rule {i}");
            }
            LockoutPolicy {
                rules,
                trusted_contacts_required: required,
                max_token_age_secs: age_years * 365 * 86_400,
                ..LockoutPolicy::default()
            }
        })
}

/// A policy that passes validation: [`any_policy`] with its mistakes repaired.
fn valid_policy() -> impl Strategy<Value = LockoutPolicy> {
    (any_policy(), any_rule()).prop_map(|(mut p, fallback)| {
        if p.rules.is_empty() {
            p.rules.push(fallback);
        }
        for r in &mut p.rules {
            if !r.requires_other_than_contacts() {
                r.password = true;
            }
            if r.trusted_contacts && r.outcome == Outcome::Unlock {
                r.outcome = Outcome::Timed;
            }
        }
        p.rules.sort_by_key(|r| core::cmp::Reverse(r.outcome));
        for (i, r) in p.rules.iter_mut().enumerate() {
            r.name = format!("rule {i}");
        }
        p.trusted_contacts_required = p.trusted_contacts_required.max(1);
        p.max_token_age_secs = p.max_token_age_secs.max(86_400);
        p
    })
}

proptest! {
    /// `decide` never panics, whatever the policy (valid or not) and the evidence.
    #[test]
    fn decide_never_panics(
        policy in any_policy(),
        evidence in proptest::collection::vec(any_evidence(), 0..12),
    ) {
        let set: EvidenceSet = evidence.into_iter().collect();
        let d = decide(&policy, &set);
        if let Decision::Refused { next_steps } = d {
            prop_assert!(next_steps.iter().all(|s| !s.missing.is_empty()));
        }
    }

    /// For every valid policy, adding evidence never lowers the decision's rank.
    #[test]
    fn more_evidence_never_makes_it_worse(
        policy in valid_policy(),
        evidence in proptest::collection::vec(any_evidence(), 0..8),
        extra in proptest::collection::vec(any_evidence(), 0..6),
    ) {
        prop_assert_eq!(policy.validate(), Ok(()));
        let mut set: EvidenceSet = evidence.into_iter().collect();
        let before = decide(&policy, &set);
        set.extend(extra);
        let after = decide(&policy, &set);
        prop_assert!(after.rank() >= before.rank(), "{before:?} then {after:?}");
    }

    /// A refusal's next steps are sufficient: adding what any one step lists makes some rule
    /// match (contacts and providers as new distinct ones).
    #[test]
    fn next_steps_lead_somewhere(
        policy in any_policy(),
        evidence in proptest::collection::vec(any_evidence(), 0..8),
    ) {
        let mut set: EvidenceSet = evidence.into_iter().collect();
        let Decision::Refused { next_steps } = decide(&policy, &set) else {
            return Ok(());
        };
        let Some(step) = next_steps.first() else {
            return Ok(());
        };
        for (i, m) in step.missing.iter().enumerate() {
            match m {
                Missing::DelegatedTokens { more, .. } => {
                    for n in 0..*more {
                        set.push(delegated(&format!("new-{i}-{n}.example"), false, 0));
                    }
                }
                Missing::TrustedContacts { more } => {
                    for n in 0..*more {
                        set.push(contact(&format!("new-{i}-{n}")));
                    }
                }
                Missing::RecoveryCode => set.push(Evidence::RecoveryCode),
                Missing::EmailCode => set.push(Evidence::EmailCode),
                Missing::Password => set.push(Evidence::Password),
            }
        }
        prop_assert!(decide(&policy, &set).rank() >= 1);
    }
}
