//! The REST API end to end: real HTTP against a real vault.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{ORIGIN, TestServer, chunked, verifiers};
use evault_merkle::tiles::{TileId, TileReader, TiledHashReader, parse_entry_bundle};
use evault_verify::{Evidence, ProofBundle, TlogProof, open_checkpoint};
use serde_json::{Value, json};

fn record(v: &Value) -> Evidence {
    serde_json::from_value(v["record"].clone()).unwrap()
}

fn put_raw(s: &TestServer, body: &[u8], labels: &[&str]) -> Evidence {
    let mut headers: Vec<(&str, &[u8])> = vec![("Content-Type", b"application/octet-stream")];
    for l in labels {
        headers.push(("X-Evault-Label", l.as_bytes()));
    }
    let r = s.post("/api/v1/evidence", &headers, body);
    assert_eq!(r.status, 201, "{}", r.text());
    record(&r.json())
}

#[test]
fn raw_and_envelope_round_trip_and_verify() {
    let s = TestServer::start();

    // Raw: labels from a header and from the query; JSON stored as is.
    let r = s.post(
        "/api/v1/evidence?label=pipeline%3Drelease",
        &[
            ("Content-Type", b"application/json"),
            ("X-Evault-Label", b"build=7"),
        ],
        br#"{"tests":42}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["duplicate"], json!(false));
    let raw = record(&body);
    assert_eq!(
        r.header("location").unwrap(),
        format!("/api/v1/evidence/{}", raw.id)
    );
    assert_eq!(raw.content_type, "application/json");
    assert_eq!(raw.ingested_by, common::PRINCIPAL);
    assert_eq!(
        raw.labels,
        BTreeMap::from([
            ("build".into(), "7".into()),
            ("pipeline".into(), "release".into())
        ])
    );

    // Envelope.
    let env = json!({
        "content_type": "text/plain; charset=utf-8",
        "payload_base64": STANDARD.encode("hello, envelope"),
        "labels": {"kind": "note", "lang": "français"},
    });
    let r = s.post(
        "/api/v1/evidence",
        &[("Content-Type", b"application/vnd.evault.evidence+json")],
        env.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let enveloped = record(&r.json());
    assert_eq!(enveloped.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        enveloped.labels,
        BTreeMap::from([
            ("kind".into(), "note".into()),
            ("lang".into(), "français".into())
        ])
    );

    // A large raw body, sent chunked: spills to a blob file and streams back.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let parts: Vec<&[u8]> = big.chunks(70_000).collect();
    let r = s.post(
        "/api/v1/evidence",
        &[
            ("Content-Type", b"application/x-tar"),
            ("Transfer-Encoding", b"chunked"),
        ],
        &chunked(&parts),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let large = record(&r.json());
    assert_eq!(large.size, big.len() as u64);

    for (rec, bytes) in [
        (&raw, br#"{"tests":42}"#.to_vec()),
        (&enveloped, b"hello, envelope".to_vec()),
        (&large, big.clone()),
    ] {
        let got = s.get(&format!("/api/v1/evidence/{}", rec.id));
        assert_eq!(
            serde_json::from_value::<Evidence>(got.ok_json()).unwrap(),
            *rec
        );
        let p = s.get(&format!("/api/v1/evidence/{}/payload", rec.id));
        assert_eq!(p.status, 200);
        assert_eq!(p.body, bytes, "payload of {}", rec.content_type);
        assert_eq!(p.header("content-type").unwrap(), rec.content_type);
        assert_eq!(p.header("x-content-type-options").unwrap(), "nosniff");
        assert!(
            p.header("content-disposition")
                .unwrap()
                .starts_with("attachment")
        );
        assert_eq!(p.header("etag").unwrap(), format!("\"{}\"", rec.sha256));
    }

    s.wait_for_checkpoint(3);
    let verifiers = verifiers(&s);
    let log = s.get("/api/v1/log").ok_json();
    assert_eq!(log["origin"], ORIGIN);
    assert_eq!(log["tree_size"], 3);
    assert_eq!(log["checkpoint_size"], 3);

    for rec in [&raw, &enveloped, &large] {
        let bundle: ProofBundle = serde_json::from_value(
            s.get(&format!("/api/v1/evidence/{}/proof", rec.id))
                .ok_json(),
        )
        .unwrap();
        assert_eq!(bundle.record, *rec);
        let ok = bundle
            .verify(&verifiers, Some(ORIGIN))
            .expect("bundle verifies");
        assert_eq!((ok.leaf_index, ok.tree_size), (rec.leaf_index, 3));

        let at = s
            .get(&format!("/api/v1/evidence/{}/proof?tree_size=3", rec.id))
            .ok_json();
        assert_eq!(serde_json::from_value::<ProofBundle>(at).unwrap(), bundle);

        let t = s.get(&format!(
            "/api/v1/evidence/{}/proof?format=tlog-proof",
            rec.id
        ));
        assert_eq!(t.status, 200);
        assert!(t.header("content-type").unwrap().starts_with("text/plain"));
        let tp = TlogProof::parse(&t.text()).expect("tlog-proof parses");
        assert_eq!(tp.index, rec.leaf_index);
        assert_eq!(tp.checkpoint, bundle.checkpoint);
        let hashes: Vec<String> = tp.proof.iter().map(|h| STANDARD.encode(h)).collect();
        assert_eq!(hashes, bundle.inclusion_proof);
    }

    // Checkpoints: text by default, JSON on request, by size, listed.
    let latest = s.get("/api/v1/checkpoints/latest");
    assert_eq!(latest.status, 200);
    assert!(
        latest
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let note = latest.text();
    assert!(note.starts_with(&format!("{ORIGIN}\n3\n")), "{note}");
    let (cp, _) = open_checkpoint(&note, &verifiers, Some(ORIGIN)).unwrap();
    assert_eq!(cp.size, 3);
    let j = s
        .get_with(
            "/api/v1/checkpoints/latest",
            &[("Accept", b"application/json")],
        )
        .ok_json();
    assert_eq!(j["size"], 3);
    assert_eq!(j["note"], note.as_str());
    assert!(j["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s.get("/api/v1/checkpoints/3").text(), note);
    let list = s.get("/api/v1/checkpoints?limit=1000").ok_json();
    let sizes: Vec<u64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes.last(), Some(&3));
    assert!(sizes.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(list["next_cursor"], Value::Null);
    assert_eq!(s.get("/tlog/checkpoint").text(), note);
}

#[test]
fn duplicates_and_idempotent_replays() {
    let s = TestServer::start();
    let ct: (&str, &[u8]) = ("Content-Type", b"text/plain");
    let first = s.post(
        "/api/v1/evidence",
        &[ct, ("X-Evault-Label", b"a=1")],
        b"same",
    );
    assert_eq!(first.status, 201);
    let again = s.post("/api/v1/evidence?label=a=1", &[ct], b"same");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["duplicate"], json!(true));
    assert_eq!(record(&again.json()), record(&first.json()));

    // A retry with the same key gets the first reply, whatever it sends.
    let key: (&str, &[u8]) = ("Idempotency-Key", b"retry-1");
    let a = s.post("/api/v1/evidence", &[ct, key], b"payload-x");
    assert_eq!(a.status, 201);
    let b = s.post("/api/v1/evidence", &[ct, key], b"payload-y");
    assert_eq!(b.status, 201);
    assert_eq!(b.body, a.body, "replay body is byte-identical");
    assert_eq!(b.header("x-evault-replayed").as_deref(), Some("true"));
    assert_eq!(
        record(&a.json()).idempotency_key.as_deref(),
        Some("retry-1")
    );

    // Whose first reply was a duplicate gets that again.
    let key2: (&str, &[u8]) = ("Idempotency-Key", b"retry-2");
    let c = s.post(
        "/api/v1/evidence",
        &[ct, key2, ("X-Evault-Label", b"a=1")],
        b"same",
    );
    assert_eq!(c.status, 200);
    let d = s.post(
        "/api/v1/evidence",
        &[ct, key2, ("X-Evault-Label", b"a=1")],
        b"same",
    );
    assert_eq!((d.status, &d.body), (200, &c.body));

    assert_eq!(s.census(), (2, 2));
}

#[test]
fn list_filters_and_pagination() {
    let s = TestServer::start();
    let mut a_ids = Vec::new();
    for i in 0..7 {
        a_ids.push(put_raw(&s, format!("a{i}").as_bytes(), &["batch=A", "n=x"]).id);
        if i < 3 {
            put_raw(&s, format!("b{i}").as_bytes(), &["batch=B"]);
        }
    }
    let mut got = Vec::new();
    let mut pages = 0;
    let mut path = "/api/v1/evidence?label=batch:A&label=n%3Ax&limit=3".to_string();
    loop {
        let page = s.get(&path).ok_json();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        got.extend(items.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!("/api/v1/evidence?label=batch:A&label=n%3Ax&limit=3&cursor={c}")
            }
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(got, a_ids);
    let b = s.get("/api/v1/evidence?label=batch%3DB").ok_json();
    assert_eq!(b["items"].as_array().unwrap().len(), 3);
    assert_eq!(b["next_cursor"], Value::Null);

    let all = |q: &str| {
        s.get(&format!("/api/v1/evidence?{q}")).ok_json()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(all("content_type=application%2Foctet-stream"), 10);
    assert_eq!(all("content_type=text%2Fplain"), 0);
    assert_eq!(all("since=2000-01-01T00:00:00Z"), 10);
    assert_eq!(all("since=2999-01-01T00:00:00%2B01:00"), 0);
    assert_eq!(all("until=2000-01-01T00:00:00.000Z"), 0);
    assert_eq!(all("until=2999-01-01T00:00:00Z&label=batch:B"), 3);
}

#[test]
fn consistency_proofs_verify_against_checkpoints() {
    let s = TestServer::start();
    for i in 0..3 {
        put_raw(&s, format!("c{i}").as_bytes(), &[]);
    }
    s.wait_for_checkpoint(3);
    for i in 3..11 {
        put_raw(&s, format!("c{i}").as_bytes(), &[]);
    }
    s.wait_for_checkpoint(11);
    let verifiers = verifiers(&s);
    let list = s.get("/api/v1/checkpoints").ok_json();
    let cps: Vec<(u64, [u8; 32])> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let (cp, _) =
                open_checkpoint(c["note"].as_str().unwrap(), &verifiers, Some(ORIGIN)).unwrap();
            assert_eq!(cp.size, c["size"].as_u64().unwrap());
            (cp.size, cp.root_hash)
        })
        .collect();
    assert!(cps.len() >= 2, "{cps:?}");
    let (to, root2) = *cps.last().unwrap();
    // A new log opens with a signed empty checkpoint; RFC 9162 proves
    // consistency only from size 1, every tree trivially extends size 0.
    assert_eq!(cps[0].0, 0);
    for &(from, root1) in cps.iter().filter(|c| c.0 > 0) {
        let p = s
            .get(&format!("/api/v1/tree/consistency?from={from}&to={to}"))
            .ok_json();
        assert_eq!(
            (p["from"].as_u64(), p["to"].as_u64()),
            (Some(from), Some(to))
        );
        let proof: Vec<Vec<u8>> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| STANDARD.decode(h.as_str().unwrap()).unwrap())
            .collect();
        evault_merkle::verify_consistency(from, to, &proof, &root1, &root2)
            .unwrap_or_else(|e| panic!("consistency {from} -> {to}: {e}"));
    }

    // Checkpoint pages chain through their cursors.
    let mut sizes = Vec::new();
    let mut path = "/api/v1/checkpoints?limit=1".to_string();
    loop {
        let page = s.get(&path).ok_json();
        sizes.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["size"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/checkpoints?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(sizes, cps.iter().map(|c| c.0).collect::<Vec<_>>());
}

/// Reads tiles over HTTP, as a tile-following client would.
struct HttpTiles<'a>(&'a TestServer);

impl TileReader for HttpTiles<'_> {
    type Error = String;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, String> {
        tiles
            .iter()
            .map(|t| {
                let r = self.0.get(&format!("/tlog/{}", t.path()));
                if r.status != 200 {
                    return Err(format!("{}: {}", t.path(), r.status));
                }
                assert_eq!(
                    r.header("content-type").unwrap(),
                    "application/octet-stream"
                );
                assert_eq!(
                    r.header("cache-control").unwrap(),
                    "public, max-age=31536000, immutable"
                );
                Ok(r.body)
            })
            .collect()
    }
}

#[test]
fn tiles_served_match_proofs() {
    let s = TestServer::start();
    const N: u64 = 300;
    std::thread::scope(|scope| {
        for t in 0..6 {
            let s = &s;
            scope.spawn(move || {
                for i in (t..N).step_by(6) {
                    put_raw(s, format!("tile-record-{i}").as_bytes(), &[]);
                }
            });
        }
    });
    s.wait_for_checkpoint(N);
    let verifiers = verifiers(&s);
    let cp_resp = s.get("/tlog/checkpoint");
    assert_eq!(
        cp_resp.header("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(cp_resp.header("cache-control").unwrap(), "no-cache");
    let (cp, _) = open_checkpoint(&cp_resp.text(), &verifiers, Some(ORIGIN)).unwrap();
    assert_eq!(cp.size, N);

    let reader = TiledHashReader {
        tiles: HttpTiles(&s),
        tree_size: N,
    };
    assert_eq!(
        evault_merkle::root(&reader, N).unwrap(),
        cp.root_hash,
        "root from served tiles"
    );

    let mut records = Vec::new();
    let mut path = "/api/v1/evidence?limit=1000".to_string();
    loop {
        let page = s.get(&path).ok_json();
        records.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::from_value::<Evidence>(r.clone()).unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/evidence?limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(records.len() as u64, N);

    for index in [0u64, 1, 254, 255, 256, 257, 298, 299] {
        let rec = &records[index as usize];
        assert_eq!(rec.leaf_index, index);
        let from_tiles = evault_merkle::inclusion_proof(&reader, index, N).unwrap();
        let bundle: ProofBundle = serde_json::from_value(
            s.get(&format!("/api/v1/evidence/{}/proof?tree_size={N}", rec.id))
                .ok_json(),
        )
        .unwrap();
        let served: Vec<String> = from_tiles.iter().map(|h| STANDARD.encode(h)).collect();
        assert_eq!(served, bundle.inclusion_proof, "proof of leaf {index}");
        evault_merkle::verify_inclusion(
            &rec.leaf_hash().unwrap(),
            index,
            N,
            &from_tiles,
            &cp.root_hash,
        )
        .unwrap();
    }

    // Entry bundles hold the records' leaf data.
    for (path, range) in [
        ("tile/entries/000", 0..256),
        ("tile/entries/001.p/44", 256..300),
    ] {
        let r = s.get(&format!("/tlog/{path}"));
        assert_eq!(r.status, 200, "{path}");
        let entries = parse_entry_bundle(&r.body).unwrap();
        let want: Vec<Vec<u8>> = records[range]
            .iter()
            .map(|r| r.leaf_data().unwrap())
            .collect();
        assert_eq!(
            entries,
            want.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            "{path}"
        );
    }
    // A partial tile at a smaller width is the prefix of the larger one.
    let full = s.get("/tlog/tile/0/001.p/44").body;
    let part = s.get("/tlog/tile/0/001.p/10").body;
    assert_eq!(part.len(), 10 * 32);
    assert_eq!(&full[..320], &part[..]);
    assert_eq!(s.get("/tlog/tile/1/000.p/1").body.len(), 32);
}

#[test]
fn metrics_health_and_readiness() {
    let s = TestServer::start();
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
    put_raw(&s, b"metered", &[]);
    s.wait_for_checkpoint(1);
    for _ in 0..3 {
        s.get("/api/v1/log");
    }
    assert_eq!(s.get("/no/such/route").status, 404);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    let line = |needles: &[&str]| {
        text.lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no metric line with {needles:?} in\n{text}"))
            .to_string()
    };
    // The vault's own metrics (through the global facade) are rendered too.
    line(&["evault_ingest_batch_records"]);
    line(&["evault_records_appended_total"]);
    let log = line(&[
        "evault_http_requests_total{",
        "route=\"/api/v1/log\"",
        "status=\"200\"",
        "method=\"GET\"",
    ]);
    assert!(log.ends_with(" 3"), "{log}");
    line(&[
        "evault_http_requests_total{",
        "route=\"/api/v1/evidence\"",
        "status=\"201\"",
        "method=\"POST\"",
    ]);
    line(&[
        "evault_http_requests_total{",
        "route=\"unmatched\"",
        "status=\"404\"",
    ]);
    line(&[
        "evault_http_request_duration_seconds_bucket{",
        "route=\"/api/v1/log\"",
        "le=\"0.005\"",
    ]);
    assert!(
        line(&["evault_tree_size"]).contains("# HELP") || text.contains("\nevault_tree_size 1")
    );
    assert!(text.contains("\nevault_tree_size 1\n"), "{text}");
    assert!(text.contains("\nevault_checkpoint_size 1\n"), "{text}");
    line(&["evault_checkpoint_age_seconds "]);
    // The index follower catches up; /readyz says how far behind it is,
    // and its lag in time is a metric.
    let reached =
        s.rt.block_on(s.vault.wait_indexed(1, Duration::from_secs(30)));
    assert_eq!(reached, 1, "the index did not catch up");
    let r = s.get("/readyz");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ready\nindex: 0 records behind the log\n")
    );
    let text = s.get("/metrics").text();
    assert!(
        text.contains("evault_index_lag_seconds{quantile=\"0.99\"}")
            || text.contains("evault_index_lag_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains("\nevault_index_oldest_unindexed_seconds "),
        "{text}"
    );
}

#[test]
fn tls_serves_the_same_api_and_shuts_down_gracefully() {
    let mut s = TestServer::start_with(|_| {}, true);
    let r = s.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let rec = put_raw(&s, b"over tls", &["via=tls"]);
    assert_eq!(
        s.get(&format!("/api/v1/evidence/{}/payload", rec.id)).body,
        b"over tls"
    );
    s.stop().expect("serve returns Ok after shutdown");
}

#[test]
fn plain_server_shuts_down_gracefully() {
    let mut s = TestServer::start();
    assert_eq!(s.get("/healthz").status, 200);
    s.stop().expect("serve returns Ok after shutdown");
    assert!(
        std::net::TcpStream::connect(s.addr).is_err(),
        "listener closed"
    );
}
