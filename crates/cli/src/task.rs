//! `evault task …`: start, list, show, cancel, follow and download the
//! vault's tracked tasks. The vault decides who sees which task (its
//! creator, or an admin); this only asks and prints.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;
use sha2::Digest as _;

use crate::ClientOpts;
use crate::client::{Client, encode};
use crate::error::{CliError, CliResult, Exit, file_error};
use crate::output::{print_json, progress_allowed};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Start a task of KIND; prints its id.
    Start {
        /// The kind of task (the server's error lists the kinds it runs).
        kind: String,
        /// Its parameters, a JSON object (default {}).
        #[arg(long)]
        params: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// List your tasks (an admin's list: everyone's), newest first.
    Ls {
        /// Only tasks in this state: pending, running, succeeded, failed or
        /// cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only tasks of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Tasks per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue with the tasks older than this id (printed as "more:").
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Show a task.
    Show {
        /// The task's id.
        id: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Cancel a task (a running one stops within a second; its partial
    /// output is deleted).
    Cancel {
        /// The task's id.
        id: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Follow a task until it ends: a progress bar on stderr (on a
    /// terminal only), the final state on stdout. Exits 0 if it
    /// succeeded, 1 if it failed or was cancelled.
    Watch {
        /// The task's id.
        id: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Download a succeeded task's result file (its SHA-256 is checked).
    Result {
        /// The task's id.
        id: String,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        client: ClientOpts,
    },
}

pub fn run(
    cmd: TaskCommand,
    client_for: impl Fn(&ClientOpts) -> CliResult<Client>,
    json: bool,
) -> CliResult {
    match cmd {
        TaskCommand::Start {
            kind,
            params,
            client,
        } => start(&client_for(&client)?, &kind, params.as_deref(), json),
        TaskCommand::Ls {
            state,
            kind,
            limit,
            before,
            client,
        } => list(&client_for(&client)?, state, kind, limit, before, json),
        TaskCommand::Show { id, client } => {
            let t = show_task(&client_for(&client)?, &id)?;
            print_task(&t, json);
            Ok(())
        }
        TaskCommand::Cancel { id, client } => {
            let c = client_for(&client)?;
            let t = c.post_json(&format!("/api/v1/tasks/{}/cancel", encode(&id)), None)?;
            print_task(&t, json);
            Ok(())
        }
        TaskCommand::Watch { id, client } => watch(&client_for(&client)?, &id, json),
        TaskCommand::Result { id, out, client } => result(&client_for(&client)?, &id, &out, json),
    }
}

fn not_found_hint(e: CliError) -> CliError {
    match e.extra.get("status").and_then(Value::as_u64) {
        Some(404) => e.hint("check the id; `evault task ls` lists your tasks"),
        _ => e,
    }
}

fn show_task(client: &Client, id: &str) -> CliResult<Value> {
    client
        .get_json(&format!("/api/v1/tasks/{}", encode(id)))
        .map_err(not_found_hint)
}

fn start(client: &Client, kind: &str, params: Option<&str>, json: bool) -> CliResult {
    let params: Value = match params {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| CliError::usage(format!("--params is not JSON: {e}")))?,
    };
    let body = serde_json::json!({ "kind": kind, "params": params });
    let t = client.post_json("/api/v1/tasks", Some(&body))?;
    if json {
        print_json(&t);
    } else {
        println!("{}", str_of(&t, "id"));
    }
    Ok(())
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn progress_text(t: &Value) -> String {
    match (
        t["progress"]["done"].as_u64(),
        t["progress"]["total"].as_u64(),
    ) {
        (Some(d), Some(n)) => format!("{d}/{n}"),
        (Some(d), None) => format!("{d}"),
        _ => "-".into(),
    }
}

fn list(
    client: &Client,
    state: Option<String>,
    kind: Option<String>,
    limit: u32,
    before: Option<String>,
    json: bool,
) -> CliResult {
    let mut query = vec![format!("limit={limit}")];
    for (k, v) in [("state", state), ("kind", kind), ("before", before)] {
        if let Some(v) = v {
            query.push(format!("{k}={}", encode(&v)));
        }
    }
    let page: Value = client.get_json(&format!("/api/v1/tasks?{}", query.join("&")))?;
    if json {
        print_json(&page);
        return Ok(());
    }
    for t in page["items"].as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}  {}  {}",
            str_of(t, "id"),
            str_of(t, "kind"),
            str_of(t, "state"),
            progress_text(t),
            str_of(t, "created"),
        );
    }
    if let Some(next) = page["next_before"].as_str() {
        crate::say!("evault: more tasks: --before {next}");
    }
    Ok(())
}

fn print_task(t: &Value, json: bool) {
    if json {
        print_json(t);
        return;
    }
    println!("id         {}", str_of(t, "id"));
    println!("kind       {}", str_of(t, "kind"));
    println!("principal  {}", str_of(t, "principal"));
    println!("state      {}", str_of(t, "state"));
    println!("progress   {}", progress_text(t));
    println!("params     {}", t["params"]);
    println!("created    {}", str_of(t, "created"));
    for key in ["started", "finished"] {
        if let Some(v) = t[key].as_str() {
            println!("{key:<10} {v}");
        }
    }
    if let Some(r) = t["result"].as_object() {
        println!(
            "result     {} bytes, sha256 {}{}",
            r.get("size").and_then(Value::as_u64).unwrap_or(0),
            r.get("sha256").and_then(Value::as_str).unwrap_or(""),
            if r.get("available") == Some(&Value::Bool(false)) {
                " (removed by the retention)"
            } else {
                ""
            }
        );
    }
    if !t["summary"].is_null() {
        println!("summary    {}", t["summary"]);
    }
    if let Some(e) = t["error"].as_str() {
        println!("error      {e}");
    }
}

fn is_final(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// Follows the task's event stream until its final state, reconnecting
/// when the stream is cut (the client's request timeout, a proxy).
fn watch(client: &Client, id: &str, json: bool) -> CliResult {
    let t = follow(client, id, json)?;
    let state = str_of(&t, "state").to_string();
    if json {
        print_json(&t);
    } else {
        println!("{}  {state}", str_of(&t, "id"));
    }
    ended(id, &t)
}

/// Exit 0 for a succeeded task, 1 (with its error) for a failed or
/// cancelled one.
pub fn ended(id: &str, t: &Value) -> CliResult {
    match str_of(t, "state") {
        "succeeded" => Ok(()),
        "failed" => Err(CliError::new(
            Exit::Verify,
            format!("task {id} failed: {}", str_of(t, "error")),
        )),
        "cancelled" => Err(CliError::new(
            Exit::Verify,
            format!("task {id} was cancelled"),
        )),
        other => Err(CliError::unreachable(format!(
            "the event stream of task {id} ended while it was {other}"
        ))),
    }
}

/// Follows a task's event stream until it ends (a progress bar on stderr,
/// on a terminal, unless `json`); returns it as it ended.
pub fn follow(client: &Client, id: &str, json: bool) -> CliResult<Value> {
    let path = format!("/api/v1/tasks/{}/events", encode(id));
    let bar = (!json && progress_allowed()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:10} [{bar:30}] {pos}/{len} {eta}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    let mut last: Option<Value> = None;
    // Each stream lasts up to the client's request timeout (300 s); a
    // bounded number of reconnects keeps a stuck server from looping us.
    for _ in 0..1000 {
        let reader = client
            .get_stream(&path, "text/event-stream")
            .map_err(not_found_hint)?;
        let mut data = String::new();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
                continue;
            }
            if !line.is_empty() || data.is_empty() {
                continue;
            }
            let t: Value = serde_json::from_str(&data).map_err(|e| client.not_json(&path, e))?;
            data.clear();
            if let Some(b) = &bar {
                if let Some(n) = t["progress"]["total"].as_u64() {
                    b.set_length(n);
                }
                b.set_position(t["progress"]["done"].as_u64().unwrap_or(0));
                b.set_message(str_of(&t, "state").to_string());
            }
            let done = is_final(str_of(&t, "state"));
            last = Some(t);
            if done {
                break;
            }
        }
        if last.as_ref().is_some_and(|t| is_final(str_of(t, "state"))) {
            break;
        }
        // Cut off before the end: ask where it is, and follow again.
        let t = show_task(client, id)?;
        if is_final(str_of(&t, "state")) {
            last = Some(t);
            break;
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match last {
        Some(t) if is_final(str_of(&t, "state")) => Ok(t),
        _ => show_task(client, id),
    }
}

fn result(client: &Client, id: &str, out: &std::path::Path, json: bool) -> CliResult {
    let t = show_task(client, id)?;
    let expected = t["result"]["sha256"].as_str().map(str::to_string);
    // Written next to the target and renamed, so a failed download leaves
    // no partial file under the name asked for.
    let tmp = out.with_extension("partial");
    let mut file = std::fs::File::create(&tmp).map_err(|e| file_error(&tmp, &e))?;
    let mut hashing = Hashing {
        inner: &mut file,
        hasher: sha2::Sha256::new(),
    };
    let n = match client.get_to(
        &format!("/api/v1/tasks/{}/result", encode(id)),
        &mut hashing,
    ) {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(not_found_hint(e));
        }
    };
    let got = evault_verify::evidence::hex(&hashing.hasher.finalize());
    if expected.as_deref() != Some(got.as_str()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::not_verified(format!(
            "the result of task {id} has SHA-256 {got}, the task says {}",
            expected.unwrap_or_else(|| "none".into())
        )));
    }
    file.sync_all().map_err(|e| file_error(&tmp, &e))?;
    std::fs::rename(&tmp, out).map_err(|e| file_error(out, &e))?;
    if json {
        print_json(&serde_json::json!({"id": id, "out": out, "size": n, "sha256": got}));
    } else {
        crate::say!(
            "evault: wrote {n} bytes to {} (sha256 {got})",
            out.display()
        );
    }
    Ok(())
}

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn std::io::Write,
    hasher: sha2::Sha256,
}

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn progress_and_final_states() {
        let t = serde_json::json!({"progress": {"done": 3, "total": 9}});
        assert_eq!(progress_text(&t), "3/9");
        let t = serde_json::json!({"progress": {"done": 3, "total": null}});
        assert_eq!(progress_text(&t), "3");
        assert!(is_final("cancelled") && !is_final("running"));
        let mut sink = Vec::new();
        let mut h = Hashing {
            inner: &mut sink,
            hasher: sha2::Sha256::new(),
        };
        h.write_all(b"abc").unwrap();
        assert_eq!(
            evault_verify::evidence::hex(&h.hasher.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
