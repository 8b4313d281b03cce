//! The PKCS#11 signer against SoftHSM2, with a token the test initialises.
//!
//! SoftHSM finds its tokens through `SOFTHSM2_CONF`, which must be set before
//! the module is loaded, and PKCS#11 allows one `C_Initialize` per process.
//! So each test re-runs this test binary as a child process, with its own
//! token directory in the environment, and the body runs there: every test
//! gets a fresh module, and "restarting the vault" is starting a new child.
//!
//! Without SoftHSM (`softhsm2` and `opensc` from Debian) the tests skip
//! loudly; `EVAULT_REQUIRE_SOFTHSM=1` (set by `.ci/run`) makes that a
//! failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use evault_note::{Checkpoint, Ed25519Signer, SignError, Signer, Verifiers, open, sign};
use evault_pkcs11::{Pkcs11Error, Pkcs11Signer, generate_ed25519};

const LIBS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
];
const TOKEN: &str = "evault-test";
const PIN: &str = "1234";
const SO_PIN: &str = "12345678";
const CHILD: &str = "EVAULT_SOFTHSM_CHILD";
const NAME: &str = "example.com/log";

fn lib() -> Option<&'static str> {
    LIBS.iter().copied().find(|p| Path::new(p).exists())
}

/// The URI of key `label` in the test token, with the PIN in a 0600 file.
fn uri(dir: &Path, label: &str) -> String {
    format!(
        "pkcs11:token={TOKEN};object={label}?module-path={}&pin-source={}",
        lib().unwrap(),
        dir.join("pin").display()
    )
}

/// Runs `body` in a child process that sees a fresh SoftHSM token; `phases`
/// children run one after the other on the same token, each told its phase.
fn with_softhsm(test: &str, phases: u32, body: fn(&Path, u32)) {
    if let Ok(dir) = std::env::var(CHILD) {
        let phase = std::env::var("EVAULT_SOFTHSM_PHASE")
            .unwrap()
            .parse()
            .unwrap();
        body(Path::new(&dir), phase);
        return;
    }
    if lib().is_none() {
        let msg = "SoftHSM2 not installed (apt-get install softhsm2 opensc); PKCS#11 test skipped";
        if std::env::var("EVAULT_REQUIRE_SOFTHSM").is_ok_and(|v| v == "1") {
            panic!("{msg}, but EVAULT_REQUIRE_SOFTHSM=1");
        }
        eprintln!("SKIPPED {test}: {msg}");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("softhsm-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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
    write_private(&dir.join("pin"), PIN);
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs (it comes with softhsm2)");
    assert!(out.status.success(), "init token: {out:?}");
    for phase in 0..phases {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("SOFTHSM2_CONF", &conf)
            .env(CHILD, &dir)
            .env("EVAULT_SOFTHSM_PHASE", phase.to_string())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{test} phase {phase} failed:\n{text}");
        // The child must really have run the test, not filtered it out.
        assert!(
            text.contains("1 passed"),
            "{test} phase {phase} ran nothing:\n{text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn checkpoint_text(size: u64) -> String {
    Checkpoint::new(NAME, size, [size as u8; 32]).to_text()
}

#[test]
fn signs_checkpoints_that_open_with_its_verifier_key() {
    with_softhsm(
        "signs_checkpoints_that_open_with_its_verifier_key",
        1,
        |dir, _| {
            let public = generate_ed25519(&uri(dir, "log-key")).unwrap();
            let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
            assert_eq!(signer.public_key(), public);
            assert_eq!(signer.name(), NAME);

            let text = checkpoint_text(7);
            let note = sign(&text, &[&signer]).unwrap();
            // Verified through the published verifier key text, as a client does.
            let known = Verifiers::new()
                .with(
                    evault_note::Ed25519Verifier::from_verifier_key(signer.verifier_key().as_str())
                        .unwrap(),
                )
                .unwrap();
            let opened = open(note.as_bytes(), &known).unwrap();
            assert_eq!(opened.text, text);

            // The same key file format as a file key: a file signer with another
            // key yields another key ID under the same name.
            let file = Ed25519Signer::from_seed(NAME, &[1; 32]).unwrap();
            assert_ne!(file.key_id(), signer.key_id());
            // Ed25519 is deterministic: the token signs the same bytes the same.
            assert_eq!(
                signer.sign(text.as_bytes()).unwrap(),
                signer.sign(text.as_bytes()).unwrap()
            );
            let dbg = format!("{signer:?}");
            assert!(dbg.contains("log-key") && !dbg.contains(PIN), "{dbg}");
        },
    );
}

#[test]
fn the_private_key_never_leaves_the_token() {
    with_softhsm("the_private_key_never_leaves_the_token", 1, |dir, _| {
        generate_ed25519(&uri(dir, "log-key")).unwrap();
        // Look at the key with a session of our own.
        // (The signer's module initialised the library in this process.)
        let ctx = Pkcs11::new(lib().unwrap()).unwrap();
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
        let session = ctx.open_ro_session(slot).unwrap();
        session
            .login(UserType::User, Some(&AuthPin::from(PIN.to_owned())))
            .unwrap();
        let keys = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(b"log-key".to_vec()),
            ])
            .unwrap();
        assert_eq!(keys.len(), 1);
        let attrs = session
            .get_attributes(
                keys[0],
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Value,
                ],
            )
            .unwrap();
        let mut seen = 0;
        for a in &attrs {
            match a {
                Attribute::Sensitive(v) | Attribute::AlwaysSensitive(v) => {
                    assert!(*v, "{a:?}");
                    seen += 1;
                }
                Attribute::Extractable(v) => {
                    assert!(!*v, "{a:?}");
                    seen += 1;
                }
                Attribute::NeverExtractable(v) => {
                    assert!(*v, "{a:?}");
                    seen += 1;
                }
                Attribute::Value(_) => panic!("the token gave out the private key"),
                _ => {}
            }
        }
        assert_eq!(seen, 4, "{attrs:?}");

        // And a signer refuses to overwrite it.
        assert!(matches!(
            generate_ed25519(&uri(dir, "log-key")),
            Err(Pkcs11Error::KeyExists(_))
        ));
    });
}

#[test]
fn a_restarted_process_keeps_signing_with_the_same_key() {
    with_softhsm(
        "a_restarted_process_keeps_signing_with_the_same_key",
        2,
        |dir, phase| {
            let key_id_file = dir.join("key-id");
            if phase == 0 {
                generate_ed25519(&uri(dir, "log-key")).unwrap();
                let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
                signer.sign(checkpoint_text(1).as_bytes()).unwrap();
                std::fs::write(&key_id_file, signer.verifier_key().as_str()).unwrap();
            } else {
                // A new process: a new module, session and login.
                let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
                let vkey = std::fs::read_to_string(&key_id_file).unwrap();
                assert_eq!(signer.verifier_key().as_str(), vkey);
                let note = sign(&checkpoint_text(2), &[&signer]).unwrap();
                let known = Verifiers::new()
                    .with(evault_note::Ed25519Verifier::from_verifier_key(&vkey).unwrap())
                    .unwrap();
                open(note.as_bytes(), &known).unwrap();
            }
        },
    );
}

#[test]
fn a_lost_login_is_recovered_on_a_new_session() {
    with_softhsm("a_lost_login_is_recovered_on_a_new_session", 1, |dir, _| {
        generate_ed25519(&uri(dir, "log-key")).unwrap();
        let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
        let text = checkpoint_text(3);
        let first = signer.sign(text.as_bytes()).unwrap();

        // Another session of this process logs out, which logs out every
        // session of the application on the token (PKCS#11): the signer's
        // session can no longer use the private key.
        let ctx = Pkcs11::new(lib().unwrap()).unwrap();
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
        let other = ctx.open_ro_session(slot).unwrap();
        other.logout().unwrap();

        // The signer notices, opens a new session, logs in and signs.
        assert_eq!(signer.sign(text.as_bytes()).unwrap(), first);
    });
}

#[test]
fn refusals_name_what_is_wrong() {
    with_softhsm("refusals_name_what_is_wrong", 1, |dir, _| {
        generate_ed25519(&uri(dir, "log-key")).unwrap();
        let lib = lib().unwrap();
        let pin = dir.join("pin");
        let cases = [
            (
                format!(
                    "pkcs11:token=nope;object=log-key?module-path={lib}&pin-source={}",
                    pin.display()
                ),
                "no PKCS#11 token matches token \"nope\"",
            ),
            (
                format!(
                    "pkcs11:token={TOKEN};object=other?module-path={lib}&pin-source={}",
                    pin.display()
                ),
                "no Ed25519 private key matches token \"evault-test\", key \"other\"",
            ),
            (
                format!("pkcs11:token={TOKEN};object=log-key?module-path={lib}&pin-value=0000"),
                "logging in to token \"evault-test\", key \"log-key\"",
            ),
            (
                format!(
                    "pkcs11:token={TOKEN};object=log-key?module-path=/nonexistent/lib.so&pin-value=1"
                ),
                "loading PKCS#11 module /nonexistent/lib.so",
            ),
            (
                format!(
                    "pkcs11:token={TOKEN};object=log-key?module-path={lib}&pin-source=/nonexistent/pin"
                ),
                "PKCS#11 user PIN: /nonexistent/pin",
            ),
            (
                format!("pkcs11:token={TOKEN}?module-path={lib}"),
                "name the key with object=<label> or id=<bytes>",
            ),
        ];
        for (u, want) in cases {
            let err = Pkcs11Signer::open(&u, NAME).unwrap_err().to_string();
            assert!(err.contains(want), "{u}: {err}");
            assert!(!err.contains(PIN), "the PIN leaked: {err}");
        }
        // A PIN file others can read is refused.
        let loose = dir.join("loose-pin");
        std::fs::write(&loose, PIN).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let u = format!(
            "pkcs11:token={TOKEN};object=log-key?module-path={lib}&pin-source={}",
            loose.display()
        );
        let err = Pkcs11Signer::open(&u, NAME).unwrap_err().to_string();
        assert!(err.contains("mode 644"), "{err}");
        // An invalid note key name.
        assert!(matches!(
            Pkcs11Signer::open(&uri(dir, "log-key"), "has space"),
            Err(Pkcs11Error::InvalidName(_))
        ));
        // The note text rules are note::sign's, whatever the signer.
        let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
        assert!(matches!(
            sign("no final newline", &[&signer]),
            Err(SignError::TextMissingFinalNewline)
        ));
    });
}

#[test]
fn a_token_taken_away_fails_cleanly_and_recovers_when_back() {
    with_softhsm(
        "a_token_taken_away_fails_cleanly_and_recovers_when_back",
        1,
        |dir, _| {
            generate_ed25519(&uri(dir, "log-key")).unwrap();
            let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
            let text = checkpoint_text(4);
            let good = signer.sign(text.as_bytes()).unwrap();

            // SoftHSM keeps a token as a directory: moving it away is
            // taking the token out.
            let tokens = dir.join("tokens");
            let away = dir.join("tokens-away");
            std::fs::rename(&tokens, &away).unwrap();
            std::fs::create_dir(&tokens).unwrap();
            let err = signer.sign(text.as_bytes()).unwrap_err();
            eprintln!("while away: {err}");
            assert!(matches!(err, SignError::Backend(_)), "{err:?}");

            std::fs::remove_dir(&tokens).unwrap();
            std::fs::rename(&away, &tokens).unwrap();
            assert_eq!(signer.sign(text.as_bytes()).unwrap(), good);
        },
    );
}

#[test]
fn two_signers_share_the_module_through_a_reinitialisation() {
    with_softhsm(
        "two_signers_share_the_module_through_a_reinitialisation",
        1,
        |dir, _| {
            generate_ed25519(&uri(dir, "key-a")).unwrap();
            generate_ed25519(&uri(dir, "key-b")).unwrap();
            let a = Pkcs11Signer::open(&uri(dir, "key-a"), NAME).unwrap();
            let b = Pkcs11Signer::open(&uri(dir, "key-b"), "example.com/audit").unwrap();
            let text = checkpoint_text(5);
            let (sa, sb) = (
                a.sign(text.as_bytes()).unwrap(),
                b.sign(text.as_bytes()).unwrap(),
            );

            // The token goes away; a fails and initialises the module again,
            // which invalidates b's session too.
            let tokens = dir.join("tokens");
            let away = dir.join("tokens-away");
            std::fs::rename(&tokens, &away).unwrap();
            std::fs::create_dir(&tokens).unwrap();
            assert!(a.sign(text.as_bytes()).is_err());
            std::fs::remove_dir(&tokens).unwrap();
            std::fs::rename(&away, &tokens).unwrap();

            // b forgets its stale session rather than closing a handle that
            // may now be a's, opens a new one, and both sign as before.
            assert_eq!(b.sign(text.as_bytes()).unwrap(), sb);
            assert_eq!(a.sign(text.as_bytes()).unwrap(), sa);
            assert_eq!(b.sign(text.as_bytes()).unwrap(), sb);
        },
    );
}

#[test]
fn a_wrong_pin_is_not_retried_and_disturbs_no_one() {
    with_softhsm(
        "a_wrong_pin_is_not_retried_and_disturbs_no_one",
        1,
        |dir, _| {
            generate_ed25519(&uri(dir, "log-key")).unwrap();
            let signer = Pkcs11Signer::open(&uri(dir, "log-key"), NAME).unwrap();
            let text = checkpoint_text(6);
            signer.sign(text.as_bytes()).unwrap();

            // Our own session in the same process, logged in: it must stay
            // valid (a re-initialisation of the module would end it).
            let ctx = Pkcs11::new(lib().unwrap()).unwrap();
            let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
            let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
            let mine = ctx.open_rw_session(slot).unwrap();
            // The PIN changes under the signer, and every session is logged
            // out: the signer's next login is refused.
            // (The signer's login holds for every session of the process.)
            mine.set_pin(
                &AuthPin::from(PIN.to_owned()),
                &AuthPin::from("5555".to_owned()),
            )
            .unwrap();
            mine.logout().unwrap();
            let err = signer.sign(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("logging in"), "{err}");
            // Our session survived: the module was not initialised again.
            assert!(mine.get_session_info().is_ok());
            mine.login(UserType::User, Some(&AuthPin::from("5555".to_owned())))
                .unwrap();
        },
    );
}
