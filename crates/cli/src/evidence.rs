//! `evault put`, `get`, `ls`: evidence into the vault, and back out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::client::{Client, encode};
use crate::output::print_json;

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

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, String> {
    labels
        .iter()
        .map(|l| evault_vault::ingest::parse_label(l).map_err(|e| e.to_string()))
        .collect()
}

pub fn put(
    client: &Client,
    files: &[PathBuf],
    labels: &[String],
    content_type: Option<String>,
    idempotency_key: Option<String>,
    json_out: bool,
) -> Result<(), String> {
    let labels = parse_labels(labels)?;
    if idempotency_key.is_some() && files.len() > 1 {
        return Err("--idempotency-key applies to a single file".into());
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = if files.len() > 1 && !json_out {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {eta}",
            )
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
        );
        Some(b)
    } else {
        None
    };
    let mut results = Vec::new();
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
        let outcome = std::fs::File::open(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|f| {
                let mut reader: Box<dyn std::io::Read> = match &bar {
                    Some(b) => Box::new(b.wrap_read(f)),
                    None => Box::new(f),
                };
                client.post_stream("/api/v1/evidence", &headers, &mut reader)
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
                match &bar {
                    Some(b) => b.println(line),
                    None if !json_out => println!("{line}"),
                    None => {}
                }
                results.push(json!({"file": path, "result": v}));
            }
            Err(e) => {
                failures += 1;
                match &bar {
                    Some(b) => b.println(format!("FAILED {}: {e}", path.display())),
                    None => eprintln!("evault: {}: {e}", path.display()),
                }
                results.push(json!({"file": path, "error": e}));
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json_out {
        print_json(&Value::Array(results));
    }
    if failures > 0 {
        return Err(format!("{failures} of {} files failed", files.len()));
    }
    Ok(())
}

pub fn get(
    client: &Client,
    id: &str,
    payload: Option<PathBuf>,
    json_out: bool,
) -> Result<(), String> {
    let rec: Value = client.get_json(&format!("/api/v1/evidence/{}", encode(id)))?;
    if let Some(out) = payload {
        let path = format!("/api/v1/evidence/{}/payload", encode(id));
        if out.as_os_str() == "-" {
            client.get_to(&path, &mut std::io::stdout().lock())?;
            return Ok(());
        }
        let mut f = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let n = client.get_to(&path, &mut f)?;
        f.sync_all().map_err(|e| e.to_string())?;
        eprintln!("evault: wrote {n} bytes to {}", out.display());
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
) -> Result<(), String> {
    let mut q = vec![format!("limit={limit}")];
    for l in labels {
        let (k, v) = evault_vault::ingest::parse_label(l).map_err(|e| e.to_string())?;
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
        eprintln!("evault: more results: --cursor {next}");
    }
    Ok(())
}
