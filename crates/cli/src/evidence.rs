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
        _ => "application/octet-stream",
    }
}

/// A Sigstore bundle's content type when nothing says otherwise.
const SIGSTORE_DEFAULT: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Bundles are verified in memory, so the vault takes small ones only; a
/// larger file is not read to guess its type.
const SIGSTORE_SNIFF_MAX: u64 = 16 * 1024 * 1024;

/// The content type to declare for `path`: a Sigstore bundle
/// (`*.sigstore.json`, `*.sigstore`) as the version its own `mediaType`
/// states (the vault verifies it as that), else by extension.
fn content_type_for(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !(name.ends_with(".sigstore.json") || name.ends_with(".sigstore")) {
        return guess_content_type(path).to_string();
    }
    // An unreadable file falls back here; the upload then names the error.
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file() && m.len() <= SIGSTORE_SNIFF_MAX)
        .and_then(|_| std::fs::read(path).ok())
        .and_then(|bytes| evault_vault::sigstore::bundle_media_type(&bytes))
        .unwrap_or_else(|| SIGSTORE_DEFAULT.to_string())
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
    artifact_digest: Option<String>,
    json_out: bool,
) -> CliResult {
    let labels = parse_labels(labels)?;
    // The server checks the digest; this only spares an upload of a typo.
    if let Some(d) = &artifact_digest
        && !d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(CliError::usage(format!(
            "--artifact-digest {d:?}: expected sha256:<64 hex digits>"
        )));
    }
    if idempotency_key.is_some() && files.len() > 1 {
        return Err(
            CliError::usage("--idempotency-key applies to a single file")
                .hint("put the files one by one, each with its own key"),
        );
    }
    // One artifact digest names one artifact: several bundles would all be
    // checked against it.
    if artifact_digest.is_some() && files.len() > 1 {
        return Err(
            CliError::usage("--artifact-digest applies to a single file")
                .hint("put each bundle on its own, with its artifact's digest"),
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
                .unwrap_or_else(|| content_type_for(path)),
        )];
        for (k, v) in &labels {
            headers.push(("X-Evault-Label".into(), format!("{k}={v}")));
        }
        if let Some(k) = &idempotency_key {
            headers.push(("Idempotency-Key".into(), k.clone()));
        }
        if let Some(d) = &artifact_digest {
            headers.push(("X-Evault-Artifact-Digest".into(), d.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigstore_bundles_are_declared_as_their_own_media_type() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let v01 = r#"{"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1"}"#;
        let v03 = r#"{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        assert_eq!(
            content_type_for(&write("a.sigstore.json", v01)),
            "application/vnd.dev.sigstore.bundle+json;version=0.1"
        );
        assert_eq!(
            content_type_for(&write("b.SIGSTORE", v03)),
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        // Not a bundle body (or no file): the current version, so the vault
        // says what is wrong with it rather than logging it as JSON.
        for p in [
            write("c.sigstore.json", r#"{"mediaType": "application/json"}"#),
            write("d.sigstore", "not json"),
            dir.path().join("missing.sigstore.json"),
        ] {
            assert_eq!(content_type_for(&p), SIGSTORE_DEFAULT, "{}", p.display());
        }
        // Everything else by extension, unread.
        assert_eq!(content_type_for(&write("e.json", v03)), "application/json");
        assert_eq!(content_type_for(Path::new("f.txt")), "text/plain");
    }
}
