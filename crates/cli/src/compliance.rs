//! `evault erase`, `evault hold create|list|release`, `evault retention
//! set|list|delete` (a running vault, role admin; an auditor may list) and
//! `evault compact` (a stopped vault's data directory).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Client, encode};
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::{ClientOpts, FileConfig};

/// `hold` subcommands.
#[derive(Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold: records carrying every --label (and of
    /// --content-type, if given) cannot be erased, by request or by
    /// retention, until it is released.
    Create {
        /// A label records must carry, KEY=VALUE (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Only records of this content type.
        #[arg(long)]
        content_type: Option<String>,
        /// Why (kept for administrators; the audit trail has its digest).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Every hold, active and released.
    List {
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Release a hold.
    Release {
        /// The hold's id.
        id: String,
        #[command(flatten)]
        client: ClientOpts,
    },
}

/// `retention` subcommands.
#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Add a retention policy: payloads of records carrying every --label
    /// (and of --content-type) are erased --keep-for after ingestion, by a
    /// `retention_sweep` the vault starts on schedule; held records are
    /// skipped.
    Set {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// How long a payload is kept after ingestion (e.g. 90d, 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_for: std::time::Duration,
        /// A label records must carry, KEY=VALUE (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Only records of this content type.
        #[arg(long)]
        content_type: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Every retention policy.
    List {
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Delete a retention policy.
    Delete {
        /// The policy's id.
        id: String,
        #[command(flatten)]
        client: ClientOpts,
    },
}

/// The selector of `--label` and `--content-type`.
fn selector(labels: &[String], content_type: Option<String>) -> CliResult<Value> {
    let mut map = serde_json::Map::new();
    for l in labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--label {l:?}: expected KEY=VALUE")))?;
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut sel = json!({ "labels": map });
    if let Some(t) = content_type {
        sel["content_type"] = Value::String(t);
    }
    Ok(sel)
}

/// `evault erase ID --reason R`.
pub fn erase(client: &Client, id: &str, reason: &str, json_out: bool) -> CliResult {
    let reply = client.post_json(
        &format!("/api/v1/evidence/{}/erase", encode(id)),
        Some(&json!({ "reason": reason })),
    )?;
    if json_out {
        print_json(&reply);
        return Ok(());
    }
    for e in reply["erased"].as_array().into_iter().flatten() {
        println!(
            "{} erased (leaf {}), tombstone {} (leaf {})",
            e["id"].as_str().unwrap_or_default(),
            e["leaf_index"],
            e["tombstone_id"].as_str().unwrap_or_default(),
            e["tombstone_leaf"],
        );
    }
    Ok(())
}

fn show(v: &Value, list_key: Option<&str>, json_out: bool) {
    if json_out {
        print_json(v);
        return;
    }
    let items: Vec<&Value> = match list_key {
        Some(k) => v[k].as_array().into_iter().flatten().collect(),
        None => vec![v],
    };
    for item in items {
        let state = if item.get("released_at").is_some() {
            " (released)"
        } else {
            ""
        };
        println!(
            "{}\t{}{state}",
            item["id"].as_str().unwrap_or_default(),
            serde_json::to_string(&item["selector"]).unwrap_or_default()
        );
    }
}

/// `evault hold ...`.
pub fn hold(
    cmd: HoldCommand,
    client_for: impl Fn(&ClientOpts) -> CliResult<Client>,
    json_out: bool,
) -> CliResult {
    match cmd {
        HoldCommand::Create {
            labels,
            content_type,
            reason,
            client,
        } => {
            let body = json!({ "selector": selector(&labels, content_type)?, "reason": reason });
            let v = client_for(&client)?.post_json("/api/v1/holds", Some(&body))?;
            show(&v, None, json_out);
        }
        HoldCommand::List { client } => {
            let v: Value = client_for(&client)?.get_json("/api/v1/holds")?;
            show(&v, Some("holds"), json_out);
        }
        HoldCommand::Release { id, client } => {
            let v = client_for(&client)?
                .post_json(&format!("/api/v1/holds/{}/release", encode(&id)), None)?;
            show(&v, None, json_out);
        }
    }
    Ok(())
}

/// `evault retention ...`.
pub fn retention(
    cmd: RetentionCommand,
    client_for: impl Fn(&ClientOpts) -> CliResult<Client>,
    json_out: bool,
) -> CliResult {
    match cmd {
        RetentionCommand::Set {
            name,
            keep_for,
            labels,
            content_type,
            client,
        } => {
            let body = json!({
                "name": name,
                "selector": selector(&labels, content_type)?,
                "keep_for_seconds": keep_for.as_secs(),
            });
            let v = client_for(&client)?.post_json("/api/v1/retention", Some(&body))?;
            show(&v, None, json_out);
        }
        RetentionCommand::List { client } => {
            let v: Value = client_for(&client)?.get_json("/api/v1/retention")?;
            show(&v, Some("policies"), json_out);
        }
        RetentionCommand::Delete { id, client } => {
            client_for(&client)?.delete(&format!("/api/v1/retention/{}", encode(&id)))?;
            if json_out {
                print_json(&json!({ "deleted": id }));
            } else {
                println!("{id} deleted");
            }
        }
    }
    Ok(())
}

/// `evault compact --data-dir`: offline `VACUUM` of a stopped vault.
pub fn compact(data_dir: Option<PathBuf>, file: &FileConfig, json_out: bool) -> CliResult {
    let dir = crate::data_dir(data_dir, file);
    let (before, after) = evault_vault::erasure::compact_data_dir(&dir)
        .map_err(|e| CliError::usage(format!("compacting {}: {e}", dir.display())))?;
    if json_out {
        print_json(&json!({ "data_dir": dir, "bytes_before": before, "bytes_after": after }));
    } else {
        println!(
            "{}: compacted, {before} -> {after} bytes",
            dir.join("evault.db").display()
        );
    }
    Ok(())
}
