//! Fills a data directory with N records through the real vault (group
//! commit, tiles, checkpoints), and writes a sample of ids for proof loads.
//!
//! usage: fill DATA_DIR N [IDS_FILE]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evault_bench::put_unique;
use evault_vault::{Vault, VaultConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fill DATA_DIR N [IDS_FILE]");
        std::process::exit(2);
    }
    let n: u64 = args[2].parse()?;
    let mut config = VaultConfig::new(&args[1]);
    // Beside the data directory, not in the user's home.
    config.state_dir = Some(std::path::PathBuf::from(format!("{}.state", args[1])));
    config.origin = Some("bench.example/evault".into());
    let vault = Vault::open(config).await?;
    let start_size = vault.evidence_log().head().size;
    let next = Arc::new(AtomicU64::new(start_size));
    let target = start_size + n;
    let started = Instant::now();
    let clients = 256;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (vault, next) = (vault.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sample = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= target {
                    return Ok::<_, evault_vault::VaultError>(sample);
                }
                let out = put_unique(&vault, c, i, 64).await?;
                if i % 997 == 0 {
                    sample.push(out.record.id);
                }
            }
        }));
    }
    let progress = {
        let vault = vault.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = vault.evidence_log().head().size - start_size;
                eprintln!(
                    "fill: {done}/{n} records ({:.0}/s)",
                    done as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    progress.abort();
    let secs = started.elapsed().as_secs_f64();
    let size = vault.evidence_log().head().size;
    vault
        .evidence_log()
        .wait_for_checkpoint(size, Duration::from_secs(30))
        .await?;
    eprintln!(
        "fill: {n} records in {secs:.1}s ({:.0}/s); tree size {size}",
        n as f64 / secs
    );
    if let Some(path) = args.get(3) {
        let mut f = std::fs::File::create(path)?;
        for id in ids {
            writeln!(f, "{id}")?;
        }
    }
    Ok(())
}
