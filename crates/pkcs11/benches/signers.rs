//! Checkpoint signing latency per signer, beside a raw Ed25519 signature
//! measured in the same run (issue 16):
//!
//! - raw Ed25519 (`ed25519-dalek`, the baseline);
//! - the key-file signer (`note::sign` of a checkpoint, as the vault does);
//! - ML-DSA-44 (`MlDsaCosigner`, hedged, via `note::sign`);
//! - SoftHSM2 through PKCS#11 (`Pkcs11Signer`, which also verifies each
//!   signature with the public key), via `note::sign`.
//!
//! `cargo bench -p evault-pkcs11 --bench signers`. SoftHSM needs its token
//! directory in `SOFTHSM2_CONF` before the module loads, so without it the
//! bench makes a token in a temporary directory and runs itself again with
//! the variable set. Without SoftHSM installed that row is skipped, loudly.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::Signer as _;
use evault_note::{Checkpoint, Ed25519Signer, MlDsaCosigner, Signer, sign};
use evault_pkcs11::{Pkcs11Signer, generate_ed25519};

const LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
const NAME: &str = "example.com/log";

/// Median time of one call of `f`, from `rounds` rounds of `per_round` calls.
fn median(rounds: usize, per_round: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..per_round {
        f();
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed() / per_round as u32
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

fn main() {
    let hsm_dir = std::env::var_os("EVAULT_BENCH_SOFTHSM_DIR");
    if Path::new(LIB).exists() && std::env::var_os("SOFTHSM2_CONF").is_none() {
        // Make a token and run again with SoftHSM pointed at it.
        let dir = std::env::temp_dir().join(format!("evault-bench-softhsm-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        let ok = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "bench",
                "--pin",
                "1234",
                "--so-pin",
                "12345678",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "softhsm2-util --init-token failed");
        let status = Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env("SOFTHSM2_CONF", &conf)
            .env("EVAULT_BENCH_SOFTHSM_DIR", &dir)
            .status()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }

    let text = Checkpoint::new(NAME, 1_234_567, [7; 32]).to_text();
    let (rounds, per) = (21, 200);

    let raw_key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let raw = median(rounds, per, || {
        black_box(raw_key.sign(black_box(text.as_bytes())));
    });

    let file = Ed25519Signer::from_seed(NAME, &[1; 32]).unwrap();
    let file_t = median(rounds, per, || {
        black_box(sign(black_box(&text), &[&file as &dyn Signer]).unwrap());
    });

    // During a key rotation's overlap every checkpoint carries two
    // Ed25519 signatures.
    let next = Ed25519Signer::from_seed(NAME, &[2; 32]).unwrap();
    let overlap_t = median(rounds, per, || {
        black_box(sign(black_box(&text), &[&file as &dyn Signer, &next]).unwrap());
    });

    let pq = MlDsaCosigner::from_seed(NAME, &[1; 32])
        .unwrap()
        .with_fixed_timestamp(0);
    let pq_t = median(rounds, per / 10, || {
        black_box(sign(black_box(&text), &[&pq as &dyn Signer]).unwrap());
    });

    let hsm_t = hsm_dir.map(|dir| {
        let pin = Path::new(&dir).join("pin");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&pin)
                .unwrap();
            f.write_all(b"1234").unwrap();
        }
        let uri = format!(
            "pkcs11:token=bench;object=log?module-path={LIB}&pin-source={}",
            pin.display()
        );
        generate_ed25519(&uri).unwrap();
        let hsm = Pkcs11Signer::open(&uri, NAME).unwrap();
        median(rounds, per / 4, || {
            black_box(sign(black_box(&text), &[&hsm as &dyn Signer]).unwrap());
        })
    });

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "checkpoint signing latency (median of {rounds} rounds; one {}-byte checkpoint note)",
        text.len()
    );
    println!(
        "{:<44} {:>12} {:>14}",
        "signer", "µs / sign", "vs raw Ed25519"
    );
    let row = |name: &str, d: Duration| {
        println!("{name:<44} {:>12.1} {:>13.1}×", us(d), us(d) / us(raw));
    };
    row("raw Ed25519 (ed25519-dalek, baseline)", raw);
    row("key file (note::sign, Ed25519)", file_t);
    row("two key files (a rotation's overlap)", overlap_t);
    row("ML-DSA-44 (note::sign, hedged)", pq_t);
    match hsm_t {
        Some(d) => row("SoftHSM2 via PKCS#11 (note::sign + verify)", d),
        None => {
            println!("SKIPPED SoftHSM2 via PKCS#11: {LIB} not installed (apt-get install softhsm2)")
        }
    }
}
