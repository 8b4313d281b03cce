//! The task kinds the vault runs itself: `export_bundle`, `import_bundle`
//! and `fsck`. Each adapts a blocking vault call to the runner's progress
//! and cancellation; [`TaskConfig::default`](crate::tasks::TaskConfig)
//! registers them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::analytics::parse_timestamp;
use crate::bundles::BundleSelection;
use crate::fsck::FsckOptions;
use crate::tasks::{TaskContext, TaskKind, TaskOutput};

/// Findings an `fsck` task names in its error; the rest are counted.
const FSCK_FINDINGS_SHOWN: usize = 10;

/// `export_bundle`: an evidence bundle (`.evb`, docs/FORMATS.md) of a
/// selection of the records its principal may read, built against the
/// latest checkpoint; the bundle is the task's result.
pub struct ExportBundle;

/// `export_bundle`'s parameters (all optional; `{}` exports everything).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    leaf_from: Option<u64>,
    leaf_to: Option<u64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    content_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    payloads: bool,
}

/// Parameters as a kind's struct: absent or `null` means all defaults.
fn params<T: for<'de> Deserialize<'de> + Default>(kind: &str, v: &Value) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v.clone()).map_err(|e| format!("{kind} parameters: {e}"))
}

fn selection(v: &Value) -> Result<BundleSelection, String> {
    let p: ExportParams = params("export_bundle", v)?;
    let ms = |name: &str, t: Option<String>| {
        t.map(|s| parse_timestamp(&s).map_err(|e| format!("export_bundle parameter {name} {e}")))
            .transpose()
    };
    if let (Some(from), Some(to)) = (p.leaf_from, p.leaf_to)
        && from >= to
    {
        return Err(format!(
            "export_bundle parameters: leaf_from {from} must be below leaf_to {to}"
        ));
    }
    Ok(BundleSelection {
        leaf_from: p.leaf_from,
        leaf_to: p.leaf_to,
        labels: p.labels,
        content_type: p.content_type,
        since_ms: ms("since", p.since)?,
        until_ms: ms("until", p.until)?,
        payloads: p.payloads,
    })
}

impl TaskKind for ExportBundle {
    fn name(&self) -> &'static str {
        "export_bundle"
    }

    fn roles(&self) -> &'static [&'static str] {
        // Exporting is reading: an ingester's export holds its own records
        // only (the task reads with its creator's scope).
        &["ingester", "auditor", "admin"]
    }

    fn validate(&self, params: &Value) -> Result<(), String> {
        selection(params).map(|_| ())
    }

    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        let sel = selection(ctx.params())?;
        let summary = ctx
            .vault()
            .export_bundle(
                ctx.reader(),
                &sel,
                ctx.output_path(),
                &|done, total| ctx.progress(done, Some(total)),
                &|| ctx.cancelled(),
            )
            .map_err(|e| e.to_string())?;
        Ok(TaskOutput {
            summary: Some(json!({
                "records": summary.records,
                "payloads": summary.payloads,
                "erased": summary.erased,
                "tree_size": summary.tree_size,
                "bytes": summary.bytes,
                "manifest_sha256": summary.manifest_sha256,
            })),
        })
    }
}

/// `fsck`: the full check of both logs (`Vault::fsck`) while the vault
/// runs. Its result is the report (JSON); any finding fails the task, its
/// error naming the first findings.
pub struct Fsck;

/// `fsck`'s parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FsckParams {
    /// Hash every payload (default on).
    payloads: bool,
    /// Findings kept per kind in the report.
    max_findings: usize,
}

impl Default for FsckParams {
    fn default() -> Self {
        let o = FsckOptions::default();
        FsckParams {
            payloads: o.payloads,
            max_findings: o.max_findings_per_kind,
        }
    }
}

impl TaskKind for Fsck {
    fn name(&self) -> &'static str {
        "fsck"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["admin"]
    }

    fn validate(&self, v: &Value) -> Result<(), String> {
        let p: FsckParams = params("fsck", v)?;
        if p.max_findings == 0 {
            return Err("fsck parameter max_findings must be at least 1".into());
        }
        Ok(())
    }

    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        let p: FsckParams = params("fsck", ctx.params())?;
        let options = FsckOptions {
            max_findings_per_kind: p.max_findings,
            payloads: p.payloads,
            ..FsckOptions::default()
        };
        let report = ctx
            .vault()
            .fsck(
                &options,
                &|done, total| ctx.progress(done, Some(total)),
                &|| ctx.cancelled(),
            )
            .map_err(|e| e.to_string())?;
        if !report.complete {
            return Err("fsck stopped before it finished".into());
        }
        if !report.clean {
            let mut why = format!(
                "fsck found {} problem(s); the first:",
                report.total_findings
            );
            for f in report.findings.iter().take(FSCK_FINDINGS_SHOWN) {
                let _ = write!(why, "\n{f}");
            }
            let _ = write!(
                why,
                "\n(the whole report: `evault fsck --json` on the stopped data directory)"
            );
            return Err(why);
        }
        let file = ctx
            .create_output()
            .map_err(|e| format!("fsck report: {e}"))?;
        serde_json::to_writer_pretty(file, &report).map_err(|e| format!("fsck report: {e}"))?;
        Ok(TaskOutput {
            summary: Some(json!({
                "clean": report.clean,
                "logs": report.logs,
                "elapsed_ms": report.elapsed_ms,
            })),
        })
    }
}

/// `import_bundle`: an evidence bundle of another log, given as the task's
/// input file, verified with that log's key (`{"key": "<verifier key>"}`)
/// and stored as a mirror (`Vault::import_bundle`). Admins only: it adds
/// to what every auditor reads.
pub struct ImportBundle;

/// `import_bundle`'s parameters.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    /// The other log's verifier key (C2SP signed-note form).
    key: String,
}

fn import_params(v: &Value) -> Result<ImportParams, String> {
    let p: ImportParams = params("import_bundle", v)?;
    if p.key.is_empty() {
        return Err(
            "import_bundle needs the bundle's log key: {\"key\": \"<verifier key>\"}".into(),
        );
    }
    crate::imports::verifiers_of(&p.key).map_err(|e| e.to_string())?;
    Ok(p)
}

impl TaskKind for ImportBundle {
    fn name(&self) -> &'static str {
        "import_bundle"
    }

    fn roles(&self) -> &'static [&'static str] {
        &["admin"]
    }

    fn takes_input(&self) -> bool {
        true
    }

    fn validate(&self, params: &Value) -> Result<(), String> {
        import_params(params).map(|_| ())
    }

    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        let p = import_params(ctx.params())?;
        let input = ctx.input_path().ok_or("import_bundle has no input file")?;
        let s = ctx
            .vault()
            .import_bundle(
                ctx.reader().principal(),
                input,
                &p.key,
                &|done, total| ctx.progress(done, Some(total)),
                &|| ctx.cancelled(),
            )
            .map_err(|e| e.to_string())?;
        Ok(TaskOutput {
            summary: Some(json!({
                "origin": s.origin,
                "tree_size": s.tree_size,
                "records": s.records,
                "records_new": s.records_new,
                "payloads_new": s.payloads_new,
                "checkpoint_new": s.checkpoint_new,
            })),
        })
    }
}
