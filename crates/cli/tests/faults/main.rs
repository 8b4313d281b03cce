//! The fault suite: a real `evault serve` child under a hostile
//! environment (a full disk, a dead log pipe, slow or hostile clients, a
//! restored backup, tampered files). Each module is one kind of fault;
//! each test is bounded in time and polls for conditions, never sleeps for
//! a fixed time. `.ci/run` runs it with `EVAULT_REQUIRE_FAULTS=1`, which
//! turns the loud skips (a fault that needs root, e.g. mounting a small
//! file system) into failures.

#[path = "../common/mod.rs"]
mod common;
mod limits;

mod tamper;

/// Whether a test that needs what this machine lacks must fail rather
/// than skip (set by `.ci/run`).
#[allow(dead_code)]
pub fn faults_required() -> bool {
    std::env::var_os("EVAULT_REQUIRE_FAULTS").is_some_and(|v| v == "1")
}

mod env;
mod fork;
