//! `evault put`, `get`, `ls`: evidence into the vault, and back out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::client::{Client, encode};
use crate::error::{CliError, CliResult, Exit, file_error};
use crate::output::{self, print_json};

fn guess_content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => "application/json",
        Some("xml") | Some("junit") => "application/xml",
        Some("txt") | Some("log") => "text/plain",
        Some("html") | Some("htm") => "text/html",
        Some("md") => "text/markdown",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz") | Some("tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("sigstore") => "application/vnd.dev.sigstore.bundle+json",
        _ => "application/octet-stream",
    }
}

fn parse_labels(labels: &[String]) -> CliResult<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| {
            evault_vault::ingest::parse_label(l)
                .map_err(|e| CliError::usage(format!("--label {l:?}: {e}")))
        })
        .collect()
}

/// A file to upload: it must exist and be a regular file (a directory
/// would otherwise fail mid-upload as if the network had).
fn open_upload(path: &Path) -> CliResult<(std::fs::File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, &e))?;
    if meta.is_dir() {
        return Err(
            CliError::usage(format!("{} is a directory", path.display()))
                .hint(format!("give the files in it, e.g. {}/*", path.display())),
        );
    }
    if !meta.is_file() {
        return Err(CliError::usage(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let f = std::fs::File::open(path).map_err(|e| file_error(path, &e))?;
    Ok((f, meta.len()))
}

/// `evault put`: one result line per file on stdout (or one JSON array),
/// failures on stderr; the exit code is the highest of the failures'.
pub fn put(
    client: &Client,
    files: &[PathBuf],
    labels: &[String],
    content_type: Option<String>,
    idempotency_key: Option<String>,
    json_out: bool,
) -> CliResult {
    let labels = parse_labels(labels)?;
    if idempotency_key.is_some() && files.len() > 1 {
        return Err(
            CliError::usage("--idempotency-key applies to a single file")
                .hint("put the files one by one, each with its own key"),
        );
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = (!json_out && output::progress_allowed()).then(|| {
        let b = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    // Results go to stdout even while the bar is drawn on stderr.
    let emit = |f: &dyn Fn()| match &bar {
        Some(b) => b.suspend(f),
        None => f(),
    };
    let mut results = Vec::new();
    let mut worst: Option<Exit> = None;
    let mut failures = 0;
    for path in files {
        if let Some(b) = &bar {
            b.set_message(path.display().to_string());
        }
        let mut headers = vec![(
            "Content-Type".to_string(),
            content_type
                .clone()
                .unwrap_or_else(|| guess_content_type(path).to_string()),
        )];
        for (k, v) in &labels {
            headers.push(("X-Evault-Label".into(), format!("{k}={v}")));
        }
        if let Some(k) = &idempotency_key {
            headers.push(("Idempotency-Key".into(), k.clone()));
        }
        let outcome = open_upload(path).and_then(|(f, len)| {
            let mut reader: Box<dyn std::io::Read> = match &bar {
                Some(b) => Box::new(b.wrap_read(f)),
                None => Box::new(f),
            };
            client.post_file("/api/v1/evidence", &headers, path, len, &mut reader)
        });
        match outcome {
            Ok((_, v)) => {
                let rec = &v["record"];
                let line = format!(
                    "{}  leaf {}  {}{}",
                    rec["id"].as_str().unwrap_or("?"),
                    rec["leaf_index"],
                    path.display(),
                    if v["duplicate"].as_bool() == Some(true) {
                        "  (duplicate)"
                    } else {
                        ""
                    }
                );
                if !json_out {
                    emit(&|| println!("{line}"));
                }
                results.push(json!({"file": path, "result": v}));
            }
            Err(e) => {
                failures += 1;
                worst = worst.max(Some(e.exit));
                // A local file error already names the file.
                let text = if e.message.starts_with(&path.display().to_string()) {
                    e.message.clone()
                } else {
                    format!("{}: {}", path.display(), e.message)
                };
                emit(&|| {
                    crate::say!("evault: FAILED {text}");
                    if let Some(h) = &e.hint {
                        crate::say!("evault: hint: {h}");
                    }
                });
                let mut entry = e.to_json();
                entry["file"] = json!(path);
                results.push(entry);
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match worst {
        None => {
            if json_out {
                print_json(&Value::Array(results));
            }
            Ok(())
        }
        Some(exit) => Err(CliError::new(
            exit,
            format!("{failures} of {} files failed", files.len()),
        )
        .with("results", results)),
    }
}

pub fn get(client: &Client, id: &str, payload: Option<PathBuf>, json_out: bool) -> CliResult {
    let to_stdout = payload.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if to_stdout && json_out {
        return Err(CliError::usage(
            "--payload - writes the payload to stdout, where --json writes the record",
        )
        .hint("save the payload to a file with --payload FILE"));
    }
    let rec: Value = client
        .get_json(&format!("/api/v1/evidence/{}", encode(id)))
        .map_err(|e| match e.extra.get("status").and_then(Value::as_u64) {
            Some(404) => e.hint("check the id; `evault ls` lists records"),
            _ => e,
        })?;
    if let Some(out) = payload {
        let path = format!("/api/v1/evidence/{}/payload", encode(id));
        if to_stdout {
            client.get_to(&path, &mut std::io::stdout().lock())?;
            return Ok(());
        }
        let mut f = std::fs::File::create(&out).map_err(|e| file_error(&out, &e))?;
        let n = client.get_to(&path, &mut f)?;
        f.sync_all().map_err(|e| file_error(&out, &e))?;
        crate::say!("evault: wrote {n} bytes to {}", out.display());
    }
    if json_out {
        print_json(&rec);
    } else {
        println!("id            {}", rec["id"].as_str().unwrap_or(""));
        println!("leaf index    {}", rec["leaf_index"]);
        println!(
            "content type  {}",
            rec["content_type"].as_str().unwrap_or("")
        );
        println!("sha256        {}", rec["sha256"].as_str().unwrap_or(""));
        println!("size          {}", rec["size"]);
        println!(
            "ingested      {} by {}",
            rec["ingested_at"].as_str().unwrap_or(""),
            rec["ingested_by"].as_str().unwrap_or("")
        );
        if let Some(labels) = rec["labels"].as_object() {
            for (k, v) in labels {
                println!("label         {k}={}", v.as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn ls(
    client: &Client,
    labels: &[String],
    content_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: u32,
    cursor: Option<String>,
    json_out: bool,
) -> CliResult {
    let mut q = vec![format!("limit={limit}")];
    for (k, v) in parse_labels(labels)? {
        q.push(format!("label={}", encode(&format!("{k}:{v}"))));
    }
    for (name, v) in [
        ("content_type", content_type),
        ("since", since),
        ("until", until),
        ("cursor", cursor),
    ] {
        if let Some(v) = v {
            q.push(format!("{name}={}", encode(&v)));
        }
    }
    let page: Value = client.get_json(&format!("/api/v1/evidence?{}", q.join("&")))?;
    if json_out {
        print_json(&page);
        return Ok(());
    }
    for rec in page["items"].as_array().into_iter().flatten() {
        println!(
            "{:>8}  {}  {}  {:>10}  {}",
            rec["leaf_index"],
            rec["id"].as_str().unwrap_or(""),
            rec["ingested_at"].as_str().unwrap_or(""),
            rec["size"],
            rec["content_type"].as_str().unwrap_or("")
        );
    }
    if let Some(next) = page["next_cursor"].as_str() {
        crate::say!("evault: more results: --cursor {next}");
    }
    Ok(())
}
