//! gRPC limits and their documented statuses: too many label filters is
//! INVALID_ARGUMENT, a message over 16 MiB inside a stream is
//! RESOURCE_EXHAUSTED, and a stream whose results the client does not read
//! is slowed by flow control, not killed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, token_for};
use evault_proto::v1 as pb;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

type Auth = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

fn client(s: &TestServer, key: &str) -> EvidenceServiceClient<InterceptedService<Channel, Auth>> {
    // Small receive windows: results a client does not read hold the
    // server back after ~1,000 of them, not ~40,000.
    let endpoint = Endpoint::from_shared(format!("http://{}", s.grpc_addr))
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024);
    let channel = s.rt.block_on(endpoint.connect()).expect("connect");
    let token: MetadataValue<_> = format!("Bearer {}", token_for(key)).parse().unwrap();
    let auth: Auth = Box::new(move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", token.clone());
        Ok(req)
    });
    EvidenceServiceClient::with_interceptor(channel, auth)
}

fn record(payload: Vec<u8>) -> pb::IngestRequest {
    pb::IngestRequest {
        record: Some(pb::Record {
            content_type: "text/plain".into(),
            payload,
            labels: Default::default(),
            idempotency_key: String::new(),
        }),
    }
}

#[test]
fn a_list_with_too_many_label_filters_is_invalid_argument() {
    let s = TestServer::start();
    let mut ev = client(&s, "auditor");
    let labels = (0..1000).map(|i| (format!("k{i}"), "v".into())).collect();
    let err =
        s.rt.block_on(ev.list(pb::ListRequest {
            labels,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("at most 32"), "{}", err.message());
    // At the limit it is an ordinary (empty) answer.
    let labels = (0..32).map(|i| (format!("k{i}"), "v".into())).collect();
    let page =
        s.rt.block_on(ev.list(pb::ListRequest {
            labels,
            ..Default::default()
        }))
        .unwrap();
    assert!(page.into_inner().items.is_empty());
}

#[test]
fn a_message_over_the_limit_inside_a_stream_is_resource_exhausted() {
    let s = TestServer::start();
    let mut ev = client(&s, "ingester");
    let input = futures_util::stream::iter(vec![
        record(b"small".to_vec()),
        record(vec![b'x'; 20 * 1024 * 1024]),
    ]);
    let (accepted, err) = s.rt.block_on(async {
        let mut out = ev.ingest_stream(input).await.expect("stream").into_inner();
        let mut accepted = 0;
        loop {
            match out.message().await {
                Ok(Some(_)) => accepted += 1,
                Ok(None) => panic!("the stream ended without a status"),
                Err(e) => return (accepted, e),
            }
        }
    });
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(accepted, 1, "the record before the big one stands");
}

#[test]
fn a_stream_whose_results_are_not_read_is_slowed_not_killed() {
    const N: usize = 20_000;
    let s = TestServer::start();
    let mut ev = client(&s, "ingester");
    let sent = Arc::new(AtomicUsize::new(0));
    let results =
        s.rt.block_on(async {
            // One record at a time through a channel, so each goes out as its
            // own small DATA frame (as grpcio sends them).
            let (tx, rx) = tokio::sync::mpsc::channel::<pb::IngestRequest>(1);
            let counter = sent.clone();
            let producer = tokio::spawn(async move {
                for i in 0..N {
                    if tx.send(record(format!("r{i}").into_bytes())).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            let input = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|m| (m, rx))
            });
            let mut out = ev.ingest_stream(input).await.expect("stream").into_inner();
            // Read nothing until the sender is held back (no progress over a
            // poll interval; on a slow machine this may only start reading
            // early, never fail), or done: results pile up unread meanwhile.
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = sent.load(Ordering::Relaxed);
                if now == N || (now == last && now > 0) {
                    break;
                }
                last = now;
                assert!(Instant::now() < deadline, "the stream never slowed");
            }
            eprintln!(
                "sender held back after {} of {N} records with no result read",
                sent.load(Ordering::Relaxed)
            );
            // Now read: every result arrives, the connection survived.
            let mut n = 0;
            while n < N {
                match out.message().await {
                    Ok(Some(r)) => {
                        assert!(
                            matches!(r.result, Some(pb::ingest_result::Result::Accepted(_))),
                            "{r:?}"
                        );
                        n += 1;
                    }
                    Ok(None) => break,
                    Err(e) => panic!("the stream was killed after {n} results: {e:?}"),
                }
            }
            producer.await.unwrap();
            n
        });
    assert_eq!(results, N);
}
