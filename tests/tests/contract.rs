//! The suite's contract checked from outside, the way an integrator's generic client sees it: every
//! RPC of every service is found in the descriptors (nothing here lists them by hand), called
//! with raw protobuf bytes, and must answer as the contract says — scopes enforced, reflection
//! honest, and no hostile request answered INTERNAL, UNKNOWN or with a dropped connection.

use std::{collections::BTreeSet, str::FromStr, time::Duration};

use crm_e2e::Suite;
use crm_kit::client::TracedChannel;
use crm_testkit::{TestService, token};
use prost::bytes::{Buf, BufMut};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor, Value,
};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::MetadataValue,
};
use tonic_types::StatusExt;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).expect("the suite's descriptors")
}

/// The suite's gRPC services and the test service that serves each.
fn served<'a>(
    suite: &'a Suite,
    pool: &DescriptorPool,
) -> Vec<(ServiceDescriptor, &'a TestService)> {
    let services: Vec<_> = pool
        .services()
        .map(|service| {
            let server = match service.package_name() {
                "crm.parties.v1" => &suite.parties,
                "crm.loyalty.v1" => suite.loyalty(),
                "crm.consent.v1" => &suite.consent,
                "crm.rewards.v1" => suite.rewards(),
                "crm.interactions.v1" => suite.interactions(),
                "crm.cases.v1" => suite.cases(),
                other => panic!("{other}: a service the test suite does not start"),
            };
            (service, server)
        })
        .collect();
    assert_eq!(
        services.len(),
        8,
        "parties, interactions, cases (cases, offers, the service desk), loyalty, rewards and consent"
    );
    services
}

fn declared_scope(pool: &DescriptorPool, method: &MethodDescriptor) -> String {
    let extension = pool
        .get_extension_by_name("crm.common.v1.scope")
        .expect("the scope option is declared");
    let options = method.options();
    let scope = options.get_extension(&extension);
    scope.as_str().unwrap_or_default().to_owned()
}

/// Every scope any RPC of the suite declares.
fn all_scopes(pool: &DescriptorPool) -> BTreeSet<String> {
    pool.services()
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .map(|method| declared_scope(pool, &method))
        .collect()
}

/// Sends `body` to `method` as a generic client would, with `bearer` when given; the answer's
/// status (OK for a success, after draining a stream).
async fn call(
    server: &TestService,
    method: &MethodDescriptor,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Status {
    let channel = TracedChannel::lazy(&format!("http://{}", server.addr)).unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_str(&format!(
        "/{}/{}",
        method.parent_service().full_name(),
        method.name()
    ))
    .unwrap();
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(10));
    if let Some(bearer) = bearer {
        let value = MetadataValue::try_from(format!("Bearer {bearer}")).unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    if let Err(status) = grpc.ready().await {
        return Status::unavailable(format!("channel not ready: {status}"));
    }
    let answered = if method.is_server_streaming() {
        match grpc.server_streaming(request, path, Raw).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break Ok(()),
                        Err(status) => break Err(status),
                    }
                }
            }
            Err(status) => Err(status),
        }
    } else {
        grpc.unary(request, path, Raw).await.map(drop)
    };
    answered.err().unwrap_or_else(|| Status::ok(""))
}

#[tokio::test]
async fn every_rpc_enforces_the_scope_it_declares() {
    let suite = Suite::start().await.unwrap();
    let pool = pool();
    let scopes = all_scopes(&pool);
    let mut wrong = Vec::new();
    for (service, server) in served(&suite, &pool) {
        for method in service.methods() {
            let scope = declared_scope(&pool, &method);
            assert!(
                !scope.is_empty(),
                "{} declares no scope",
                method.full_name()
            );
            let others: Vec<&str> = scopes
                .iter()
                .filter(|s| **s != scope)
                .map(String::as_str)
                .collect();
            let cases = [
                ("no token", None, Code::Unauthenticated),
                (
                    "every other scope",
                    Some(token("x", &others)),
                    Code::PermissionDenied,
                ),
            ];
            for (case, bearer, expected) in cases {
                let status = call(server, &method, bearer.as_deref(), Vec::new()).await;
                if status.code() != expected {
                    wrong.push(format!("{} with {case}: {status:?}", method.full_name()));
                }
            }
            // With its scope the call gets past the gate (an empty request may well be invalid).
            let status = call(server, &method, Some(&token("x", &[&scope])), Vec::new()).await;
            if matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied | Code::Internal | Code::Unknown
            ) {
                wrong.push(format!("{} with {scope}: {status:?}", method.full_name()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    suite.stop().await.unwrap();
}

#[test]
fn every_list_pages() {
    let pool = pool();
    let mut unpaged = Vec::new();
    for method in pool
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
    {
        // Named for a list and answering with one (FindCard answers with the card).
        let lists = ["List", "Search", "Find"]
            .iter()
            .any(|verb| method.name().starts_with(verb))
            && method.output().fields().any(|f| f.is_list());
        let pages = method.input().get_field_by_name("page_size").is_some()
            && method.input().get_field_by_name("page_token").is_some()
            && method
                .output()
                .get_field_by_name("next_page_token")
                .is_some();
        if lists && !pages {
            unpaged.push(method.full_name().to_owned());
        }
    }
    assert!(unpaged.is_empty(), "lists without pages: {unpaged:?}");
}

#[tokio::test]
async fn the_export_bundle_needs_its_own_scope() {
    let suite = Suite::start().await.unwrap();
    let pool = pool();
    let method = pool
        .get_service_by_name("crm.consent.v1.ConsentService")
        .unwrap()
        .methods()
        .find(|m| m.name() == "GetExportBundle")
        .unwrap();
    assert_eq!(declared_scope(&pool, &method), "privacy.export");
    let reader = token("loyalty-service", &["consent.read", "consent.write"]);
    let status = call(&suite.consent, &method, Some(&reader), Vec::new()).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_what_each_server_serves_and_nothing_else() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let suite = Suite::start().await.unwrap();
    let pool = pool();
    for (service, server) in served(&suite, &pool) {
        let channel = TracedChannel::lazy(&format!("http://{}", server.addr)).unwrap();
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            answers.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a service list");
        };
        let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
        // This server's services (cases serves cases and offers), health and reflection.
        let mut expected: BTreeSet<String> = served(&suite, &pool)
            .into_iter()
            .filter(|(_, s)| s.addr == server.addr)
            .map(|(s, _)| s.full_name().to_owned())
            .collect();
        expected.extend(
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
            ]
            .map(String::from),
        );
        assert_eq!(names, expected);

        // Another server's method is refused saying what this server serves.
        let (other, _) = served(&suite, &pool)
            .into_iter()
            .find(|(_, s)| s.addr != server.addr)
            .unwrap();
        let method = other.methods().next().unwrap();
        let status = call(server, &method, Some("anything"), Vec::new()).await;
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().contains(service.full_name()), "{status:?}");
    }
    suite.stop().await.unwrap();
}

/// What a request is filled with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hostile {
    /// Every field at its default: the empty request.
    Empty,
    /// A NUL in every string.
    Nul,
    /// 20,000 characters in every string.
    Long,
    /// 3,000 items in every list.
    HugeLists,
    /// Enum numbers no enum has.
    UnknownEnums,
    /// Ids and codes that are not what they claim: not UUIDs, unknown UUIDs, SQL, emoji.
    Garbage(usize),
    /// Numbers at their limits, times at the end of time, amounts beyond any decimal.
    Extremes,
}

const GARBAGE: [&str; 8] = [
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee",
    "'; DROP TABLE parties; --",
    "%_\\",
    "🙂🙂🙂",
    " ",
    "-1",
];

fn fill(message: &MessageDescriptor, hostile: Hostile, depth: usize) -> DynamicMessage {
    let mut filled = DynamicMessage::new(message.clone());
    if hostile == Hostile::Empty || depth > 3 {
        return filled;
    }
    let mut oneofs_set = BTreeSet::new();
    for field in message.fields() {
        // One member per oneof: setting another would clear it.
        if let Some(oneof) = field.containing_oneof()
            && !oneofs_set.insert(oneof.name().to_owned())
        {
            continue;
        }
        let items = match hostile {
            Hostile::HugeLists if depth == 0 => 3000,
            _ => 2,
        };
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!("a map field is a message of entries")
            };
            let (key_field, value_field) =
                (entry.map_entry_key_field(), entry.map_entry_value_field());
            let map = (0..items)
                .filter_map(|i| {
                    let key = match scalar(&key_field, hostile, i) {
                        Value::String(s) => MapKey::String(format!("{s}{i}")),
                        Value::I32(n) => MapKey::I32(n.wrapping_add(i as i32)),
                        Value::I64(n) => MapKey::I64(n.wrapping_add(i as i64)),
                        Value::U32(n) => MapKey::U32(n.wrapping_add(i as u32)),
                        Value::U64(n) => MapKey::U64(n.wrapping_add(i as u64)),
                        Value::Bool(b) => MapKey::Bool(b ^ (i % 2 == 1)),
                        _ => return None,
                    };
                    Some((key, single(&value_field, hostile, depth, i)))
                })
                .collect();
            Value::Map(map)
        } else if field.is_list() {
            Value::List(
                (0..items)
                    .map(|i| single(&field, hostile, depth, i))
                    .collect(),
            )
        } else {
            single(&field, hostile, depth, 0)
        };
        filled.set_field(&field, value);
    }
    filled
}

fn single(field: &FieldDescriptor, hostile: Hostile, depth: usize, i: usize) -> Value {
    match field.kind() {
        Kind::Message(nested) => Value::Message(fill(&nested, hostile, depth + 1)),
        _ => scalar(field, hostile, i),
    }
}

fn scalar(field: &FieldDescriptor, hostile: Hostile, i: usize) -> Value {
    let extreme = hostile == Hostile::Extremes;
    match field.kind() {
        Kind::String => Value::String(match hostile {
            Hostile::Nul => format!("a\0b{i}"),
            Hostile::Long => "x".repeat(20_000),
            Hostile::Garbage(n) => GARBAGE[(n + i) % GARBAGE.len()].to_owned(),
            Hostile::Extremes => "99999999999999999999999999999999.999999999999".to_owned(),
            _ => format!("v{i}"),
        }),
        Kind::Bytes => Value::Bytes(vec![0xff; 64].into()),
        Kind::Bool => Value::Bool(true),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(if extreme {
            [i32::MAX, i32::MIN][i % 2]
        } else {
            -1
        }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(if extreme {
            [i64::MAX, i64::MIN][i % 2]
        } else {
            -1
        }),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(u32::MAX),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::MAX),
        Kind::Float => Value::F32(f32::NAN),
        Kind::Double => Value::F64(if extreme { f64::INFINITY } else { f64::NAN }),
        Kind::Enum(enumeration) => Value::EnumNumber(match hostile {
            Hostile::UnknownEnums => 9_999 + i as i32,
            Hostile::Extremes => i32::MIN,
            // The last declared value: a real one, often the unusual one.
            _ => enumeration.values().last().map_or(0, |v| v.number()),
        }),
        Kind::Message(_) => unreachable!("messages are filled by `single`"),
    }
}

#[tokio::test]
async fn no_hostile_request_is_answered_internal() {
    let suite = Suite::start().await.unwrap();
    let pool = pool();
    let scopes = all_scopes(&pool);
    let everything = token(
        "fuzzer",
        &scopes.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut flavours = vec![
        Hostile::Empty,
        Hostile::Nul,
        Hostile::Long,
        Hostile::HugeLists,
        Hostile::UnknownEnums,
        Hostile::Extremes,
    ];
    flavours.extend((0..GARBAGE.len()).map(Hostile::Garbage));
    let mut failures = Vec::new();
    let mut calls = 0;
    for (service, server) in served(&suite, &pool) {
        for method in service.methods() {
            let mut bodies: Vec<(String, Vec<u8>)> = flavours
                .iter()
                .map(|&hostile| {
                    let request = fill(&method.input(), hostile, 0);
                    (
                        format!("{hostile:?}"),
                        prost::Message::encode_to_vec(&request),
                    )
                })
                .collect();
            bodies.push(("not protobuf".into(), vec![0xff; 16]));
            bodies.push(("truncated".into(), vec![0x0a, 0x10, b'a']));
            for (flavour, body) in bodies {
                calls += 1;
                let status = call(server, &method, Some(&everything), body).await;
                let dropped = matches!(status.code(), Code::Unavailable | Code::Cancelled)
                    && status.get_details_error_info().is_none();
                if matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::DeadlineExceeded
                ) || dropped
                {
                    failures.push(format!(
                        "{} ({flavour}): {:?} {}",
                        method.full_name(),
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
    }
    assert!(calls > 500, "only {calls} calls");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    suite.stop().await.unwrap();
}

/// Raw protobuf bytes both ways: the test builds requests from descriptors, not generated types.
#[derive(Clone, Copy)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Self::Encoder {
        Raw
    }

    fn decoder(&mut self) -> Self::Decoder {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}
