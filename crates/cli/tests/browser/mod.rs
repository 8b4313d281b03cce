//! What the dashboard's browser tests need (Node 20+, `web/node_modules`,
//! Debian's Chromium), and the one rule for when they are missing: skip
//! loudly, or fail when `EVAULT_REQUIRE_BROWSER=1` (as in CI).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's Chromium; never a downloaded browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The dashboard's directory (`web/`).
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Why Node cannot run the dashboard's tests here (absent, or older than
/// 20: WebCrypto Ed25519 and `node --test` as the tests use them).
pub fn node_missing() -> Option<String> {
    let out = match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => o,
        _ => return Some("node is not on PATH".into()),
    };
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= 20 => None,
        _ => Some(format!("node {version} is older than 20")),
    }
}

/// Why a browser test cannot run here, if it cannot.
pub fn browser_missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is not installed (bash web/setup.sh)"));
    }
    if !web_dir().join("node_modules/playwright-core").is_dir() {
        return Some("web/node_modules/playwright-core is missing (bash web/setup.sh)".into());
    }
    node_missing()
}

/// `true` if the test may run; otherwise says why it skips, or panics
/// when `EVAULT_REQUIRE_BROWSER=1`.
pub fn may_run(what: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if std::env::var_os("EVAULT_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
        panic!("EVAULT_REQUIRE_BROWSER=1 but {what} cannot run: {why}");
    }
    eprintln!("SKIPPED: {what}: {why}");
    false
}
