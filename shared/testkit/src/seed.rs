//! What the benches and fault tests start from, made as an integrator would where the API allows.

use crm_proto::crm::loyalty::v1::{
    CreateProgramRequest, DefineOperationTypeRequest, DefinePointTypeRequest, Direction,
    OperationType, PointType, Program, ProgramKind, ProgramStatus,
    loyalty_service_client::LoyaltyServiceClient,
};
use sqlx::PgConnection;
use tonic::transport::Channel;
use uuid::Uuid;

/// An active B2C program in PLN with one point type (`basic`) and one accruing operation type
/// (`purchase`), made through loyalty's API at `channel`; its id.
pub async fn loyalty_club(channel: Channel, bearer: &str) -> Uuid {
    let mut client = LoyaltyServiceClient::new(channel);
    let program = client
        .create_program(authorized(
            CreateProgramRequest {
                program: Some(Program {
                    display_name: "Test club".into(),
                    kind: ProgramKind::B2c as i32,
                    currency_code: "PLN".into(),
                    status: ProgramStatus::Active as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
            bearer,
        ))
        .await
        .expect("creating the program")
        .into_inner();
    client
        .define_point_type(authorized(
            DefinePointTypeRequest {
                program_id: program.id.clone(),
                point_type: Some(PointType {
                    code: "basic".into(),
                    display_name: "Basic points".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            bearer,
        ))
        .await
        .expect("defining the point type");
    client
        .define_operation_type(authorized(
            DefineOperationTypeRequest {
                program_id: program.id.clone(),
                operation_type: Some(OperationType {
                    code: "purchase".into(),
                    display_name: "Purchase".into(),
                    direction: Direction::Accrue as i32,
                    default_point_type: "basic".into(),
                }),
                ..Default::default()
            },
            bearer,
        ))
        .await
        .expect("defining the operation type");
    program.id.parse().expect("a program id")
}

/// Memberships `members` of `program`, each for a party of its own, written straight into
/// loyalty's database `db`: enrolment through the API would ask parties and consent, which the
/// callers do not run.
pub async fn memberships(db: &mut PgConnection, program: Uuid, members: &[Uuid]) {
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

fn authorized<T>(message: T, bearer: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {bearer}").parse().expect("a valid header"),
    );
    request
}
