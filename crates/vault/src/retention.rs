//! Retention: the `retention_sweep` task kind, and the timer that starts
//! one every [`VaultConfig::retention_interval`](crate::VaultConfig) unless
//! one is queued or running already.

use std::sync::Weak;

use evault_store::TaskState;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::erasure::{ERASER, SUMMARY_IDS};
use crate::tasks::{TaskContext, TaskFilter, TaskKind, TaskOutput};
use crate::{Inner, Reader, Vault};

/// `retention_sweep`: erases the payloads every retention policy has
/// expired (records ingested longer than its `keep_for` ago, matching its
/// selector), skipping records under legal hold and records whose bytes an
/// unexpired record shares. Takes no parameters; its summary counts what
/// it did and names the first [`SUMMARY_IDS`] records of each list; the
/// result file names them all.
pub struct RetentionSweep;

/// The task kind's name.
pub const RETENTION_SWEEP: &str = "retention_sweep";

impl TaskKind for RetentionSweep {
    fn name(&self) -> &'static str {
        RETENTION_SWEEP
    }

    fn roles(&self) -> &'static [&'static str] {
        &["admin"]
    }

    fn validate(&self, params: &Value) -> Result<(), String> {
        match params {
            Value::Null => Ok(()),
            Value::Object(m) if m.is_empty() => Ok(()),
            _ => Err("retention_sweep takes no parameters".into()),
        }
    }

    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        let report = ctx
            .runtime()
            .block_on(
                ctx.vault()
                    .sweep_retention(&|done| ctx.progress(done, None), &|| ctx.cancelled()),
            )
            .map_err(|e| e.to_string())?;
        let file = ctx
            .create_output()
            .map_err(|e| format!("retention_sweep report: {e}"))?;
        serde_json::to_writer_pretty(file, &report)
            .map_err(|e| format!("retention_sweep report: {e}"))?;
        Ok(TaskOutput {
            summary: Some(json!({
                "examined": report.examined,
                "erased": report.erased.len(),
                "held": report.held.len(),
                "skipped_shared": report.skipped_shared.len(),
                // The task row stays small: the result file names them all.
                "erased_ids": first_ids(&report.erased),
                "held_ids": first_ids(&report.held),
            })),
        })
    }
}

/// At most [`SUMMARY_IDS`] of `ids`.
fn first_ids(ids: &[String]) -> &[String] {
    &ids[..ids.len().min(SUMMARY_IDS)]
}

/// Starts a `retention_sweep` (as [`ERASER`]) every `interval` while the
/// vault runs; ends when it stops. Skips a round when there is no policy
/// (nothing to do), when a sweep is still queued or running, or when the
/// kind is not registered.
pub(crate) async fn retention_timer(
    inner: Weak<Inner>,
    interval: std::time::Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // The leader's timer sweeps for the cluster.
        if !inner.role.borrow().is_leader() {
            continue;
        }
        let vault = Vault { inner };
        if let Err(e) = start_sweep(&vault).await {
            tracing::warn!("starting the scheduled retention sweep: {e}");
        }
    }
}

/// One round of the timer.
async fn start_sweep(vault: &Vault) -> crate::Result<()> {
    if vault.task_kind(RETENTION_SWEEP).is_none() {
        return Ok(());
    }
    if vault.retention_policies().await?.is_empty() {
        return Ok(());
    }
    let reader = Reader::all(ERASER);
    for state in [TaskState::Pending, TaskState::Running] {
        let busy = vault
            .tasks(
                &reader,
                TaskFilter {
                    state: Some(state),
                    kind: Some(RETENTION_SWEEP.into()),
                    before: None,
                    limit: 1,
                },
            )
            .await?;
        if !busy.is_empty() {
            return Ok(());
        }
    }
    vault
        .create_task(&reader, RETENTION_SWEEP, json!({}))
        .await?;
    Ok(())
}
