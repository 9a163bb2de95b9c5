//! The consent service's refusals: each once, with its code and the reason callers branch on.

use uuid::Uuid;

use crate::domain::{MAX_EXTENSION_DAYS, RequestStatus, RequestType};

crm_kit::refusals! {
    pub enum Refusal {
        /// Purpose codes are unique and never reused.
        PurposeExists { code: String } =
            AlreadyExists("PURPOSE_EXISTS", "purpose {code:?} already exists"),
        /// Only a received request is verified.
        RequestNotReceived { id: Uuid, status: RequestStatus } = Precondition(
            "REQUEST_NOT_RECEIVED",
            "request {id} is {status}; only a received request is verified"
        ),
        /// A finished request cannot change.
        RequestClosed { id: Uuid, status: RequestStatus } =
            Precondition("REQUEST_CLOSED", "request {id} is {status} already"),
        /// An erasure sent to the services cannot be called back.
        ErasureUnderWay { id: Uuid } = Precondition(
            "ERASURE_UNDER_WAY",
            "erasure request {id} was already sent to the services and cannot be undone"
        ),
        /// GDPR art. 12(3) allows two further months in all.
        ExtensionExceeded { id: Uuid, extended: i32 } = Precondition(
            "EXTENSION_EXCEEDED",
            "request {id} was extended by {extended} days already; at most {MAX_EXTENSION_DAYS} in all"
        ),
        /// Only an operator's rectification or restriction is completed by hand.
        NotOperatorWork { id: Uuid, kind: RequestType, status: RequestStatus } = Precondition(
            "NOT_OPERATOR_WORK",
            "request {id} is a {kind} request that is {status}; only a rectification or restriction in progress is completed by hand"
        ),
        /// Only a request waiting for services can be sent again.
        NotWaiting { id: Uuid, status: RequestStatus } = Precondition(
            "NOT_WAITING",
            "request {id} is not waiting for services (it is {status})"
        ),
        /// Bundles come from completed access and portability requests.
        NoBundle { id: Uuid, kind: RequestType, status: RequestStatus } = Precondition(
            "NO_BUNDLE",
            "request {id} is a {kind} request that is {status}; bundles come from completed access and portability requests"
        ),
        /// The bundle's parts were dropped: the subject was erased, or the retention passed.
        BundleGone { id: Uuid, retention_days: i32 } = Precondition(
            "BUNDLE_GONE",
            "the bundle of request {id} is no longer kept: its subject was erased since, or it is older than the {retention_days}-day retention"
        ),
    }
}
