//! The one error type of the parties service, and its one mapping to gRPC status codes.

use crm_kit::{
    error::{self, FieldViolations},
    store::IdempotencyError,
};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum PartiesError {
    /// INVALID_ARGUMENT, naming every bad field.
    #[error("invalid request: {0}")]
    Invalid(FieldViolations),
    /// NOT_FOUND.
    #[error("{0} {1} not found")]
    NotFound(&'static str, String),
    /// ALREADY_EXISTS: a unique name is taken, or a request id was reused for another request.
    #[error("{1}")]
    AlreadyExists(&'static str, String),
    /// ABORTED: the etag sent is not the stored one; read again and retry.
    #[error("the {0} changed since it was read (etag mismatch); read it again and retry")]
    EtagMismatch(&'static str),
    /// FAILED_PRECONDITION: the request is valid but the resource's state forbids it.
    #[error("{1}")]
    Precondition(&'static str, String),
    /// INTERNAL: logged with its cause, never shown.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type Result<T, E = PartiesError> = std::result::Result<T, E>;

impl From<FieldViolations> for PartiesError {
    fn from(violations: FieldViolations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<IdempotencyError> for PartiesError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Conflict(_) => {
                Self::AlreadyExists("REQUEST_ID_REUSED", error.to_string())
            }
            IdempotencyError::Database(e) => Self::Database(e),
            IdempotencyError::Corrupt(..) => Self::Internal(error.into()),
        }
    }
}

impl From<PartiesError> for Status {
    fn from(error: PartiesError) -> Self {
        match &error {
            PartiesError::Invalid(violations) => error::invalid_argument(violations),
            PartiesError::NotFound(kind, id) => error::not_found(kind, id),
            PartiesError::AlreadyExists(reason, message) => {
                error::with_reason(Code::AlreadyExists, reason, message)
            }
            PartiesError::EtagMismatch(_) => {
                error::with_reason(Code::Aborted, "ETAG_MISMATCH", error.to_string())
            }
            PartiesError::Precondition(reason, message) => {
                error::with_reason(Code::FailedPrecondition, reason, message)
            }
            PartiesError::Database(e) => error::internal(e),
            PartiesError::Internal(e) => error::internal(e.as_ref()),
        }
    }
}
