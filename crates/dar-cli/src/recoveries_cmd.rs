//! `dar recoveries --config FILE list|show|approve|deny|through`: staff review of an account
//! provider's lockout recoveries, and of the delegated recoveries one recovery provider
//! countersigned in a window (§6.8), straight on the deployment's database (no running server
//! needed), with [`dar_server::staff`].
//!
//! Exit statuses follow the CLI contract: 0 done, 1 refused (unknown recovery, a state the
//! decision may not be taken from, a configuration that is not an account provider's, a
//! database failure), 2 a usage error (a missing `--config`, a bad staff name or reason).
//! Text read from the database (usernames, evidence details, audit details) is printed with
//! control characters escaped, so stored text cannot drive the staff member's terminal.

use dar_server::staff::{
    self, Decision, DelegatedRecovery, RecoveryDetail, RecoverySummary, StaffError,
};
use dar_store::{RecoveryId, Store};
use serde_json::{Value, json};

use crate::cli::{RecoveriesArgs, RecoveriesCommand};
use crate::output::{Failure, print_json};

/// Runs `dar recoveries`.
pub(crate) fn run(args: &RecoveriesArgs) -> Result<(), Failure> {
    let Some(path) = args.config.as_deref() else {
        return Err(Failure::usage(
            "recoveries: --config FILE is required (the deployment's configuration)",
        ));
    };
    let config = dar_server::config::Config::load(path).map_err(|e| {
        eprintln!("dar: invalid configuration: {e}");
        Failure::Invalid
    })?;
    let Some(ap) = &config.account_provider else {
        eprintln!(
            "dar: {}: this deployment is not an account provider",
            path.display()
        );
        return Err(Failure::Invalid);
    };
    let site = ap.mail.site_name.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let store = Store::open_existing(config.database.expose())
            .await
            .map_err(|e| {
                eprintln!("dar: cannot open the database of {}: {e}", path.display());
                Failure::Invalid
            })?;
        let result = command(&store, &site, &args.command).await;
        store.close().await;
        result
    })
}

async fn command(store: &Store, site: &str, command: &RecoveriesCommand) -> Result<(), Failure> {
    match command {
        RecoveriesCommand::List(a) => {
            let list = staff::list(store, a.state, a.limit)
                .await
                .map_err(failure)?;
            if a.json {
                let items: Vec<Value> = list.iter().map(summary_json).collect();
                print_json(&json!({ "recoveries": items }));
            } else {
                print!("{}", list_text(&list, a.state));
            }
        }
        RecoveriesCommand::Show(a) => {
            let detail = staff::show(store, RecoveryId(a.id))
                .await
                .map_err(failure)?;
            if a.json {
                print_json(&detail_json(&detail));
            } else {
                print!("{}", detail_text(&detail));
            }
        }
        RecoveriesCommand::Approve(a) => {
            let decision = staff::approve(store, site, RecoveryId(a.id), &a.staff, now()?)
                .await
                .map_err(failure)?;
            report(&decision, &a.staff, a.json);
        }
        RecoveriesCommand::Through(a) => {
            let origin = dar_core::Origin::parse_development(&a.recovery_provider)
                .map_err(|e| Failure::usage(format!("recoveries through: {e}")))?;
            let until = match a.until {
                Some(t) => t,
                None => time::OffsetDateTime::from_unix_timestamp(now()?)
                    .map_err(|_| Failure::usage("the system clock is out of range"))?,
            };
            let list = staff::through(store, &origin, a.since, until, a.limit)
                .await
                .map_err(failure)?;
            if a.json {
                let items: Vec<Value> = list.iter().map(delegated_json).collect();
                print_json(&json!({ "recovery_provider": origin.as_str(), "recoveries": items }));
            } else {
                print!("{}", through_text(&list, &origin));
            }
        }
        RecoveriesCommand::Deny(a) => {
            let decision = staff::deny(store, site, RecoveryId(a.id), &a.staff, &a.reason, now()?)
                .await
                .map_err(failure)?;
            report(&decision, &a.staff, a.json);
        }
    }
    Ok(())
}

/// One line on stderr; bad staff input is a usage error (exit 2), the rest exit 1.
fn failure(e: StaffError) -> Failure {
    match e {
        StaffError::InvalidStaffName(_) | StaffError::EmptyReason | StaffError::EmptyWindow => {
            Failure::usage(e.to_string())
        }
        StaffError::Store(store) => {
            eprintln!("dar: the database failed: {store}");
            Failure::Invalid
        }
        other => {
            eprintln!("dar: {other}");
            Failure::Invalid
        }
    }
}

fn now() -> Result<i64, Failure> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| Failure::usage("the system clock is before 1970"))
}

fn report(decision: &Decision, staff: &str, json: bool) {
    if json {
        print_json(&json!({
            "id": decision.id.0,
            "username": decision.username,
            "from": decision.from.as_str(),
            "to": decision.to.as_str(),
            "notices": decision.notices,
        }));
        return;
    }
    let (verb, effect) = if decision.to == dar_store::RecoveryState::Unlocked {
        ("approved", "; second factor reset, every session revoked")
    } else {
        ("denied", "")
    };
    println!(
        "recovery {} ({}) {verb} by staff:{}: {} -> {}{effect}; {} notice(s) queued",
        decision.id,
        printable(&decision.username),
        printable(staff.trim()),
        decision.from,
        decision.to,
        decision.notices
    );
}

fn summary_json(r: &RecoverySummary) -> Value {
    json!({
        "id": r.id.0,
        "account": r.account.0,
        "username": r.username,
        "state": r.state.as_str(),
        "outcome_rule": r.outcome_rule,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "completes_at": r.completes_at,
        "evidence": r.evidence_count,
    })
}

fn delegated_json(d: &DelegatedRecovery) -> Value {
    let r = &d.record;
    json!({
        "countersigned_id": r.countersigned_id.to_string(),
        "token_id": r.token_id.to_string(),
        "account": r.account_id,
        "username": d.username,
        "recovered_at": r.recovered_at.unix_timestamp(),
        "low_friction": r.low_friction,
        "repudiated_at": r.repudiated_at.map(|t| t.unix_timestamp()),
    })
}

fn through_text(list: &[DelegatedRecovery], origin: &dar_core::Origin) -> String {
    if list.is_empty() {
        return format!("no recoveries through {origin} in the window\n");
    }
    let header = [
        "RECOVERED",
        "ACCOUNT",
        "USERNAME",
        "LOW FRICTION",
        "REPUDIATED",
        "COUNTERSIGNED ID",
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let r = &d.record;
            vec![
                utc(r.recovered_at.unix_timestamp()),
                printable(&r.account_id),
                printable(&d.username),
                if r.low_friction { "yes" } else { "no" }.to_owned(),
                r.repudiated_at
                    .map_or_else(|| "-".to_owned(), |t| utc(t.unix_timestamp())),
                r.countersigned_id.to_string(),
            ]
        })
        .collect();
    table(&header, &rows)
}

fn detail_json(d: &RecoveryDetail) -> Value {
    let r = &d.recovery;
    json!({
        "id": r.id.0,
        "account": r.account.0,
        "username": d.username,
        "state": r.state.as_str(),
        "outcome_rule": r.outcome_rule,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "completes_at": r.completes_at,
        "decided_by": r.decided_by,
        "source_address": r.source_address,
        "evidence": d.evidence.iter().map(|e| json!({
            "kind": e.kind.as_str(),
            "reference": e.reference,
            "detail": e.detail,
            "added_at": e.added_at,
        })).collect::<Vec<_>>(),
        "audit": d.audit.iter().map(|a| json!({
            "id": a.id,
            "at": a.at,
            "actor": a.actor,
            "event": a.event,
            "detail": a.detail,
            "source_address": a.source_address,
        })).collect::<Vec<_>>(),
    })
}

fn list_text(list: &[RecoverySummary], filter: Option<dar_store::RecoveryState>) -> String {
    if list.is_empty() {
        return match filter {
            Some(state) => format!("no recoveries in state {state}\n"),
            None => "no recoveries\n".to_owned(),
        };
    }
    let header = [
        "ID",
        "STATE",
        "ACCOUNT",
        "RULE",
        "EVIDENCE",
        "STARTED",
        "UPDATED",
        "COMPLETES",
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.state.to_string(),
                printable(&r.username),
                r.outcome_rule.as_deref().map_or("-".into(), printable),
                r.evidence_count.to_string(),
                utc(r.created_at),
                utc(r.updated_at),
                r.completes_at.map_or("-".into(), utc),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// Columns padded to their widest cell, two spaces apart, no trailing spaces; `none` without
/// rows.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "none\n".to_owned();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn detail_text(d: &RecoveryDetail) -> String {
    let r = &d.recovery;
    let or_dash = |v: Option<&str>| v.map_or("-".into(), printable);
    let mut out = format!(
        "recovery {}\n  account      {} (id {})\n  state        {}\n  rule         {}\n  started      {} from {}\n  updated      {}\n  completes    {}\n  decided by   {}\n",
        r.id,
        printable(&d.username),
        r.account,
        r.state,
        or_dash(r.outcome_rule.as_deref()),
        utc(r.created_at),
        or_dash(r.source_address.as_deref()),
        utc(r.updated_at),
        r.completes_at.map_or("-".into(), utc),
        or_dash(r.decided_by.as_deref()),
    );
    out.push_str(&format!("evidence ({})\n", d.evidence.len()));
    let rows: Vec<Vec<String>> = d
        .evidence
        .iter()
        .map(|e| {
            vec![
                utc(e.added_at),
                e.kind.to_string(),
                or_dash(Some(e.reference.as_str()).filter(|s| !s.is_empty())),
                printable(&e.detail),
            ]
        })
        .collect();
    out.push_str(&indent(&table(
        &["ADDED", "KIND", "REFERENCE", "DETAIL"],
        &rows,
    )));
    out.push_str(&format!(
        "account history (last {}, newest first)\n",
        d.audit.len()
    ));
    let rows: Vec<Vec<String>> = d
        .audit
        .iter()
        .map(|a| {
            vec![
                utc(a.at),
                printable(&a.actor),
                printable(&a.event),
                printable(&a.detail),
            ]
        })
        .collect();
    out.push_str(&indent(&table(&["AT", "ACTOR", "EVENT", "DETAIL"], &rows)));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `2026-11-30T23:16:11Z`; the raw number if out of range.
fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), everything else as is.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
