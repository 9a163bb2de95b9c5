//! Canonical gRPC errors with `google.rpc` details: [`ServiceError`], the one closed set of errors
//! every service answers with, mapped to [`tonic::Status`] in one place so every service answers
//! alike.

use std::{error::Error as StdError, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What went wrong, in the canonical gRPC terms a caller can act on. The `&'static str` fields
/// are `ErrorInfo.reason` codes (UPPER_SNAKE) callers can branch on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// INVALID_ARGUMENT, naming every bad field.
    #[error("invalid request: {0}")]
    Invalid(FieldViolations),
    /// NOT_FOUND: resource type and id.
    #[error("{0} {1} not found")]
    NotFound(&'static str, String),
    /// ALREADY_EXISTS: a unique name is taken, or a client id was reused for another request.
    #[error("{1}")]
    AlreadyExists(&'static str, String),
    /// ABORTED: the etag sent is not the stored one; read again and retry.
    #[error("the {0} changed since it was read (etag mismatch); read it again and retry")]
    EtagMismatch(&'static str),
    /// FAILED_PRECONDITION: the request is valid but the resource's state forbids it.
    #[error("{1}")]
    Precondition(&'static str, String),
    /// UNAVAILABLE: a service this one depends on did not answer; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// UNAVAILABLE (`DATABASE_UNAVAILABLE`): the database could not be reached or dropped the
    /// connection. A `Database` error of that kind answers the same.
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    /// ABORTED (`TRANSACTION_CONFLICT`): PostgreSQL broke a deadlock or a serialization conflict
    /// by aborting this transaction. A `Database` error of that kind answers the same.
    #[error("the transaction lost a conflict with a concurrent one")]
    Conflict,
    /// INTERNAL unless it is one of the two above: logged with its cause, never shown.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound(kind, id.to_string())
    }

    /// What to tell each caller sharing this failure (the calls of one group commit): a lost
    /// connection or conflict keeps its meaning; any other failure is INTERNAL.
    pub fn shared(&self) -> Self {
        match self.database() {
            Some(e) if connection_lost(e) => Self::DatabaseUnavailable,
            Some(e) if conflicted(e) => Self::Conflict,
            _ => match self {
                Self::Unavailable(message) => Self::Unavailable(message.clone()),
                Self::DatabaseUnavailable => Self::DatabaseUnavailable,
                Self::Conflict => Self::Conflict,
                other => Self::Internal(anyhow::anyhow!("a shared failure: {other:#}")),
            },
        }
    }

    /// The database's error behind this one, also when it was wrapped on its way.
    pub fn database(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database(e) => Some(e),
            Self::Internal(e) => e.chain().find_map(|cause| {
                cause.downcast_ref::<sqlx::Error>().or_else(|| {
                    cause
                        .downcast_ref::<ServiceError>()
                        .and_then(ServiceError::database)
                })
            }),
            _ => None,
        }
    }

    /// Whether the same work may well succeed if tried again later: the database or a peer was
    /// away, or a conflict was broken. Consumers wait and retry such failures rather than parking
    /// the event.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::DatabaseUnavailable | Self::Conflict => true,
            _ => self
                .database()
                .is_some_and(|e| connection_lost(e) || conflicted(e)),
        }
    }
}

/// [`ServiceError::is_transient`] for an error on its way up as `anyhow`.
pub fn transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| connection_lost(e) || conflicted(e))
            || cause
                .downcast_ref::<ServiceError>()
                .is_some_and(ServiceError::is_transient)
    })
}

/// Declares a service's refusals once: each variant with its gRPC code (`AlreadyExists` or
/// `Precondition`), its `ErrorInfo.reason` and its message, and the conversion into
/// [`ServiceError`]:
///
/// ```ignore
/// crm_kit::refusals! {
///     pub enum Refusal {
///         /// Purpose codes are unique.
///         PurposeExists { code: String } = AlreadyExists("PURPOSE_EXISTS", "purpose {code:?} already exists"),
///     }
/// }
/// ```
#[macro_export]
macro_rules! refusals {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $({ $($field:ident: $ty:ty),* $(,)? })?
                    = $kind:ident($reason:literal, $($message:tt)+)
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        $vis enum $name {
            $($(#[$vmeta])* $variant $({ $($field: $ty),* })?),+
        }

        impl $name {
            /// The `ErrorInfo.reason` callers branch on.
            pub fn reason(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => $reason),+
                }
            }
        }

        impl std::fmt::Display for $name {
            #[allow(unused_variables)]
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(Self::$variant $({ $($field),* })? => write!(f, $($message)+)),+
                }
            }
        }

        impl From<$name> for $crate::error::ServiceError {
            fn from(refusal: $name) -> Self {
                let reason = refusal.reason();
                match refusal {
                    $(refusal @ $name::$variant { .. } => {
                        $crate::error::ServiceError::$kind(reason, refusal.to_string())
                    }),+
                }
            }
        }
    };
}

/// An empty etag skips the check (last write wins); a stale one is ABORTED.
pub fn check_etag(resource: &'static str, etag: &str, version: i64) -> Result<()> {
    if etag.is_empty() || etag == version.to_string() {
        Ok(())
    } else {
        Err(ServiceError::EtagMismatch(resource))
    }
}

impl From<FieldViolations> for ServiceError {
    fn from(violations: FieldViolations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<crate::store::IdempotencyError> for ServiceError {
    fn from(error: crate::store::IdempotencyError) -> Self {
        use crate::store::IdempotencyError;
        match error {
            IdempotencyError::Conflict(_) => {
                Self::AlreadyExists("REQUEST_ID_REUSED", error.to_string())
            }
            IdempotencyError::Erased(_) => Self::Precondition("REQUEST_ERASED", error.to_string()),
            IdempotencyError::Database(e) => Self::Database(e),
            IdempotencyError::Corrupt(..) => Self::Internal(error.into()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match &error {
            ServiceError::Invalid(violations) => invalid_argument(violations),
            ServiceError::NotFound(kind, id) => not_found(kind, id),
            ServiceError::AlreadyExists(reason, message) => {
                with_reason(Code::AlreadyExists, reason, message)
            }
            ServiceError::EtagMismatch(_) => {
                with_reason(Code::Aborted, "ETAG_MISMATCH", error.to_string())
            }
            ServiceError::Precondition(reason, message) => {
                with_reason(Code::FailedPrecondition, reason, message)
            }
            ServiceError::Unavailable(message) => retry_later(
                Code::Unavailable,
                "DEPENDENCY_UNAVAILABLE",
                message,
                Duration::from_secs(1),
            ),
            ServiceError::DatabaseUnavailable => database_unavailable(),
            ServiceError::Conflict => conflict(),
            ServiceError::Database(_) | ServiceError::Internal(_) => match error.database() {
                Some(e) if connection_lost(e) => {
                    // The outage itself is logged once, by the pool's probe.
                    tracing::debug!(error = %e, "database unavailable");
                    database_unavailable()
                }
                Some(e) if conflicted(e) => {
                    tracing::warn!(error = %e, "transaction lost a conflict");
                    conflict()
                }
                _ => match &error {
                    ServiceError::Internal(e) => internal(e.as_ref()),
                    other => internal(other),
                },
            },
        }
    }
}

use crm_proto::checks::{ERROR_DOMAIN as DOMAIN, truncate};
pub use crm_proto::checks::{FieldViolations, invalid_argument};

/// The most characters of a caller's value an error message repeats.
const MAX_ECHO: usize = 64;
/// The longest error message, in characters.
const MAX_MESSAGE: usize = 1000;

/// NOT_FOUND with a `ResourceInfo` naming the resource type and id.
pub fn not_found(resource_type: &str, id: &str) -> Status {
    let id = truncate(id.to_owned(), MAX_ECHO);
    let mut details = ErrorDetails::new();
    details.set_resource_info(
        resource_type,
        &id,
        "",
        format!("{resource_type} {id} does not exist"),
    );
    details.set_error_info(
        format!("{}_NOT_FOUND", upper_snake(resource_type)),
        DOMAIN,
        [],
    );
    Status::with_error_details(
        Code::NotFound,
        format!("{resource_type} {id} not found"),
        details,
    )
}

/// A business-rule error with an UPPER_SNAKE `reason` callers can branch on
/// (ALREADY_EXISTS, ABORTED, FAILED_PRECONDITION).
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, []);
    Status::with_error_details(code, truncate(message.into(), MAX_MESSAGE), details)
}

fn database_unavailable() -> Status {
    retry_later(
        Code::Unavailable,
        "DATABASE_UNAVAILABLE",
        "the database could not be reached in time or dropped the connection; retry with backoff",
        Duration::from_secs(1),
    )
}

fn conflict() -> Status {
    retry_later(
        Code::Aborted,
        "TRANSACTION_CONFLICT",
        "the call's transaction collided with a concurrent one and was undone; retry it with the same request id",
        Duration::from_millis(50),
    )
}

/// A failure the same call may well not meet again: `code` (UNAVAILABLE, or ABORTED for a lost
/// conflict) with its `reason` and a `RetryInfo` asking the caller to wait `delay` first.
pub fn retry_later(code: Code, reason: &str, message: &str, delay: Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, []);
    details.set_retry_info(Some(delay));
    Status::with_error_details(code, truncate(message.to_owned(), MAX_MESSAGE), details)
}

/// Whether PostgreSQL could not be reached or dropped the connection: the call may be retried as
/// it is (a restart, a failover, a killed backend, a full pool), unlike a fault of the statement.
fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        // Not `Protocol`: sqlx also reports its own misuse so (too many arguments), which no
        // retry mends; a dropped socket is `Io`.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions, but for 08P01 (a protocol violation: ours, for
        // good); 57P01-57P03: shutdown, crash, cannot connect now; 53300: the server's
        // max_connections reached.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            (code.starts_with("08") && code != "08P01")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether PostgreSQL aborted the transaction for a conflict with another (a deadlock or a
/// serialization failure): nothing was written, and the same call run again may well succeed.
fn conflicted(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|code| matches!(&*code, "40P01" | "40001")))
}

/// INTERNAL: logged with its whole cause chain, shown to the caller only as an opaque failure.
pub fn internal(error: &(dyn StdError + 'static)) -> Status {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "internal error");
    Status::internal("internal error; the service logged the details")
}

fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out.replace([' ', '-'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_lists_every_field() {
        let mut v = FieldViolations::new();
        v.check(false, "party.display_name", "must not be empty");
        v.check(true, "party.kind", "never added");
        v.add("party.tax_id", "bad checksum");
        let status = invalid_argument(&v);
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|fv| fv.field)
            .collect();
        assert_eq!(fields, ["party.display_name", "party.tax_id"]);
    }

    #[test]
    fn not_found_names_the_resource() {
        let status = not_found("Party", "0190");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "PARTY_NOT_FOUND"
        );
        assert_eq!(
            status.get_details_resource_info().unwrap().resource_name,
            "0190"
        );
    }

    #[test]
    fn errors_do_not_echo_unbounded_input() {
        let id = "9".repeat(20_000);
        let status = Status::from(ServiceError::not_found("Party", &id));
        assert!(status.message().len() < 200, "{}", status.message());
        assert!(status.details().len() < 400);
        let status = Status::from(ServiceError::Precondition("RULE", id.repeat(2)));
        assert!(status.message().len() < 4_000);
    }

    crate::refusals! {
        enum Refusal {
            Taken { code: String } = AlreadyExists("CODE_TAKEN", "code {code:?} is taken"),
            Closed = Precondition("CLOSED", "it is closed"),
        }
    }

    #[test]
    fn refusals_carry_their_code_and_reason() {
        let status = Status::from(ServiceError::from(Refusal::Taken { code: "vip".into() }));
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(status.message(), "code \"vip\" is taken");
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "CODE_TAKEN"
        );
        let status = Status::from(ServiceError::from(Refusal::Closed));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.get_details_error_info().unwrap().reason, "CLOSED");
    }

    #[test]
    fn a_lost_database_connection_is_unavailable_not_internal() {
        let lost = [
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        ];
        for error in lost {
            let status = Status::from(ServiceError::Database(error));
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert_eq!(
                status.get_details_error_info().unwrap().reason,
                "DATABASE_UNAVAILABLE"
            );
            assert!(
                status
                    .get_details_retry_info()
                    .unwrap()
                    .retry_delay
                    .is_some()
            );
        }
        let status = Status::from(ServiceError::Database(sqlx::Error::RowNotFound));
        assert_eq!(status.code(), Code::Internal);
    }

    #[test]
    fn a_lost_connection_is_found_inside_wrappers() {
        let lost = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let wrapped = [
            ServiceError::Internal(anyhow::Error::from(lost()).context("posting a batch")),
            ServiceError::Internal(
                anyhow::Error::from(ServiceError::Database(lost())).context("a consumer"),
            ),
        ];
        for error in wrapped {
            assert!(error.is_transient());
            assert_eq!(Status::from(error).code(), Code::Unavailable);
        }
        let bug = ServiceError::Internal(anyhow::anyhow!("a rule broke"));
        assert!(!bug.is_transient());
        assert!(transient(&anyhow::Error::from(lost())));
        assert!(!transient(&anyhow::anyhow!("a malformed event")));
    }

    #[test]
    fn a_shared_failure_keeps_its_meaning_for_every_caller() {
        let lost = ServiceError::Database(sqlx::Error::PoolTimedOut);
        for _ in 0..2 {
            let status = Status::from(lost.shared());
            assert_eq!(status.code(), Code::Unavailable);
        }
        let bug = ServiceError::Database(sqlx::Error::RowNotFound);
        assert_eq!(Status::from(bug.shared()).code(), Code::Internal);
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let io = std::io::Error::other("relation \"parties\" does not exist");
        let status = internal(&io);
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("relation"));
    }
}
