//! `evault.v1.TaskService` against a real server: the same tasks, role
//! check, scoping and audit trail as `/api/v1/tasks`; `Watch` streams the
//! state and progress to the final state; `GetResult` streams the file
//! with its size and digest; refusals are the documented statuses.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, token_for, with_task_kinds};
use evault_proto::v1 as pb;
use evault_proto::v1::task_service_client::TaskServiceClient;
use sha2::Digest as _;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

type Auth = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;
type Client = TaskServiceClient<InterceptedService<Channel, Auth>>;

fn client(s: &TestServer, key: &str) -> Client {
    let channel =
        s.rt.block_on(
            Endpoint::from_shared(format!("http://{}", s.grpc_addr))
                .unwrap()
                .connect(),
        )
        .expect("connect");
    let token = token_for(key);
    let auth: Auth = Box::new(move |mut req: Request<()>| {
        let v: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    });
    TaskServiceClient::with_interceptor(channel, auth)
}

fn start(s: &TestServer, c: &mut Client, kind: &str, params: &str) -> Result<pb::Task, Status> {
    s.rt.block_on(c.start(pb::StartTaskRequest {
        kind: kind.into(),
        params_json: params.into(),
    }))
    .map(|r| r.into_inner())
}

fn get(s: &TestServer, c: &mut Client, id: &str) -> Result<pb::Task, Status> {
    s.rt.block_on(c.get(pb::GetTaskRequest { id: id.into() }))
        .map(|r| r.into_inner())
}

/// Every event of `Watch`, to the end of the stream.
fn watch(s: &TestServer, c: &mut Client, id: &str) -> Result<Vec<pb::TaskEvent>, Status> {
    s.rt.block_on(async {
        let mut stream = c
            .watch(pb::WatchTaskRequest { id: id.into() })
            .await?
            .into_inner();
        let mut events = Vec::new();
        while let Some(e) = stream.message().await? {
            events.push(e);
        }
        Ok(events)
    })
}

/// Every chunk of `GetResult`.
fn result(s: &TestServer, c: &mut Client, id: &str) -> Result<Vec<pb::TaskResultChunk>, Status> {
    s.rt.block_on(async {
        let mut stream = c
            .get_result(pb::GetTaskResultRequest { id: id.into() })
            .await?
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(c) = stream.message().await? {
            chunks.push(c);
        }
        Ok(chunks)
    })
}

fn wait_state(s: &TestServer, c: &mut Client, id: &str, state: &str) -> pb::Task {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = get(s, c, id).unwrap();
        if t.state == state {
            return t;
        }
        assert!(Instant::now() < deadline, "never {state}: {t:?}");
        std::thread::yield_now();
    }
}

/// The audit events of `principal`'s gRPC task calls, once `n` of them
/// are committed (a read's event is written after its reply).
fn task_events(s: &TestServer, principal: &str, n: usize) -> Vec<evault_verify::AuditEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page =
            s.rt.block_on(s.vault.audit_list(
                &evault_vault::Reader::all("test"),
                evault_store::AuditQuery {
                    // Polls above leave many events: ask for this
                    // principal's only.
                    principal: Some(principal.to_string()),
                    limit: 1000,
                    ..Default::default()
                },
            ))
            .unwrap();
        let events: Vec<_> = page
            .items
            .into_iter()
            .filter(|e| {
                e.principal == principal
                    && e.protocol == "grpc"
                    && e.resource.starts_with("/evault.v1.TaskService/")
            })
            .collect();
        if events.len() >= n {
            return events;
        }
        assert!(Instant::now() < deadline, "{} of {n} events", events.len());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn start_watch_list_download_and_cancel_over_grpc() {
    let s = TestServer::start_with(with_task_kinds, false);
    let mut c = client(&s, "auditor");

    let t = start(&s, &mut c, "count", r#"{"n": 3000}"#).unwrap();
    assert_eq!(t.kind, "count");
    assert_eq!(t.principal, "test:auditor");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&t.params_json).unwrap(),
        serde_json::json!({"n": 3000})
    );
    assert!(t.state == "pending" || t.state == "running", "{t:?}");

    // Watch: a state event first, progress never going back, the final
    // state last; the stream then ends.
    let events = watch(&s, &mut c, &t.id).unwrap();
    assert_eq!(events[0].event, "state");
    let last = events.last().unwrap();
    assert_eq!(last.event, "state");
    let done = last.task.as_ref().unwrap();
    assert_eq!(done.state, "succeeded");
    assert_eq!((done.done, done.total), (3000, Some(3000)));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&done.summary_json).unwrap(),
        serde_json::json!({"counted": 3000})
    );
    let mut previous = 0;
    for e in &events {
        let task = e.task.as_ref().unwrap();
        assert!(task.done >= previous, "{events:?}");
        previous = task.done;
    }
    // Watching an ended task: just its final state.
    let again = watch(&s, &mut c, &t.id).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task.as_ref().unwrap().state, "succeeded");

    // The result: chunks of at most 64 KiB, the first with size and digest.
    let chunks = result(&s, &mut c, &t.id).unwrap();
    let body: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
    let expected: String = (0..3000).map(|i| format!("{i}\n")).collect();
    assert_eq!(body, expected.as_bytes());
    assert_eq!(chunks[0].size, body.len() as u64);
    assert_eq!(chunks[0].sha256, hex(&sha2::Sha256::digest(&body)));
    assert!(chunks.iter().all(|c| c.data.len() <= 64 * 1024));
    assert!(
        chunks[1..]
            .iter()
            .all(|c| c.size == 0 && c.sha256.is_empty())
    );
    let info = done.result.as_ref().unwrap();
    assert_eq!(
        (info.size, info.sha256.as_str()),
        (chunks[0].size, chunks[0].sha256.as_str())
    );

    // List: filters and the page cursor.
    let second = start(&s, &mut c, "count", "").unwrap();
    wait_state(&s, &mut c, &second.id, "succeeded");
    let page =
        s.rt.block_on(c.list(pb::ListTasksRequest {
            kind: "count".into(),
            state: "succeeded".into(),
            limit: 1,
            ..Default::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, second.id, "newest first");
    let older =
        s.rt.block_on(c.list(pb::ListTasksRequest {
            before: page.next_before.clone(),
            ..Default::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(older.items.len(), 1);
    assert_eq!(older.items[0].id, t.id);
    assert!(older.next_before.is_empty());

    // Cancel a running task: it stops, its stream ends with `cancelled`,
    // it has no result.
    let waiting = start(&s, &mut c, "count", r#"{"wait": true}"#).unwrap();
    wait_state(&s, &mut c, &waiting.id, "running");
    let cancelled =
        s.rt.block_on(c.cancel(pb::CancelTaskRequest {
            id: waiting.id.clone(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, "cancelled");
    assert!(cancelled.cancel_requested);
    let events = watch(&s, &mut c, &waiting.id).unwrap();
    assert_eq!(
        events.last().unwrap().task.as_ref().unwrap().state,
        "cancelled"
    );
    let e = result(&s, &mut c, &waiting.id).unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e =
        s.rt.block_on(c.cancel(pb::CancelTaskRequest { id: t.id.clone() }))
            .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("ended already"), "{e:?}");
}

#[test]
fn refusals_over_grpc_are_statuses_and_other_principals_get_not_found() {
    let s = TestServer::start_with(with_task_kinds, false);
    let mut mine = client(&s, "ingester");

    let e = start(&s, &mut mine, "nope", "").unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("known kinds: audit_only, count"),
        "{e:?}"
    );
    let e = start(&s, &mut mine, "audit_only", "").unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("needs role auditor"), "{e:?}");
    let e = start(&s, &mut mine, "count", r#"{"n": -1}"#).unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("n must be an integer"), "{e:?}");
    for bad in ["[1]", "{", "\"x\""] {
        let e = start(&s, &mut mine, "count", bad).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
        assert!(e.message().contains("params_json"), "{e:?}");
    }
    let big = format!(
        r#"{{"pad":"{}"}}"#,
        "x".repeat(evault_vault::tasks::MAX_PARAMS)
    );
    let e = start(&s, &mut mine, "count", &big).unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let e =
        s.rt.block_on(mine.list(pb::ListTasksRequest {
            state: "done".into(),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e =
        s.rt.block_on(mine.list(pb::ListTasksRequest {
            limit: 1001,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = get(&s, &mut mine, "0193aaaa-0000-7000-8000-000000000000").unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Another ingester's task: NOT_FOUND for every method, audited denied.
    let t = start(&s, &mut mine, "count", r#"{"n": 2}"#).unwrap();
    wait_state(&s, &mut mine, &t.id, "succeeded");
    let mut other = client(&s, "other-ingester");
    let codes = [
        get(&s, &mut other, &t.id).map(|_| ()).unwrap_err(),
        watch(&s, &mut other, &t.id).map(|_| ()).unwrap_err(),
        result(&s, &mut other, &t.id).map(|_| ()).unwrap_err(),
        s.rt.block_on(other.cancel(pb::CancelTaskRequest { id: t.id.clone() }))
            .map(|_| ())
            .unwrap_err(),
    ];
    for e in &codes {
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
        assert!(e.message().contains(&format!("task {}", t.id)), "{e:?}");
    }
    let events = task_events(&s, "test:other", 4);
    let denied: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.principal.as_str(),
                e.outcome.as_str(),
                e.status,
                e.operation.as_str(),
            )
        })
        .collect();
    assert_eq!(
        denied,
        [
            ("test:other", "denied", Code::NotFound as u16, "task.get"),
            ("test:other", "denied", Code::NotFound as u16, "task.events"),
            ("test:other", "denied", Code::NotFound as u16, "task.result"),
            ("test:other", "denied", Code::NotFound as u16, "task.cancel"),
        ]
    );
    let theirs =
        s.rt.block_on(other.list(pb::ListTasksRequest::default()))
            .unwrap()
            .into_inner();
    assert!(theirs.items.is_empty());

    // An admin sees it and downloads its result.
    let mut admin = client(&s, "admin");
    assert_eq!(get(&s, &mut admin, &t.id).unwrap().id, t.id);
    let body: Vec<u8> = result(&s, &mut admin, &t.id)
        .unwrap()
        .into_iter()
        .flat_map(|c| c.data)
        .collect();
    assert_eq!(body, b"0\n1\n");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
