//! `evault audit …`: read the audit trail and check it against the audit
//! log's signed checkpoints.
//!
//! `verify` downloads every event up to the latest signed audit
//! checkpoint, recomputes each leaf from the event itself, rebuilds the
//! tree and compares its root with the signed one: every event is there,
//! unaltered, in order. With `--previous` (a checkpoint saved by an earlier
//! run with `--save`) it also checks that the older tree is a prefix of the
//! new one: nothing was removed or rewritten since.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use evault_merkle::{CompactRange, Hash};
use evault_note::{Checkpoint, Ed25519Verifier, Verifiers};
use evault_verify::audit::AuditEvent;
use evault_verify::open_checkpoint;
use serde_json::{Value, json};

use crate::ClientOpts;
use crate::client::{Client, encode};
use crate::output::{pretty_json, print_json, write_out};
use crate::proof::fetch_proof;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the latest audit events, oldest first (`--follow` keeps going).
    Tail {
        /// How many of the latest events to start with.
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
        /// Keep printing new events as they are logged.
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
        id: String,
        #[arg(long)]
        tree_size: Option<u64>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientOpts,
    },
}

pub fn run(
    cmd: AuditCommand,
    client_for: impl Fn(&ClientOpts) -> Client,
    json_out: bool,
) -> Result<(), String> {
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
                ("since", since.clone()),
            ];
            tail(
                &client_for(&client),
                lines,
                since.is_some(),
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
            &client_for(&client),
            key.as_deref(),
            previous.as_deref(),
            save.as_deref(),
            json_out,
        ),
        AuditCommand::Prove {
            id,
            tree_size,
            out,
            client,
        } => prove(&client_for(&client), &id, tree_size, out),
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

fn tail(
    client: &Client,
    lines: u64,
    has_since: bool,
    filters: &[(&str, Option<String>)],
    follow: bool,
    json_out: bool,
) -> Result<(), String> {
    let mut cursor = if has_since {
        None
    } else {
        let info: Value = client.get_json("/api/v1/audit/log")?;
        let size = info["tree_size"].as_u64().unwrap_or(0);
        size.checked_sub(lines.max(1) + 1).map(cursor_after)
    };
    let mut query: Vec<String> = filters
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    query.push("limit=1000".into());
    loop {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(format!("cursor={c}"));
        }
        let page: Value = client.get_json(&format!("/api/v1/audit?{}", q.join("&")))?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for e in &items {
            if json_out {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
            } else {
                println!("{}", event_line(e));
            }
            if let Some(i) = e["leaf_index"].as_u64() {
                cursor = Some(cursor_after(i));
            }
        }
        if page["next_cursor"].is_string() {
            continue;
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn read_key(key: &str) -> Result<String, String> {
    if Path::new(key).is_file() {
        Ok(std::fs::read_to_string(key)
            .map_err(|e| format!("{key}: {e}"))?
            .trim()
            .to_string())
    } else {
        Ok(key.to_string())
    }
}

fn verify_trail(
    client: &Client,
    key: Option<&str>,
    previous: Option<&Path>,
    save: Option<&Path>,
    json_out: bool,
) -> Result<(), String> {
    let info: Value = client.get_json("/api/v1/audit/log")?;
    let origin = info["origin"].as_str().unwrap_or("").to_string();
    let key_text = match key {
        Some(k) => read_key(k)?,
        None => {
            eprintln!(
                "evault: warning: no --key given; using the key the server reports, which \
                 proves nothing against a dishonest server"
            );
            info["verifier_key"].as_str().unwrap_or("").to_string()
        }
    };
    let verifier =
        Ed25519Verifier::from_verifier_key(&key_text).map_err(|e| format!("audit key: {e}"))?;
    let verifiers = Verifiers::new().with(verifier).map_err(|e| e.to_string())?;
    let note = client.get_text("/api/v1/audit/checkpoints/latest", "text/plain")?;
    let (cp, _) = open_checkpoint(&note, &verifiers, Some(&origin))
        .map_err(|e| format!("NOT VERIFIED: latest audit checkpoint: {e}"))?;

    let old: Option<Checkpoint> = match previous {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let (old, _) = open_checkpoint(&text, &verifiers, Some(&origin))
                .map_err(|e| format!("NOT VERIFIED: {}: {e}", p.display()))?;
            if old.size > cp.size {
                return Err(format!(
                    "NOT VERIFIED: the earlier checkpoint has {} events but the latest only {}: \
                     the trail shrank",
                    old.size, cp.size
                ));
            }
            Some(old)
        }
        None => None,
    };

    let bar = (!json_out).then(|| {
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
                .map_err(|e| format!("NOT VERIFIED: event {}: {e}", tree.size()))?;
            if event.leaf_index != tree.size() {
                return Err(format!(
                    "NOT VERIFIED: expected event {} but the server sent event {}",
                    tree.size(),
                    event.leaf_index
                ));
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
        return Err(format!(
            "NOT VERIFIED: the checkpoint covers {} events but the server listed {}",
            cp.size,
            tree.size()
        ));
    }
    if tree.root() != cp.root_hash {
        return Err(format!(
            "NOT VERIFIED: the {} events do not hash to the signed root: an event was altered, \
             removed or reordered",
            cp.size
        ));
    }
    if let Some(o) = &old {
        let matches = if o.size == 0 {
            true
        } else {
            old_root == Some(o.root_hash)
        };
        if !matches {
            return Err(format!(
                "NOT VERIFIED: the first {} events no longer hash to the earlier checkpoint's \
                 root: the trail was rewritten",
                o.size
            ));
        }
    }
    if let Some(p) = save {
        std::fs::write(p, &note).map_err(|e| format!("{}: {e}", p.display()))?;
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

fn prove(
    client: &Client,
    id: &str,
    tree_size: Option<u64>,
    out: Option<PathBuf>,
) -> Result<(), String> {
    let mut path = format!("/api/v1/audit/events/{}/proof", encode(id));
    if let Some(n) = tree_size {
        path.push_str(&format!("?tree_size={n}"));
    }
    let text = fetch_proof(client, &path, "application/json", tree_size.is_none())?;
    write_out(&pretty_json(&text)?, out.as_deref(), "proof")
}
