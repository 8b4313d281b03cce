//! The commands that need no server, with stdout piped: help texts, usage
//! errors, the local keystore (`sa`, `token`), `keys`, and `verify` of
//! files that are not proofs.

use std::path::Path;
use std::process::{Command, Stdio};

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

/// Runs the binary in `cwd` with no EVAULT_* settings from outside.
fn evault_in(cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EVAULT_DATA_DIR")
        .env_remove("EVAULT_SERVICE_ACCOUNTS")
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run evault");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn serve_help_shows_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = evault_in(dir.path(), &["serve", "--help"]);
    assert_eq!(out.code, 0, "{out:?}");
    for want in [
        "[default: 127.0.0.1:8470]",
        "[default: 127.0.0.1:9090]",
        "[default: ./evault-data]",
        "[default: 500ms]",
        "[default: 67108864, 64 MiB]",
        "[default: 10s]",
    ] {
        assert!(out.stdout.contains(want), "lacks {want}: {out:?}");
    }
}

#[test]
fn usage_errors_exit_2_and_say_so_in_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = evault_in(dir.path(), &["prove"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "");
    let out = evault_in(dir.path(), &["prove", "--json"]);
    assert_eq!(out.code, 2, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("<ID>"), "{v}");
    // A bad --wait is clap's usage error as well.
    let out = evault_in(dir.path(), &["prove", "x", "--wait", "soon"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn sa_create_refuses_a_new_keystore_at_the_default_path() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let create = ["sa", "create", "--principal", "ci", "--roles", "ingester"];
    let out = evault_in(cwd, &create);
    assert_eq!(out.code, 2, "{out:?}");
    let abs = std::fs::canonicalize(cwd)
        .unwrap()
        .join("evault-data/service-accounts.json");
    assert!(
        out.stderr
            .contains(&format!("no keystore at {}", abs.display()))
            || out
                .stderr
                .contains(&format!("no keystore at {}/evault-data", cwd.display())),
        "{out:?}"
    );
    assert!(out.stderr.contains("--data-dir"), "{out:?}");
    assert!(out.stderr.contains("--init"), "{out:?}");
    assert!(!cwd.join("evault-data").exists(), "nothing was created");
    // The other commands need a keystore and say where they looked.
    let out = evault_in(cwd, &["sa", "list"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no keystore at"), "{out:?}");
    let out = evault_in(cwd, &["token", "mint", "--key-id", "x", "--json"]);
    assert_eq!(out.code, 2, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no keystore at"));

    // --init asks for it.
    let mut init = create.to_vec();
    init.extend(["--init", "--key-id", "ci-1"]);
    let out = evault_in(cwd, &init);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "ci-1\n");
    assert!(cwd.join("evault-data/service-accounts.json").exists());
    // Then it is there, and no --init is needed.
    let out = evault_in(cwd, &create);
    assert_eq!(out.code, 0, "{out:?}");
    let out = evault_in(cwd, &["sa", "list"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        3,
        "header and two keys: {out:?}"
    );

    // A path given explicitly is created without --init.
    let other = cwd.join("elsewhere");
    let mut explicit = create.to_vec();
    explicit.extend(["--data-dir", other.to_str().unwrap()]);
    let out = evault_in(cwd, &explicit);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(other.join("service-accounts.json").exists());
    let out = evault_in(
        cwd,
        &[
            "token",
            "mint",
            "--key-id",
            "nope",
            "--data-dir",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown key id \"nope\""), "{out:?}");
}

#[test]
fn local_files_that_are_not_what_they_should_be() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let key = "example.com/log+12345678+AWxMqbcFuLuVNcYjzdLYxHAN9/oglgtCkzxPFrGoPLdC";
    let out = evault_in(cwd, &["verify", "--proof", "missing.json", "--key", key]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr.lines().next().unwrap(),
        "evault: missing.json: No such file or directory"
    );
    let out = evault_in(
        cwd,
        &[
            "consistency",
            "--old",
            "a.cp",
            "--new",
            "b.cp",
            "--key",
            key,
            "--json",
        ],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    // keys generate never overwrites.
    let out = evault_in(cwd, &["keys", "generate", "example.com/log", "--out", "k"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("example.com/log+"));
    let out = evault_in(cwd, &["keys", "generate", "example.com/log", "--out", "k"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("k: File exists"), "{out:?}");
}
