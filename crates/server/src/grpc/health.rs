//! `grpc.health.v1.Health` that tells the truth: SERVING exactly when
//! `/readyz` says ready (`ops::readiness`: the store answers, no vault task
//! reports trouble, no fork was refused), for the whole server (`""`) and
//! each evault service alike, since they all stand on the one vault.
//!
//! `Check` computes readiness on every call. `Watch` streams from tonic's
//! reporter, which every `Check` and a follower task (every
//! [`FOLLOW_EVERY`]) bring up to date, so a watcher hears of a change
//! within that time.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use crate::AppState;

/// The services whose status is reported, besides `""` (the server).
const SERVICES: &[&str] = &[
    "evault.v1.EvidenceService",
    "evault.v1.LogService",
    "evault.v1.AuditService",
];

/// How often the follower task refreshes the status watchers see.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct VaultHealth {
    state: AppState,
    reporter: Reporter,
    inner: HealthService,
    /// Dropped with the service: the follower task ends at once (it holds
    /// the vault, which must not outlive the server).
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The health service over `state`, and its follower task.
pub(crate) fn service(state: AppState) -> HealthServer<VaultHealth> {
    let reporter = Reporter {
        inner: HealthReporter::new(),
        last: Arc::new(tokio::sync::Mutex::new(None)),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let follower = Follower {
        state: state.clone(),
        reporter: reporter.clone(),
        stopped,
    };
    tokio::spawn(follower.run());
    HealthServer::new(VaultHealth {
        inner: HealthService::from_health_reporter(reporter.inner.clone()),
        state,
        reporter,
        _stop: stop,
    })
}

/// tonic's reporter, told only of changes: a watcher gets one message per
/// change of status, as the health protocol says, not one per refresh.
#[derive(Clone)]
struct Reporter {
    inner: HealthReporter,
    last: Arc<tokio::sync::Mutex<Option<ServingStatus>>>,
}

/// The status readiness gives now, published to the reporter if it changed.
async fn refresh(state: &AppState, reporter: &Reporter) {
    let status = match crate::ops::readiness(&state.vault).await {
        Ok(()) => ServingStatus::Serving,
        Err(why) => {
            tracing::debug!("gRPC health: NOT_SERVING: {why}");
            ServingStatus::NotServing
        }
    };
    // Held while publishing, so two refreshes cannot interleave.
    let mut last = reporter.last.lock().await;
    if *last == Some(status) {
        return;
    }
    for name in std::iter::once("").chain(SERVICES.iter().copied()) {
        reporter.inner.set_service_status(name, status).await;
    }
    *last = Some(status);
}

struct Follower {
    state: AppState,
    reporter: Reporter,
    stopped: tokio::sync::oneshot::Receiver<()>,
}

impl Follower {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut self.stopped => return,
                _ = tick.tick() => {}
            }
            refresh(&self.state, &self.reporter).await;
        }
    }
}

#[tonic::async_trait]
impl Health for VaultHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        refresh(&self.state, &self.reporter).await;
        // The inner service answers, NOT_FOUND for a service it does not
        // know.
        self.inner.check(request).await
    }

    type WatchStream = <HealthService as Health>::WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        refresh(&self.state, &self.reporter).await;
        self.inner.watch(request).await
    }
}
