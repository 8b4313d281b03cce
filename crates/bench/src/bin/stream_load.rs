//! Streams records into a running `evault serve` and reports durable
//! records per second and the server's memory.
//!
//! usage: stream_load grpc|ndjson ADDR TOKEN RECORDS STREAMS SERVER_PID
//!
//! `grpc`: `EvidenceService/IngestStream` on ADDR (the gRPC port);
//! `ndjson`: `POST /api/v1/evidence/stream` on ADDR (the REST port). Each of
//! STREAMS concurrent streams sends RECORDS/STREAMS unique records of 256
//! payload bytes and reads every result; the rate counts results that say
//! accepted (durable) from the first byte sent to the last result read.
//! The server's VmRSS is sampled every 50 ms, and its VmHWM read at the end.
//! Prints `RESULT mode=… records=… rps=… rss_max_mib=… hwm_mib=…`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use evault_proto::v1 as pb;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

const PAYLOAD: usize = 256;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn payload(stream: usize, i: u64) -> Vec<u8> {
    let mut p = format!("stream {stream} record {i} pid {} ", std::process::id()).into_bytes();
    p.resize(PAYLOAD, b'.');
    p
}

/// `VmRSS`/`VmHWM` of `pid`, in MiB.
fn proc_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn grpc_stream(addr: String, token: String, stream: usize, n: u64) -> Result<u64, Error> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let mut client = pb::evidence_service_client::EvidenceServiceClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", bearer.clone());
            Ok(req)
        },
    );
    let input = futures_util::stream::iter(0..n).map(move |i| pb::IngestRequest {
        record: Some(pb::Record {
            content_type: "application/octet-stream".into(),
            payload: payload(stream, i),
            labels: Default::default(),
            idempotency_key: String::new(),
        }),
    });
    let mut out = client.ingest_stream(input).await?.into_inner();
    let mut accepted = 0;
    while let Some(r) = out.message().await? {
        if let Some(pb::ingest_result::Result::Accepted(a)) = r.result
            && !a.duplicate
        {
            accepted += 1;
        }
    }
    Ok(accepted)
}

/// One NDJSON stream over HTTP/1.1 with a chunked body; the response's
/// chunked framing is decoded to count result lines.
async fn ndjson_stream(addr: String, token: String, stream: usize, n: u64) -> Result<u64, Error> {
    let tcp = tokio::net::TcpStream::connect(&addr).await?;
    tcp.set_nodelay(true)?;
    let (rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /api/v1/evidence/stream HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        wr.write_all(head.as_bytes()).await?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut chunk = Vec::with_capacity(80 * 1024);
        for i in 0..n {
            chunk.extend_from_slice(
                b"{\"content_type\":\"application/octet-stream\",\"payload_base64\":\"",
            );
            chunk.extend_from_slice(b64.encode(payload(stream, i)).as_bytes());
            chunk.extend_from_slice(b"\"}\n");
            if chunk.len() >= 64 * 1024 || i + 1 == n {
                wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                wr.write_all(&chunk).await?;
                wr.write_all(b"\r\n").await?;
                chunk.clear();
            }
        }
        wr.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(wr)
    });
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    // Status line and headers.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(rd.read_u8().await?);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("stream refused: {head}").into());
    }
    let mut accepted = 0;
    let mut line = Vec::new();
    loop {
        let mut size_line = Vec::new();
        while !size_line.ends_with(b"\r\n") {
            size_line.push(rd.read_u8().await?);
        }
        let size = usize::from_str_radix(String::from_utf8_lossy(&size_line).trim(), 16)?;
        if size == 0 {
            break;
        }
        let mut data = vec![0u8; size + 2];
        rd.read_exact(&mut data).await?;
        for &b in &data[..size] {
            if b == b'\n' {
                if line.windows(19).any(|w| w == b"\"status\":\"accepted\"") {
                    accepted += 1;
                }
                line.clear();
            } else {
                line.push(b);
            }
        }
    }
    writer.await??;
    Ok(accepted)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, addr, token, records, streams, pid] = &args[..] else {
        return Err("usage: stream_load grpc|ndjson ADDR TOKEN RECORDS STREAMS SERVER_PID".into());
    };
    let records: u64 = records.parse()?;
    let streams: usize = streams.parse()?;
    let pid: u32 = pid.parse()?;
    let per_stream = records / streams as u64;

    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let rss_max = rss_max.clone();
        tokio::spawn(async move {
            loop {
                if let Some(mib) = proc_mib(pid, "VmRSS:") {
                    rss_max.fetch_max(mib as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let (addr, token) = (addr.clone(), token.clone());
        tasks.push(match mode.as_str() {
            "grpc" => tokio::spawn(grpc_stream(addr, token, s, per_stream)),
            "ndjson" => tokio::spawn(ndjson_stream(addr, token, s, per_stream)),
            other => return Err(format!("unknown mode {other:?}").into()),
        });
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    sampler.abort();
    let hwm = proc_mib(pid, "VmHWM:").unwrap_or(0.0);
    if accepted != per_stream * streams as u64 {
        eprintln!(
            "stream_load: only {accepted} of {} records were accepted",
            per_stream * streams as u64
        );
    }
    println!(
        "RESULT mode={mode} records={accepted} secs={secs:.2} rps={:.0} rss_max_mib={} hwm_mib={hwm:.0}",
        accepted as f64 / secs,
        rss_max.load(Ordering::Relaxed)
    );
    Ok(())
}
