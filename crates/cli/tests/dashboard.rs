//! The dashboard in a real browser: `web/e2e/browser.mjs` drives Debian's
//! Chromium (`/usr/bin/chromium`, through playwright-core; never a browser
//! download) against a real `evault serve`. It signs in, ingests through
//! the API, finds the record and sees the browser verify it; it tampers
//! with proofs and checkpoints and sees the failed step; XSS probes in
//! labels, content types, principals and audit fields stay inert; no CSP
//! violation; keyboard-only navigation. With `EVAULT_UPDATE_SCREENSHOTS=1`
//! it also rewrites `docs/screenshots/`.
//!
//! Needs Node, `web/node_modules` (`bash web/setup.sh`) and Chromium: it
//! skips loudly without them, and fails instead when
//! `EVAULT_REQUIRE_BROWSER=1` (as in CI).

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use browser::{CHROMIUM, web_dir};
use common::Server;
use evault_auth::Role;

/// The principal of the XSS probe key: markup that must stay text.
pub const XSS_PRINCIPAL: &str = "<svg/onload=alert(1)>";

#[test]
fn the_browser_verifies_proofs_and_stays_inert_under_probes() {
    if !browser::may_run("the dashboard's browser test", browser::browser_missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = common::write_keystore_with(
        &data,
        &[
            ("xss-ingester", XSS_PRINCIPAL, &[Role::Ingester]),
            ("auditor-only", "test:auditor", &[Role::Auditor]),
        ],
    );
    let server = Server::start(&data, &["--origin", "vault.example/evidence"]);
    let mut cmd = Command::new("node");
    cmd.arg("e2e/browser.mjs")
        .current_dir(web_dir())
        .env("EVAULT_URL", &server.url)
        .env("EVAULT_TOKEN", common::token())
        .env("EVAULT_XSS_TOKEN", &tokens[0])
        .env("EVAULT_XSS_PRINCIPAL", XSS_PRINCIPAL)
        .env("EVAULT_AUDITOR_TOKEN", &tokens[1])
        .env("EVAULT_CHROMIUM", CHROMIUM);
    if std::env::var_os("EVAULT_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        cmd.env(
            "EVAULT_SCREENSHOTS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"),
        );
    }
    let status = cmd.status().expect("run node e2e/browser.mjs");
    server.kill();
    assert!(status.success(), "web/e2e/browser.mjs failed: {status}");
}

/// The screenshots in docs/screenshots (in a fresh clone: the committed
/// ones) and the README's links to them match both ways.
#[test]
fn screenshots_are_committed_and_linked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let shots: Vec<String> = std::fs::read_dir(root.join("docs/screenshots"))
        .expect("docs/screenshots")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    assert!(shots.len() >= 14, "light and dark of every page: {shots:?}");
    for theme in ["light", "dark"] {
        assert!(
            shots.iter().any(|s| s.ends_with(&format!("-{theme}.png"))),
            "{theme}"
        );
    }
    for shot in &shots {
        assert!(
            readme.contains(&format!("docs/screenshots/{shot}")),
            "README.md links {shot}"
        );
    }
    for link in readme.split("docs/screenshots/").skip(1) {
        let name: String = link
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
            .collect();
        if !name.ends_with(".png") {
            continue; // the directory named in prose
        }
        assert!(
            shots.contains(&name),
            "README.md links {name}, which is missing"
        );
    }
}

/// The dashboard's verifier passes its Node tests (`web/test`: the public
/// Merkle and signed-note vectors the Rust code passes, the leaf formats,
/// Ed25519 edge cases, no HTML sinks), so `cargo test` covers the
/// JavaScript too. Needs only Node.
#[test]
fn the_javascript_verifier_passes_its_node_tests() {
    if !browser::may_run("the dashboard's Node tests", browser::node_missing()) {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(web_dir().join("test"))
        .expect("web/test")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let out = Command::new("node")
        .arg("--test")
        .args(&files)
        .current_dir(web_dir())
        .output()
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The TAP summary: some tests ran and none failed.
    let count = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {name} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no `# {name}` line in:\n{stdout}"))
    };
    assert!(count("pass") >= 50, "{stdout}");
    assert_eq!(count("fail"), 0);
}
