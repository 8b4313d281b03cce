//! Ack-to-checkpoint latency with default settings: how long after a put is
//! acknowledged (durable) until a signed checkpoint covers it.
//!
//! usage: ack_latency [RECORDS] [CLIENTS]

use std::time::{Duration, Instant};

use evault_bench::{put_unique, quantile};
use evault_vault::{Vault, VaultConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let clients: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let dir = std::env::temp_dir().join(format!("evault-ack-{}", std::process::id()));
    let mut config = VaultConfig::new(&dir); // defaults: 500 ms interval
    // Removed with the data directory, not left in the user's home.
    config.state_dir = Some(dir.join("state"));
    let vault = Vault::open(config).await?;
    let per_client = records / clients as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (vault, tx) = (vault.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let out = put_unique(&vault, c, i, 256).await?;
                let acked = Instant::now();
                let need = out.record.leaf_index + 1;
                let (vault, tx) = (vault.clone(), tx.clone());
                // Wait for the covering checkpoint off the client's path.
                tokio::spawn(async move {
                    if vault
                        .evidence_log()
                        .wait_for_checkpoint(need, Duration::from_secs(30))
                        .await
                        .is_ok()
                    {
                        let _ = tx.send(acked.elapsed());
                    }
                });
                // Pace the clients so the run spans many checkpoints.
                if i % 25 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Ok::<_, evault_vault::VaultError>(())
        }));
    }
    drop(tx);
    for t in tasks {
        t.await??;
    }
    let mut all = Vec::new();
    while let Some(d) = rx.recv().await {
        all.push(d);
    }
    all.sort_unstable();
    println!(
        "ack_to_checkpoint records={} clients={clients} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        all.len(),
        quantile(&all, 0.5).as_secs_f64() * 1e3,
        quantile(&all, 0.99).as_secs_f64() * 1e3,
        quantile(&all, 1.0).as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
