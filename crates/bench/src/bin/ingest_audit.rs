//! Ingest throughput through the real vault with the audit trail off and
//! on, in the same run: the cost of committing one audit event with every
//! put (same transaction, same group commit, mirror on).
//!
//! usage: ingest_audit [RECORDS] [CLIENTS] [ROUNDS]
//!
//! `EVAULT_BENCH_MIRROR=0` turns the JSON-lines mirror off (to see its
//! share of the cost); `EVAULT_BENCH_ONLY=on` or `=off` runs one setting
//! (for profiling).
//!
//! Each round runs both settings on fresh data directories, alternating
//! which goes first; the median and best rate of each are reported (fsync
//! latency on shared machines swings single runs by ±10 %). Target: audit
//! on keeps at least 80 % of the throughput with audit off.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evault_bench::put_unique;
use evault_vault::{Vault, VaultConfig};

/// CPU time (user + system) this process has used, from /proc (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which ends at the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks; 100 per second on Linux.
    Some((utime + stime) / 100.0)
}

/// Records per second for `records` unique 256-byte puts from `clients`
/// concurrent tasks into a fresh vault in `dir`, and CPU µs per record.
async fn run(
    dir: &Path,
    audit: bool,
    records: u64,
    clients: usize,
) -> Result<(f64, Option<f64>), Box<dyn std::error::Error>> {
    let mut config = VaultConfig::new(dir);
    // Not in the user's home.
    config.state_dir = Some(dir.join("state"));
    config.origin = Some("bench.example/evault".into());
    config.audit.enabled = audit;
    config.audit.mirror = std::env::var("EVAULT_BENCH_MIRROR").map_or(true, |v| v != "0");
    let vault = Vault::open(config).await?;
    let next = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (vault, next) = (vault.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= records {
                    return Ok::<_, evault_vault::VaultError>(());
                }
                put_unique(&vault, c, i, 256).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu0)
        .map(|(b, a)| (b - a) * 1e6 / records as f64);
    assert_eq!(vault.evidence_log().head().size, records);
    if audit {
        assert_eq!(
            vault.audit_log().map(|l| l.head()).map(|h| h.size),
            Some(records)
        );
    }
    drop(vault);
    // Let the sequencer, checkpointers and mirror wind down.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok((records as f64 / secs, cpu))
}

/// Median and best of `rates` (0 when empty).
fn summary(rates: &mut [f64]) -> (f64, f64) {
    rates.sort_by(f64::total_cmp);
    let median = match rates.len() {
        0 => 0.0,
        n if n % 2 == 1 => rates[n / 2],
        n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
    };
    (median, rates.last().copied().unwrap_or(0.0))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let records = arg(1, 50_000)?;
    let clients = arg(2, 64)? as usize;
    let rounds = arg(3, 2)?.max(1);
    let base = std::env::temp_dir().join(format!("evault-ingest-audit-{}", std::process::id()));
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        let only = std::env::var("EVAULT_BENCH_ONLY").ok();
        for audit in order {
            if only
                .as_deref()
                .is_some_and(|o| o != if audit { "on" } else { "off" })
            {
                continue;
            }
            let dir = base.join(format!("r{round}-{}", if audit { "on" } else { "off" }));
            let (rate, cpu) = run(&dir, audit, records, clients).await?;
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "round {round}: audit {:<3} {rate:>9.0} rec/s, {} CPU µs/record",
                if audit { "on" } else { "off" },
                cpu.map_or_else(|| "?".into(), |c| format!("{c:.0}"))
            );
            if audit { &mut on } else { &mut off }.push(rate);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    let (off_median, off_best) = summary(&mut off);
    let (on_median, on_best) = summary(&mut on);
    println!(
        "RESULT ingest audit=off records={records} clients={clients} rps={off_median:.0} best={off_best:.0}"
    );
    println!(
        "RESULT ingest audit=on records={records} clients={clients} rps={on_median:.0} best={on_best:.0}"
    );
    if on_median > 0.0 && off_median > 0.0 {
        println!(
            "audit on keeps {:.1} % of the ingest throughput (medians; best {:.1} %; target >= 80 %)",
            100.0 * on_median / off_median,
            100.0 * on_best / off_best
        );
    }
    Ok(())
}
