//! The suite under infrastructure faults, as a deployment meets them, on loopback only:
//!
//! - [`killed`]: loyalty killed with SIGKILL under concurrent writes and started again on the same
//!   storage, its clients retrying with the same ids;
//! - [`broker`]: the broker stopped and started again under writes, keeping its data (SQLite) or
//!   losing it (memory);
//! - [`database`]: the service's PostgreSQL (a cluster of the test's own) stopped and started
//!   under calls.
//!
//! Its own runner (`harness = false`): the killed service runs in a child process, which is this
//! binary started again ([`crm_testkit::process`]). `cargo test -p crm-e2e --test faults [NAME]`
//! runs the faults whose names contain NAME, one after another, and reports as libtest does.

mod broker;
mod database;
mod killed;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use futures::future::LocalBoxFuture;
use tonic::Code;

type Fault = (&'static str, fn() -> LocalBoxFuture<'static, ()>);

const FAULTS: [Fault; 4] = [
    ("killed::loyalty_killed_under_concurrent_writes", || {
        Box::pin(killed::loyalty_killed_under_concurrent_writes())
    }),
    ("broker::a_broker_that_keeps_its_data_restarts", || {
        Box::pin(broker::a_broker_that_keeps_its_data_restarts())
    }),
    ("broker::a_broker_that_loses_its_data_restarts", || {
        Box::pin(broker::a_broker_that_loses_its_data_restarts())
    }),
    ("database::the_database_stops_and_starts", || {
        Box::pin(database::the_database_stops_and_starts())
    }),
];

fn main() -> ExitCode {
    if let Some(served) = crm_testkit::process::serve_if_child(&[crm_loyalty::SERVICE]) {
        return served;
    }
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    let chosen: Vec<&Fault> = FAULTS
        .iter()
        .filter(|(name, _)| name.contains(&filter))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, fault) in &chosen {
        // A runtime per fault: what a failed one left running ends with it.
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(fault())));
        drop(runtime);
        let word = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {word}");
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    let result = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {result}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        chosen.len() - failed.len(),
        failed.len(),
        FAULTS.len() - chosen.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

/// Whether a client following gRPC's retry guidance tries `status` again: the service said so
/// (UNAVAILABLE, ABORTED), or the connection broke before an answer (the client's own UNKNOWN
/// or CANCELLED for a stream the server never finished, or its deadline).
fn retryable(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Aborted | Code::DeadlineExceeded | Code::Cancelled => true,
        Code::Unknown => !answered_by_service(status),
        _ => false,
    }
}

/// Whether the service itself sent `status` (its errors carry the suite's `ErrorInfo` or its
/// fixed INTERNAL message), rather than the client making it up for a broken connection.
fn answered_by_service(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    status.get_details_error_info().is_some()
        || status.message().contains("the service logged the details")
}

/// Retries `call` as a client following gRPC's guidance would, until it succeeds or fails for
/// good; panics on an answer no caller may get from a fault (INTERNAL, or UNKNOWN from the
/// service).
async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(answer) => return answer,
            Err(status) if retryable(&status) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("{what}: {status:?}"),
        }
    }
}

/// Services under test log only errors: the warnings a fault causes are expected by the hundred.
fn quiet(config: &mut crm_kit::config::Config) {
    config.telemetry.log_filter = "error".into();
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(3));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a valid header"),
    );
    request
}
