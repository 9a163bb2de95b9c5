//! What tests and benches start from, made as an integrator would where the API allows.

use crm_proto::crm::loyalty::v1::{
    CreateProgramRequest, DefineOperationTypeRequest, DefinePointTypeRequest, Direction,
    OperationType, PointType, Program, ProgramKind, ProgramStatus,
    loyalty_service_client::LoyaltyServiceClient,
};
use sqlx::PgConnection;
use tonic::{
    Status,
    client::GrpcService,
    codegen::{Body as HttpBody, Bytes, StdError},
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
};
use uuid::Uuid;

/// An active B2C program in PLN with one point type (`basic`), an operation type that accrues it
/// (`purchase`) and one that settles it (`reward_redemption`, as reward orders redeem), made
/// through loyalty's API with `client`.
pub async fn loyalty_club<T>(client: &mut LoyaltyServiceClient<T>) -> Program
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
    <T::ResponseBody as HttpBody>::Error: Into<StdError> + Send,
{
    let mut program = client
        .create_program(CreateProgramRequest {
            program: Some(Program {
                display_name: "Club".into(),
                kind: ProgramKind::B2c as i32,
                currency_code: "PLN".into(),
                status: ProgramStatus::Active as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("creating the program")
        .into_inner();
    client
        .define_point_type(DefinePointTypeRequest {
            program_id: program.id.clone(),
            point_type: Some(PointType {
                code: "basic".into(),
                display_name: "Basic points".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("defining the point type");
    for (code, display_name, direction) in [
        ("purchase", "Purchase", Direction::Accrue),
        ("reward_redemption", "Reward redeemed", Direction::Settle),
    ] {
        program = client
            .define_operation_type(DefineOperationTypeRequest {
                program_id: program.id.clone(),
                operation_type: Some(OperationType {
                    code: code.into(),
                    display_name: display_name.into(),
                    direction: direction as i32,
                    default_point_type: "basic".into(),
                }),
                ..Default::default()
            })
            .await
            .expect("defining an operation type")
            .into_inner();
    }
    program
}

/// Sends `authorization: Bearer <token>` with every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self(
            format!("Bearer {token}")
                .parse()
                .expect("a token is a valid header"),
        )
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Memberships `members` of `program`, each for a party of its own, written straight into
/// loyalty's database `db`: enrolment through the API would ask parties and consent, which the
/// callers do not run.
pub async fn memberships(db: &mut PgConnection, program: &str, members: &[Uuid]) {
    let program: Uuid = program.parse().expect("a program id");
    let parties: Vec<Uuid> = members.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO memberships (id, program_id, party_id, created_by, updated_by)
         SELECT id, $1, party, 'seed', 'seed' FROM unnest($2::uuid[], $3::uuid[]) AS m(id, party)",
    )
    .bind(program)
    .bind(members)
    .bind(&parties)
    .execute(db)
    .await
    .expect("seeding memberships");
}
