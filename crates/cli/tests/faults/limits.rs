//! Slow and hostile clients: thousands of half-open connections, stalled
//! bodies and stalled NDJSON streams must not lock other clients out, nor
//! hold a SIGTERM beyond `--shutdown-timeout`; bad input gets its
//! documented status (too many label filters 400, a transfer coding other
//! than chunked 501).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{self, agent, get_json};

/// An `evault serve` child whose stderr lines the test can read.
struct Child_ {
    child: Child,
    url: String,
    addr: String,
    lines: mpsc::Receiver<String>,
}

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `evault serve` (under `prlimit --nofile=N` when `nofile` is
/// given) and waits for its "serving" line.
fn start(data_dir: &Path, extra: &[&str], nofile: Option<u64>) -> Child_ {
    common::write_keystore(data_dir);
    let evault = env!("CARGO_BIN_EXE_evault");
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(evault);
            c
        }
        None => Command::new(evault),
    };
    let child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "off"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--origin", "test.example/limits"])
        .args(extra)
        // Never the user's state directory.
        .env("EVAULT_STATE_DIR", data_dir.join("state"))
        .env("EVAULT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evault serve");
    // Owned by the guard at once, so every way out of here reaps it.
    let mut server = Child_ {
        child,
        url: String::new(),
        addr: String::new(),
        lines: mpsc::channel().1,
    };
    let stderr = server.child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    server.lines = rx;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("evault serve did not start: {seen:?}"));
        if let Some(rest) = line.strip_prefix("evault: serving ")
            && !rest.starts_with("gRPC")
        {
            server.url = rest.split_whitespace().next().unwrap().to_string();
            server.addr = server.url.trim_start_matches("http://").to_string();
            return server;
        }
        seen.push(line);
    }
}

/// A raw connection that has sent `bytes` and then stalls.
fn stalled(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(bytes).expect("send");
    s
}

fn post_bytes(url: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut resp = agent()
        .post(format!("{url}{path}"))
        .header("Content-Type", content_type)
        .header("Authorization", common::bearer())
        .send(body)
        .expect("POST");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// Latencies of `n` GET /api/v1/log, each on a new connection; panics if
/// one fails.
fn probe(url: &str, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            let (status, body) = get_json(&agent(), &format!("{url}/api/v1/log"));
            assert_eq!(status, 200, "probe {i}: {body}");
            t.elapsed()
        })
        .collect()
}

fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    format!(
        "median {:?}, max {:?} ({} requests)",
        d[d.len() / 2],
        d[d.len() - 1],
        d.len()
    )
}

/// Whether the server has closed `s` (EOF or reset), waiting at most
/// `limit`; answers read on the way are returned.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(got),
        }
    }
}

#[test]
fn half_open_connections_and_stalled_bodies_do_not_lock_out_clients_or_hold_sigterm() {
    if !Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            !crate::faults_required(),
            "prlimit (util-linux) is needed to hold the server to 1,024 descriptors"
        );
        eprintln!("SKIP: no prlimit (util-linux) to hold the server to 1,024 descriptors");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 1,024 descriptors, as in the report: the connection cap (3/4 of it
    // by default) must keep the server serving through 2,000 attackers.
    // Timeouts long enough that the attack stands for the whole test.
    let server = start(
        dir.path(),
        &[
            "--checkpoint-interval",
            "1h",
            "--shutdown-timeout",
            "3s",
            "--header-read-timeout",
            "120s",
            "--keep-alive-timeout",
            "120s",
            "--body-idle-timeout",
            "120s",
        ],
        Some(1024),
    );
    let url = server.url.clone();
    for i in 0..5 {
        let (status, body) = post_bytes(
            &url,
            "/api/v1/evidence",
            "text/plain",
            format!("r{i}").as_bytes(),
        );
        assert_eq!(status, 201, "{body}");
    }
    let baseline = probe(&url, 20);

    let auth = format!("Authorization: {}\r\n", common::bearer());
    // Stalled bodies: 20 uploads that promise 1,000 bytes and send 10.
    let mut attackers = Vec::new();
    for _ in 0..20 {
        attackers.push(stalled(
            &server.addr,
            format!(
                "POST /api/v1/evidence HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain\r\n\
                 Content-Length: 1000\r\n\r\n0123456789"
            )
            .as_bytes(),
        ));
    }
    // Stalled NDJSON streams: one line, then nothing.
    for i in 0..10 {
        let line = format!("{{\"content_type\":\"text/plain\",\"payload\":\"s{i}\"}}\n");
        attackers.push(stalled(
            &server.addr,
            format!(
                "POST /api/v1/evidence/stream HTTP/1.1\r\nHost: x\r\n{auth}\
                 Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {:x}\r\n{line}\r\n",
                line.len()
            )
            .as_bytes(),
        ));
    }
    // 2,000 half-open connections: half a request head each.
    for _ in 0..2000 {
        attackers.push(stalled(
            &server.addr,
            b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        ));
    }
    let under_attack = probe(&url, 20);
    // Writes still go through too.
    let (status, body) = post_bytes(&url, "/api/v1/evidence", "text/plain", b"during the attack");
    assert_eq!(status, 201, "{body}");
    eprintln!(
        "GET /api/v1/log on a new connection: before the attack {}; with 2,030 stalled \
         connections {}",
        summary(baseline),
        summary(under_attack)
    );

    // At 1,024 descriptors the cap is 768: most half-open connections
    // were closed to make room (the stalled bodies and streams, busy,
    // were not).
    let mut closed = 0;
    for s in &mut attackers[30..] {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        match s.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => closed += 1,
        }
    }
    eprintln!("{closed} of 2,000 half-open connections were closed to make room");
    assert!(
        closed >= 1000,
        "the connection cap evicts idle connections ({closed} closed)"
    );

    // SIGTERM with every attacker still connected: the server must exit
    // within its 3 s shutdown bound (plus a margin for a loaded machine)
    // and still sign its final checkpoint over all 6 records.
    let mut server = server;
    let pid = server.child.id().to_string();
    let t = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = t + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "evault serve did not exit within 30 s of SIGTERM (bound 3 s)"
        );
        std::thread::yield_now();
    };
    let took = t.elapsed();
    eprintln!("exit after SIGTERM with 2,030 stalled connections: {took:?} (bound 3 s)");
    assert!(status.success(), "exit status {status}");
    // The stalled streams' first lines may have been logged too.
    let lines: Vec<String> = server.lines.try_iter().collect();
    let stopped = lines
        .iter()
        .find_map(|l| l.strip_prefix("evault: stopped; evidence log at size "))
        .unwrap_or_else(|| panic!("no final line: {lines:?}"));
    let (size, signed) = stopped.split_once(", signed up to ").expect("final line");
    let (size, signed): (u64, u64) = (size.parse().unwrap(), signed.trim().parse().unwrap());
    assert!(
        size >= 6 && signed == size,
        "the final checkpoint covers every record: {stopped}"
    );
    drop(attackers);
}

#[test]
fn idle_connections_and_stalled_bodies_are_cut_by_their_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            "--header-read-timeout",
            "1s",
            "--body-idle-timeout",
            "1s",
            "--keep-alive-timeout",
            "1s",
        ],
        None,
    );
    let limit = Duration::from_secs(30);
    // A silent connection, and one with half a request head.
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    let mut half = stalled(&server.addr, b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n");
    assert!(
        closed_within(&mut silent, limit).is_some(),
        "a silent connection is closed"
    );
    assert!(
        closed_within(&mut half, limit).is_some(),
        "a half-sent head is cut off"
    );

    // A body that stops: 408 problem, nothing stored.
    let auth = format!("Authorization: {}\r\n", common::bearer());
    let mut body = stalled(
        &server.addr,
        format!(
            "POST /api/v1/evidence HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain\r\n\
             Content-Length: 100\r\n\r\nonly a part"
        )
        .as_bytes(),
    );
    let answer = closed_within(&mut body, limit).expect("the stalled upload ends");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // An idle keep-alive connection is closed after its request.
    let mut kept = stalled(&server.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = closed_within(&mut kept, limit).expect("the idle keep-alive ends");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    let (_, log) = get_json(&agent(), &format!("{}/api/v1/log", server.url));
    assert_eq!(log["tree_size"], 0, "nothing was stored: {log}");
}

#[test]
fn too_many_label_filters_and_unknown_transfer_codings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], None);
    let a = agent();

    // 933 label filters (SQLite's expression depth once made this 500).
    let query: Vec<String> = (0..933).map(|i| format!("label=k{i}:v")).collect();
    let mut resp = a
        .get(format!(
            "{}/api/v1/evidence?{}",
            server.url,
            query.join("&")
        ))
        .header("Authorization", common::bearer())
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let body = resp.body_mut().read_to_string().unwrap();
    assert!(body.contains("at most 32"), "{body}");
    // 32 is fine.
    let query: Vec<String> = (0..32).map(|i| format!("label=k{i}:v")).collect();
    let (status, _) = get_json(
        &a,
        &format!("{}/api/v1/evidence?{}", server.url, query.join("&")),
    );
    assert_eq!(status, 200);

    // gzip, chunked: 501, and the compressed bytes are not stored.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "POST /api/v1/evidence HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
        common::bearer()
    )
    .unwrap();
    let answer = closed_within(&mut s, Duration::from_secs(30)).expect("an answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    let (_, log) = get_json(&a, &format!("{}/api/v1/log", server.url));
    assert_eq!(log["tree_size"], 0, "nothing was stored: {log}");
    // Plain chunked still works.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "POST /api/v1/evidence HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
        common::bearer()
    )
    .unwrap();
    let answer = closed_within(&mut s, Duration::from_secs(30)).expect("an answer");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 201"));
}
