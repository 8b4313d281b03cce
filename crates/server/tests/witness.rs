//! The witness's HTTP API in process: each `add-checkpoint` outcome mapped
//! to its status, content type and headers; the monitoring view; the body
//! cap, the concurrency cap and the rate limit. (`crates/cli/tests/witness.rs`
//! runs real processes against a real log, forks included.)

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use evault_merkle::{Hash, MemoryTree, leaf_hash};
use evault_note::{Checkpoint, CosignatureSigner, Ed25519Signer, Signer, Verifiers, open, sign};
use evault_witness::{AddCheckpoint, LogConfig, MAX_BODY, Witness, WitnessConfig, origin_hash};
use tower::ServiceExt as _;

const ORIGIN: &str = "example.com/log";

struct Fixture {
    _dir: tempfile::TempDir,
    log: Ed25519Signer,
    cosigner_vkey: String,
    witness: Arc<Witness>,
}

fn fixture(requests_per_minute: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap();
    let cosigner = CosignatureSigner::from_seed("witness.example/w", &[2; 32]).unwrap();
    let cosigner_vkey = cosigner.verifier_key().as_str().to_string();
    let witness = Witness::open(
        WitnessConfig {
            state_dir: dir.path().join("state"),
            logs: vec![LogConfig {
                origin: ORIGIN.into(),
                keys: vec![log.verifier_key().as_str().to_string()],
            }],
            requests_per_minute,
        },
        vec![Box::new(cosigner)],
    )
    .unwrap();
    Fixture {
        _dir: dir,
        log,
        cosigner_vkey,
        witness: Arc::new(witness),
    }
}

impl Fixture {
    /// The signed checkpoint of `size` with a root made of `tag`.
    fn note(&self, size: u64, tag: u8) -> String {
        self.note_of(size, [tag; 32])
    }

    fn note_of(&self, size: u64, root: Hash) -> String {
        let text = Checkpoint::new(ORIGIN, size, root).to_text();
        sign(&text, &[&self.log as &dyn Signer]).unwrap()
    }

    fn router(&self, concurrency: usize) -> Router {
        evault_server::witness_router(self.witness.clone(), concurrency)
    }
}

fn add(old: u64, note: &str) -> Vec<u8> {
    AddCheckpoint {
        old_size: old,
        proof: vec![],
        note,
    }
    .encode()
    .into_bytes()
}

struct Reply {
    status: StatusCode,
    content_type: String,
    retry_after: Option<String>,
    body: String,
}

async fn call(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_string())
    };
    let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = header(header::RETRY_AFTER);
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        retry_after,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn post(body: Vec<u8>) -> Request<Body> {
    Request::post("/add-checkpoint")
        .body(Body::from(body))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

const TEXT: &str = "text/plain; charset=utf-8";

#[tokio::test]
async fn cosigns_serves_the_state_and_maps_each_refusal() {
    let f = fixture(60);
    let app = f.router(4);
    let hash = origin_hash(ORIGIN);
    let monitor = format!("/{hash}/checkpoint");

    let r = call(&app, get(&monitor)).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::NOT_FOUND, TEXT)
    );

    // First contact: cosigned; the lines verify with the witness's key.
    let note = f.note(3, 3);
    let r = call(&app, post(add(0, &note))).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::OK, TEXT),
        "{}",
        r.body
    );
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let mut own = Verifiers::new();
    own.insert_boxed(evault_note::verifier_for(&f.cosigner_vkey).unwrap())
        .unwrap();
    let cosigned = format!("{text}\n{}", r.body);
    assert_eq!(open(cosigned.as_bytes(), &own).unwrap().verified.len(), 1);

    // The monitoring view: the log's signature and the cosignature.
    let r = call(&app, get(&monitor)).await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, TEXT));
    assert!(r.body.starts_with(&note), "{}", r.body);
    assert_eq!(open(r.body.as_bytes(), &own).unwrap().verified.len(), 1);
    for bad in [hash.to_uppercase(), hash[1..].to_string(), "x".repeat(64)] {
        let r = call(&app, get(&format!("/{bad}/checkpoint"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = call(&app, get(&format!("/{}/checkpoint", origin_hash("other")))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // 409 names the size the witness holds, in its own content type.
    let r = call(&app, post(add(0, &f.note(5, 5)))).await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (StatusCode::CONFLICT, "text/x.tlog.size", "3\n")
    );
    // The same size with another root: 422.
    let r = call(&app, post(add(3, &f.note(3, 9)))).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, TEXT)
    );
    // Garbage, an unknown origin, a stranger's signature.
    let r = call(&app, post(b"hello".to_vec())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let stranger = Ed25519Signer::from_seed("other.example/log", &[4; 32]).unwrap();
    let other = sign(
        &Checkpoint::new("other.example/log", 1, [1; 32]).to_text(),
        &[&stranger as &dyn Signer],
    )
    .unwrap();
    let r = call(&app, post(add(0, &other))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let forger = Ed25519Signer::from_seed(ORIGIN, &[5; 32]).unwrap();
    let forged = sign(
        &Checkpoint::new(ORIGIN, 3, [3; 32]).to_text(),
        &[&forger as &dyn Signer],
    )
    .unwrap();
    let r = call(&app, post(add(3, &forged))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // None of that moved the state.
    let r = call(&app, get(&monitor)).await;
    assert!(r.body.starts_with(&note));

    // Other routes and methods.
    let r = call(&app, get("/healthz")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok\n"));
    let r = call(&app, get("/nothing/here/at/all")).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::NOT_FOUND, TEXT)
    );
    let r = call(&app, get("/add-checkpoint")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = call(&app, get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .lines()
            .any(|l| l.starts_with("evault_http_requests_total{")
                && l.contains("route=\"/add-checkpoint\"")
                && l.contains("status=\"422\"")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_read_or_not() {
    let f = fixture(60);
    let app = f.router(4);
    // Declared too large: refused from the header, before the body, which
    // here never comes (were it read, this would wait forever).
    let never = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let req = Request::post("/add-checkpoint")
        .header(header::CONTENT_LENGTH, (MAX_BODY + 1).to_string())
        .body(Body::from_stream(never))
        .unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), call(&app, req))
        .await
        .expect("the body was waited for");
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, TEXT)
    );
    // Not declared (chunked): refused once the limit is passed.
    let mut body = add(0, &f.note(3, 3));
    body.resize(MAX_BODY + 1, b'x');
    let r = call(&app, post(body)).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, TEXT)
    );
    // Exactly at the limit it is read, and refused for what it says.
    let mut body = add(0, &f.note(3, 3));
    body.resize(MAX_BODY, b'x');
    let r = call(&app, post(body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = call(&app, get(&format!("/{}/checkpoint", origin_hash(ORIGIN)))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn busy_is_503_and_over_the_rate_is_429_with_retry_after() {
    let f = fixture(1);
    let mut tree = MemoryTree::new();
    for i in 0..3u8 {
        tree.push(leaf_hash(&[i]));
    }
    let at_3 = f.note_of(3, tree.root());
    let r = call(&f.router(0), post(add(0, &at_3))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.retry_after.as_deref(), Some("1"));

    let app = f.router(4);
    let first = call(&app, post(add(0, &at_3))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The same checkpoint again is answered from the state, not charged.
    let again = call(&app, post(add(3, &at_3))).await;
    assert_eq!((again.status, again.body), (StatusCode::OK, first.body));
    // Progress beyond one a minute: 429, and when to come back.
    tree.push(leaf_hash(&[3]));
    let grow = AddCheckpoint {
        old_size: 3,
        proof: tree.consistency_proof(3, 4).unwrap(),
        note: &f.note_of(4, tree.root()),
    }
    .encode();
    let r = call(&app, post(grow.into_bytes())).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: u64 = r.retry_after.unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}
