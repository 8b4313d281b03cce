//! Signing in to the dashboard through OIDC, in a real browser: a mock
//! issuer (`web/e2e/oidc-issuer.mjs`, Node) is configured as an
//! `[[oidc]]` issuer with an `[oidc.dashboard]` table of a real
//! `evault serve`, and `web/e2e/oidc.mjs` drives Debian's Chromium
//! (through playwright-core; never a browser download) through the
//! authorization code flow with PKCE: the user clicks "Sign in with
//! <issuer>", comes back to the overview signed in as the issuer's subject
//! (the server verified the ID token against the issuer's JWKS), with the
//! code gone from the address bar and no CSP violation; a forged or
//! replayed `state` is refused.
//!
//! Needs Node, `web/node_modules` (`bash web/setup.sh`) and Chromium: it
//! skips loudly without them, and fails instead when
//! `EVAULT_REQUIRE_BROWSER=1` (as in CI).

mod browser;
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::{CHROMIUM, web_dir};
use common::Server;

/// The dashboard's client id at the mock issuer, also the audience the
/// server checks in the ID token (an ID token's `aud` is the client id).
const CLIENT_ID: &str = "evault-dashboard";
/// The subject the mock issuer signs in.
const SUBJECT: &str = "alice";

/// The mock issuer, killed when dropped (also when the test panics).
struct Issuer {
    child: Child,
    url: String,
}

impl Issuer {
    fn start() -> Issuer {
        let mut child = Command::new("node")
            .arg("e2e/oidc-issuer.mjs")
            .current_dir(web_dir())
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_SUBJECT", SUBJECT)
            .env("OIDC_ROLES", "auditor")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node e2e/oidc-issuer.mjs");
        let stdout = child.stdout.take().expect("issuer stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining, so the issuer never blocks on a full pipe.
            for _ in lines {}
        });
        let mut issuer = Issuer {
            child,
            url: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) if line.starts_with("http://127.0.0.1:") => {
                issuer.url = line.trim().to_string();
            }
            other => panic!("the mock issuer did not print its URL: {other:?}"),
        }
        issuer
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_user_signs_in_to_the_dashboard_with_oidc_and_pkce() {
    if !browser::may_run(
        "the dashboard's OIDC sign-in test",
        browser::browser_missing(),
    ) {
        return;
    }
    let started = Instant::now();
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("evault.toml");
    let url = &issuer.url;
    // jwks_url over plain http is accepted on loopback only (serve.rs
    // check_jwks_url), which is where the mock listens.
    std::fs::write(
        &config,
        format!(
            "origin = \"test.example/oidc\"\n\
             \n\
             [[oidc]]\n\
             issuer = \"{url}\"\n\
             audience = \"{CLIENT_ID}\"\n\
             jwks_url = \"{url}/jwks.json\"\n\
             algorithms = [\"ES256\"]\n\
             roles_claim = \"roles\"\n\
             \n\
             [oidc.dashboard]\n\
             client_id = \"{CLIENT_ID}\"\n\
             authorization_endpoint = \"{url}/authorize\"\n\
             token_endpoint = \"{url}/token\"\n\
             scope = \"openid profile\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let status = Command::new("node")
        .arg("e2e/oidc.mjs")
        .current_dir(web_dir())
        .env("EVAULT_URL", &server.url)
        .env("EVAULT_ISSUER", url)
        .env("EVAULT_SUBJECT", SUBJECT)
        .env("EVAULT_CHROMIUM", CHROMIUM)
        .status()
        .expect("run node e2e/oidc.mjs");
    server.kill();
    drop(issuer);
    eprintln!("dashboard OIDC sign-in test took {:?}", started.elapsed());
    assert!(status.success(), "web/e2e/oidc.mjs failed: {status}");
}
