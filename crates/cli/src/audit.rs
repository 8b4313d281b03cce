//! `evault audit …`: read the audit trail and check it against the audit
//! log's signed checkpoints.
//!
//! `verify` downloads every event up to the latest signed audit
//! checkpoint, recomputes each leaf from the event itself, rebuilds the
//! tree and compares its root with the signed one: every event is there,
//! unaltered, in order. With `--previous` (a checkpoint saved by an earlier
//! run with `--save`) it also checks that the older tree is a prefix of the
//! new one: nothing was removed or rewritten since.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use evault_merkle::{CompactRange, Hash};
use evault_note::Checkpoint;
use evault_verify::audit::AuditEvent;
use evault_verify::open_checkpoint;
use serde_json::{Value, json};

use crate::ClientOpts;
use crate::client::{Client, encode};
use crate::error::{CliError, CliResult, file_error};
use crate::output::{print_json, read_file};
use crate::proof::{LogKind, bundle_failure, load_verifiers};

/// `tail --follow` polls at most this often while events arrive …
const FOLLOW_MIN: Duration = Duration::from_secs(1);
/// … and backs off to this while none do: each poll is itself an audited
/// API call, so an idle follower adds at most one event per this period.
const FOLLOW_MAX: Duration = Duration::from_secs(10);

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the latest audit events (after the filters), oldest first;
    /// `--follow` keeps printing new ones.
    Tail {
        /// How many of the latest matching events to print (0: none, e.g.
        /// to only follow).
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u64,
        /// Start at this RFC 3339 time instead of the last `-n` events.
        #[arg(long)]
        since: Option<String>,
        /// Only events of this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only this operation (e.g. evidence.put).
        #[arg(long)]
        operation: Option<String>,
        /// Only this outcome: success, denied, unauthenticated or failed.
        #[arg(long)]
        outcome: Option<String>,
        /// Keep printing new events as they are logged (polling every 1 s,
        /// backing off to 10 s while nothing happens; the follower's own
        /// polls are not printed).
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Check the whole audit trail against the latest signed audit
    /// checkpoint (and, with --previous, against an older one).
    Verify {
        /// The audit log's verifier key (name+hash+base64), or a file with it.
        /// Without it the server's own word is taken, which proves nothing
        /// against a dishonest server: pin the key.
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint saved earlier (--save): the trail must extend it.
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Save the verified checkpoint here, for the next --previous.
        #[arg(long)]
        save: Option<PathBuf>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Fetch an audit event's inclusion proof bundle (check it with
    /// `evault verify --key <audit verifier key>`).
    Prove {
        /// The event's id (from `evault audit tail`).
        id: String,
        /// Prove against the audit checkpoint of this size (default: the
        /// latest, waiting for one that covers the event).
        #[arg(long)]
        tree_size: Option<u64>,
        /// Write the proof to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output C2SP tlog-proof text instead of the JSON bundle (verify
        /// it with `evault verify --record <event JSON>`).
        #[arg(long)]
        tlog_proof: bool,
        /// How long to wait for a checkpoint covering a new event.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: Duration,
        #[command(flatten)]
        client: ClientOpts,
    },
}

pub fn run(
    cmd: AuditCommand,
    client_for: impl Fn(&ClientOpts) -> CliResult<Client>,
    json_out: bool,
) -> CliResult {
    match cmd {
        AuditCommand::Tail {
            lines,
            since,
            principal,
            operation,
            outcome,
            follow,
            client,
        } => {
            let filters = [
                ("principal", principal),
                ("operation", operation),
                ("outcome", outcome),
            ];
            tail(
                &client_for(&client)?,
                lines,
                since.as_deref(),
                &filters,
                follow,
                json_out,
            )
        }
        AuditCommand::Verify {
            key,
            previous,
            save,
            client,
        } => verify_trail(
            &client_for(&client)?,
            key.as_deref(),
            previous.as_deref(),
            save.as_deref(),
            json_out,
        ),
        AuditCommand::Prove {
            id,
            tree_size,
            out,
            tlog_proof,
            wait,
            client,
        } => crate::proof::prove(
            &client_for(&client)?,
            LogKind::Audit,
            &id,
            tree_size,
            out,
            tlog_proof,
            wait,
            json_out,
        ),
    }
}

/// The list API's cursor for "after leaf `index`" (the server hands these
/// out; the CLI ships with it and builds the one it needs to start at).
fn cursor_after(index: u64) -> String {
    use base64::Engine as _;
    let mut raw = [0u8; 9];
    raw[0] = b'a';
    raw[1..].copy_from_slice(&index.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn event_line(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    let mut line = format!(
        "{:>8}  {}  {:<15}  {:<24}  {:<28}  {} {}  {}",
        e["leaf_index"],
        s("time"),
        s("outcome"),
        s("principal"),
        s("operation"),
        e["status"],
        s("resource"),
        s("client"),
    );
    if let Some(r) = e["reason"].as_str() {
        line.push_str(&format!("  ({r})"));
    }
    line
}

fn print_event(e: &Value, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        println!("{}", event_line(e));
    }
}

/// One page of events after `cursor` (all, with `None`).
fn page(client: &Client, query: &[String], cursor: Option<&str>) -> CliResult<(Vec<Value>, bool)> {
    let mut q = query.to_vec();
    if let Some(c) = cursor {
        q.push(format!("cursor={c}"));
    }
    let page: Value = client.get_json(&format!("/api/v1/audit?{}", q.join("&")))?;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    Ok((items, page["next_cursor"].is_string()))
}

/// Prints the last `lines` events matching the filters among the first
/// `end` of the trail (the trail as it was when the command started: its
/// own calls come after), or with `since`, every matching event from
/// then; with `follow`, then every new one.
fn tail(
    client: &Client,
    lines: u64,
    since: Option<&str>,
    filters: &[(&str, Option<String>)],
    follow: bool,
    json_out: bool,
) -> CliResult {
    let mut query: Vec<String> = filters
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    let filtered = !query.is_empty();
    if let Some(t) = since {
        query.push(format!("since={}", encode(t)));
    }
    query.push("limit=1000".into());
    let info: Value = client.get_json("/api/v1/audit/log")?;
    let end = info["tree_size"].as_u64().unwrap_or(0);
    // Without filters the last `lines` events are the last `lines` leaves;
    // with filters they are found by reading every match (the list API
    // reads forwards only).
    let mut cursor = match (since, filtered) {
        (None, false) => end.checked_sub(lines.saturating_add(1)).map(cursor_after),
        _ => None,
    };
    let keep = if since.is_some() {
        usize::MAX
    } else {
        usize::try_from(lines).unwrap_or(usize::MAX)
    };
    let mut last: VecDeque<Value> = VecDeque::new();
    if keep > 0 {
        'pages: loop {
            let (items, more) = page(client, &query, cursor.as_deref())?;
            for e in items {
                let Some(i) = e["leaf_index"].as_u64() else {
                    continue;
                };
                if i >= end {
                    break 'pages;
                }
                cursor = Some(cursor_after(i));
                if last.len() == keep {
                    last.pop_front();
                }
                last.push_back(e);
            }
            if !more {
                break;
            }
        }
    }
    for e in &last {
        print_event(e, json_out);
    }
    if !follow {
        return Ok(());
    }
    // Follow from the end of the snapshot.
    let mut cursor = end.checked_sub(1).map(cursor_after);
    let mut delay = FOLLOW_MIN;
    loop {
        std::thread::sleep(delay);
        let mut printed = false;
        loop {
            let (items, more) = page(client, &query, cursor.as_deref())?;
            for e in items {
                if let Some(i) = e["leaf_index"].as_u64() {
                    cursor = Some(cursor_after(i));
                }
                // The follower's own polls are not news.
                if e["request_id"]
                    .as_str()
                    .is_some_and(|r| client.made_request(r))
                {
                    continue;
                }
                print_event(&e, json_out);
                printed = true;
            }
            if !more {
                break;
            }
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        delay = if printed {
            FOLLOW_MIN
        } else {
            (delay * 2).min(FOLLOW_MAX)
        };
    }
}

fn verify_trail(
    client: &Client,
    key: Option<&str>,
    previous: Option<&Path>,
    save: Option<&Path>,
    json_out: bool,
) -> CliResult {
    let info: Value = client.get_json("/api/v1/audit/log")?;
    let origin = info["origin"].as_str().unwrap_or("").to_string();
    let key_text = match key {
        Some(k) => k.to_string(),
        None => {
            crate::say!(
                "evault: warning: no --key given; using the key the server reports, which \
                 proves nothing against a dishonest server"
            );
            info["verifier_key"].as_str().unwrap_or("").to_string()
        }
    };
    let (verifiers, key_name) = load_verifiers(&key_text, "--key")?;
    let note = client.get_text("/api/v1/audit/checkpoints/latest", "text/plain")?;
    let (cp, _) = open_checkpoint(&note, &verifiers, Some(&origin))
        .map_err(|e| bundle_failure(&e, &key_name, "--key").context("latest audit checkpoint"))?;

    let old: Option<Checkpoint> = match previous {
        Some(p) => {
            let text = read_file(p)?;
            let (old, _) = open_checkpoint(&text, &verifiers, Some(&origin))
                .map_err(|e| bundle_failure(&e, &key_name, "--key").context(p.display()))?;
            if old.size > cp.size {
                return Err(CliError::not_verified(format!(
                    "the earlier checkpoint has {} events but the latest only {}: the trail \
                     shrank",
                    old.size, cp.size
                )));
            }
            Some(old)
        }
        None => None,
    };

    let bar = (!json_out && crate::output::progress_allowed()).then(|| {
        let b = indicatif::ProgressBar::new(cp.size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "verifying audit events [{bar:30}] {pos}/{len} {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    let mut tree = CompactRange::new();
    let mut old_root: Option<Hash> = None;
    let mut cursor: Option<String> = None;
    while tree.size() < cp.size {
        let mut path = "/api/v1/audit?limit=1000".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client.get_json(&path)?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for item in items {
            if tree.size() == cp.size {
                break;
            }
            let event: AuditEvent = serde_json::from_value(item)
                .map_err(|e| CliError::not_verified(format!("event {}: {e}", tree.size())))?;
            if event.leaf_index != tree.size() {
                return Err(CliError::not_verified(format!(
                    "expected event {} but the server sent event {}",
                    tree.size(),
                    event.leaf_index
                )));
            }
            tree.append(event.leaf_hash(), |_, _| {});
            if old.as_ref().is_some_and(|o| o.size == tree.size()) {
                old_root = Some(tree.root());
            }
            cursor = Some(cursor_after(event.leaf_index));
        }
        if let Some(b) = &bar {
            b.set_position(tree.size());
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if tree.size() != cp.size {
        return Err(CliError::not_verified(format!(
            "the checkpoint covers {} events but the server listed {}",
            cp.size,
            tree.size()
        )));
    }
    if tree.root() != cp.root_hash {
        return Err(CliError::not_verified(format!(
            "the {} events do not hash to the signed root: an event was altered, removed or \
             reordered",
            cp.size
        )));
    }
    if let Some(o) = &old {
        let matches = if o.size == 0 {
            true
        } else {
            old_root == Some(o.root_hash)
        };
        if !matches {
            return Err(CliError::not_verified(format!(
                "the first {} events no longer hash to the earlier checkpoint's root: the \
                 trail was rewritten",
                o.size
            )));
        }
    }
    if let Some(p) = save {
        std::fs::write(p, &note).map_err(|e| file_error(p, &e))?;
    }
    if json_out {
        print_json(&json!({
            "verified": true,
            "origin": cp.origin,
            "tree_size": cp.size,
            "extends_previous": old.as_ref().map(|o| o.size),
        }));
    } else {
        println!(
            "verified: {} audit events of {} hash to the signed checkpoint{}",
            cp.size,
            cp.origin,
            match &old {
                Some(o) => format!(", which extends the earlier one of size {}", o.size),
                None => String::new(),
            }
        );
    }
    Ok(())
}
