//! `evault keys generate`: every key type into a file, and an Ed25519 key
//! made inside a SoftHSM2 token (skipped loudly without SoftHSM; required
//! when `EVAULT_REQUIRE_SOFTHSM=1`, as in CI).

use std::path::Path;
use std::process::{Command, Stdio};

use evault_note::{
    Checkpoint, CosignatureSigner, Ed25519Signer, MlDsaCosigner, Signer, log_verifier, open,
    parse_verifier_key, sign, verifier_for,
};

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn evault(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evault"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_DATA_DIR")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run evault");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn every_key_type_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let checkpoint = Checkpoint::new("example.com/log", 3, [3; 32]).to_text();
    for (ty, alg) in [
        ("ed25519", 0x01),
        ("ml-dsa-44", 0x06),
        ("ed25519-cosignature", 0x04),
    ] {
        let file = format!("{ty}.key");
        let out = evault(
            d,
            &[
                "keys",
                "generate",
                "example.com/log",
                "--type",
                ty,
                "--out",
                &file,
            ],
            &[],
        );
        assert_eq!(out.code, 0, "{ty}: {out:?}");
        let vkey = out.stdout.trim();
        assert_eq!(parse_verifier_key(vkey).unwrap().alg, alg, "{ty}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join(&file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{ty}");
        let skey = std::fs::read_to_string(d.join(&file)).unwrap();
        let skey = skey.trim();
        // The private key signs what the printed key verifies.
        let signer: Box<dyn Signer> = match ty {
            "ed25519" => Box::new(Ed25519Signer::from_signer_key(skey).unwrap()),
            "ml-dsa-44" => Box::new(MlDsaCosigner::from_signer_key(skey).unwrap()),
            _ => Box::new(CosignatureSigner::from_signer_key(skey).unwrap()),
        };
        assert_eq!(signer.verifier_key().as_str(), vkey, "{ty}");
        let note = sign(&checkpoint, &[signer.as_ref()]).unwrap();
        let mut known = evault_note::Verifiers::new();
        known.insert_boxed(verifier_for(vkey).unwrap()).unwrap();
        open(note.as_bytes(), &known).unwrap();
        // Only a log's key types are log keys.
        assert_eq!(log_verifier(vkey).is_ok(), alg != 0x04, "{ty}");
    }
    // An unknown type, or neither --out nor --pkcs11: usage errors.
    let out = evault(
        d,
        &["keys", "generate", "x", "--type", "rsa", "--out", "r"],
        &[],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = evault(d, &["keys", "generate", "x"], &[]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn an_ed25519_key_made_inside_a_pkcs11_token() {
    if !Path::new(SOFTHSM).exists() {
        let msg = "SoftHSM2 not installed (apt-get install softhsm2 opensc); test skipped";
        if std::env::var("EVAULT_REQUIRE_SOFTHSM").is_ok_and(|v| v == "1") {
            panic!("{msg}, but EVAULT_REQUIRE_SOFTHSM=1");
        }
        eprintln!("SKIPPED an_ed25519_key_made_inside_a_pkcs11_token: {msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tokens")).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("tokens").display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "keys-test",
            "--pin",
            "4321",
            "--so-pin",
            "87654321",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util");
    assert!(init.status.success(), "{init:?}");
    let env = [("SOFTHSM2_CONF", conf.as_path())];
    let uri = format!("pkcs11:token=keys-test;object=log-key?module-path={SOFTHSM}&pin-value=4321");

    let out = evault(
        d,
        &["keys", "generate", "example.com/log", "--pkcs11", &uri],
        &env,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let vkey = out.stdout.trim();
    let parsed = parse_verifier_key(vkey).unwrap();
    assert_eq!(
        (parsed.name.as_str(), parsed.alg),
        ("example.com/log", 0x01)
    );
    assert!(
        !out.stderr.contains("4321"),
        "the PIN is never printed: {out:?}"
    );
    assert!(
        out.stderr.contains("pkcs11:token=keys-test;object=log-key"),
        "{out:?}"
    );

    // The same label again: refused, the key kept.
    let out = evault(
        d,
        &["keys", "generate", "example.com/log", "--pkcs11", &uri],
        &env,
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("already matches"), "{out:?}");
    // Only Ed25519 in a token; not with --out.
    let out = evault(
        d,
        &[
            "keys",
            "generate",
            "n",
            "--pkcs11",
            &uri,
            "--type",
            "ml-dsa-44",
        ],
        &env,
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = evault(
        d,
        &["keys", "generate", "n", "--pkcs11", &uri, "--out", "f"],
        &env,
    );
    assert_eq!(out.code, 2, "{out:?}");
}
