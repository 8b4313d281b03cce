//! What checking a blob's digest while it is served costs: reads one large
//! blob through the vault's `BlobReader` with and without the SHA-256
//! check, alternating, in the same run, and prints both rates and their
//! ratio. The file is in the page cache after the first read, so this is
//! the worst case for the check (no disk time to hide it).
//!
//! usage: payload_verify [MIB] [ROUNDS]

use std::time::{Duration, Instant};

use evault_vault::{PayloadData, PutRequest, Reader, Vault, VaultConfig};

async fn read_all(vault: &Vault, id: &str, verify: bool) -> Result<Duration, String> {
    let (_, data) = vault
        .payload(&Reader::all("bench"), id)
        .await
        .map_err(|e| e.to_string())?;
    let PayloadData::File(blob) = data else {
        return Err("the payload is inline; ask for more MiB".into());
    };
    let mut blob = if verify { *blob } else { blob.unverified() };
    let start = Instant::now();
    let mut n = 0usize;
    while let Some(chunk) = blob.next_chunk().await.map_err(|e| e.to_string())? {
        n += chunk.len();
    }
    let took = start.elapsed();
    if n as u64 != blob.len() {
        return Err(format!("read {n} of {} bytes", blob.len()));
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let rounds: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("evault-payload-{}", std::process::id()));
    let mut config = VaultConfig::new(&dir);
    // Beside the data directory, not in the user's home.
    config.state_dir = Some(dir.with_extension("state"));
    config.max_upload = (mib as u64 + 1) << 20;
    config.audit.enabled = false;
    let vault = Vault::open(config).await?;
    let mut up = vault.upload();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for _ in 0..mib {
        up.write(&chunk).await?;
    }
    let out = vault
        .put(PutRequest {
            content_type: "application/octet-stream".into(),
            labels: Default::default(),
            payload: up.finish().await?,
            principal: "bench".into(),
            idempotency_key: None,
            audit: None,
        })
        .await?;
    let id = out.record.id;
    read_all(&vault, &id, false).await?; // warm the page cache
    let (mut plain, mut checked) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        plain += read_all(&vault, &id, false).await?;
        checked += read_all(&vault, &id, true).await?;
    }
    let rate = |d: Duration| (mib * rounds) as f64 / d.as_secs_f64();
    println!(
        "{mib} MiB blob, {rounds} rounds: unchecked {:.0} MiB/s, checked {:.0} MiB/s, \
         checked/unchecked time {:.2}",
        rate(plain),
        rate(checked),
        checked.as_secs_f64() / plain.as_secs_f64()
    );
    vault.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("state"));
    Ok(())
}
