//! The suite's request path as production runs it, each figure printed next to its baseline from
//! the same run. Not a test: it prints figures.
//!
//! - `GetParty` against `grpc.health.v1.Health/Check` on the same server;
//! - `CheckConsent` against its statement run by `pgbench` on the same database;
//! - `GetBalance` against its four SELECTs run by `pgbench` on the same database.
//!
//! Each service is this binary started again as a child process through `crm_kit::app::main`, set
//! up as a deployment would be: release build, defaults for everything but addresses and secrets
//! (JSON logs at `info`, a pool of 10, concurrency limit 256), its own database on the machine's
//! PostgreSQL (ordinary, durable tables) and one tansu broker. The load comes from this process
//! over loopback, on separate HTTP/2 connections.
//!
//! Besides the runs against baselines, `GetParty` and `CheckConsent` also run at a steady 1,500
//! calls/s (about half of this machine's most), with latency counted from each call's scheduled
//! time: the calls slower than 10 ms there are stalls, not queueing.
//!
//! Each run prints calls/s, latency percentiles, the calls slower than 10 ms after its first second,
//! and CPU time per call of the service process and of every PostgreSQL process on the machine
//! (so run it on a quiet machine).
//!
//! `cargo bench -p crm-e2e --bench suite` (needs PostgreSQL, tansu and `pgbench`).
//! `CRM_BENCH_CALLS` sets the calls of each throughput run (default 100000).

use std::{
    fmt::Write as _,
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_kit::app::Service;
use crm_proto::crm::{
    consent::v1::{
        Channel as ConsentChannel, CheckConsentRequest, CreatePurposeRequest, Evidence, LegalBasis,
        Purpose, RecordConsentRequest, Subject, SubjectKind,
        consent_service_client::ConsentServiceClient,
    },
    loyalty::v1::{
        AccountRef, GetBalanceRequest, RecordOperationRequest,
        loyalty_service_client::LoyaltyServiceClient,
    },
    parties::v1::{
        CreatePartyRequest, GetPartyRequest, Party, PartyKind, PersonName,
        parties_service_client::PartiesServiceClient,
    },
};
use crm_testkit::{
    Broker, Pgbench, TestDatabase, pgbench,
    process::{ServiceProcess, serve_if_child},
    seed, token,
};
use futures::{StreamExt, stream};
use http::uri::PathAndQuery;
use tonic::{metadata::MetadataValue, transport::Channel};
use tonic_health::pb::HealthCheckRequest;
use uuid::Uuid;

const SERVICES: [Service; 3] = [
    crm_parties::SERVICE,
    crm_consent::SERVICE,
    crm_loyalty::SERVICE,
];

/// Rows each read picks from at random.
const ROWS: usize = 2_000;
/// One call at a time, for latency.
const SEQUENTIAL: usize = 5_000;
/// Calls per second of the steady runs: about half of what this 2-core machine serves at most.
const STEADY_RATE: f64 = 1_500.0;

fn main() -> ExitCode {
    if let Some(served) = serve_if_child(&SERVICES) {
        return served;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(bench());
    ExitCode::SUCCESS
}

async fn bench() {
    let calls: usize = std::env::var("CRM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
        .max(1_000);
    let broker = Broker::start().await.expect("starting tansu");
    let parties = Child::start("parties", &broker, &[]).await;
    let consent = Child::start("consent", &broker, &[]).await;
    let loyalty = Child::start(
        "loyalty",
        &broker,
        &[("PARTIES", parties.addr), ("CONSENT", consent.addr)],
    )
    .await;

    let party_ids = seed_parties(&parties).await;
    let subjects = seed_consents(&consent).await;
    let (program, memberships) = seed_memberships(&loyalty).await;
    println!(
        "Suite benchmark: {} CPU cores; services are release builds in their own processes, \
         configured as in production; {calls} calls per throughput run",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let one = Load {
        connections: 1,
        per_connection: 1,
        calls: SEQUENTIAL,
        rate: None,
    };
    let wide = Load {
        connections: 16,
        per_connection: 8,
        calls,
        rate: None,
    };
    // Half of what this machine serves at most: what a service should sustain without a stall.
    let steady = Load {
        connections: 16,
        per_connection: 8,
        calls,
        rate: Some(STEADY_RATE),
    };
    println!("\nGetParty ({ROWS} parties), {}", wide.describe());
    let health = parties
        .drive(HEALTH, wide, |_| HealthCheckRequest::default())
        .await;
    health.print("Health/Check (baseline)", None);
    let get_party = parties
        .drive(GET_PARTY, wide, |i| GetPartyRequest {
            id: party_ids[i % ROWS].clone(),
        })
        .await;
    get_party.print("GetParty", Some(&health));
    let sql = sql_baseline(
        &parties,
        GET_PARTY_SQL,
        &[("party", &party_ids[ROWS / 2])],
        calls,
    )
    .await;
    println!("  GetParty = {:.2} × its SQL", get_party.rate() / sql.tps);
    parties
        .drive(GET_PARTY, one, |i| GetPartyRequest {
            id: party_ids[i % ROWS].clone(),
        })
        .await
        .print("GetParty, one at a time", None);
    parties
        .drive(GET_PARTY, steady, |i| GetPartyRequest {
            id: party_ids[i % ROWS].clone(),
        })
        .await
        .print(&format!("GetParty, {STEADY_RATE}/s steady"), None);

    let check = |i: usize| CheckConsentRequest {
        subject: Some(party_subject(&subjects[i % ROWS])),
        purpose: PURPOSE.into(),
    };
    let narrow = Load {
        connections: 16,
        per_connection: 1,
        calls,
        rate: None,
    };
    println!("\nCheckConsent ({ROWS} subjects, half of them granted)");
    consent
        .drive(CHECK_CONSENT, one, check)
        .await
        .print("CheckConsent, one at a time", None);
    let sql = sql_baseline(&consent, CHECK_CONSENT_SQL, &[], calls).await;
    consent
        .drive(CHECK_CONSENT, narrow, check)
        .await
        .print_against_sql("CheckConsent, 16 in flight", &sql);
    consent
        .drive(CHECK_CONSENT, steady, check)
        .await
        .print(&format!("CheckConsent, {STEADY_RATE}/s steady"), None);

    println!("\nGetBalance ({ROWS} members with one account each)");
    let balance = |i: usize| GetBalanceRequest {
        account: Some(AccountRef {
            membership_id: memberships[i % ROWS].to_string(),
            ..Default::default()
        }),
    };
    loyalty
        .drive(GET_BALANCE, one, balance)
        .await
        .print("GetBalance, one at a time", None);
    let sql = sql_baseline(&loyalty, GET_BALANCE_SQL, &[("program", &program)], calls).await;
    loyalty
        .drive(GET_BALANCE, narrow, balance)
        .await
        .print_against_sql("GetBalance, 16 in flight", &sql);

    for child in [loyalty, consent, parties] {
        child.stop().await;
    }
}

const HEALTH: &str = "/grpc.health.v1.Health/Check";
const GET_PARTY: &str = "/crm.parties.v1.PartiesService/GetParty";
const CHECK_CONSENT: &str = "/crm.consent.v1.ConsentService/CheckConsent";
const GET_BALANCE: &str = "/crm.loyalty.v1.LoyaltyService/GetBalance";

const PURPOSE: &str = "marketing_email";

/// What `GetParty` runs: `get_party` (services/parties/src/store/parties.rs), for one party (all
/// of them are in PostgreSQL's buffers, so which one makes no difference).
const GET_PARTY_SQL: &str = r"
SELECT p.id, p.kind, p.status, p.display_name, p.given_name, p.family_name,
    p.legal_name, p.tax_id, p.registration_numbers, p.tags, p.custom_fields, p.contact_points,
    p.addresses, p.merged_into, p.created_at, p.updated_at, p.created_by, p.updated_by, p.version,
    ARRAY(SELECT pb.base_id FROM party_bases pb WHERE pb.party_id = p.id ORDER BY pb.base_id) AS base_ids,
    (SELECT pe.id FROM persons pe WHERE pe.natural_party_id = p.id) AS person_id
    FROM parties p WHERE p.id = :party;
";

/// What `CheckConsent` runs: `records::check` (services/consent/src/store/records.rs).
const CHECK_CONSENT_SQL: &str = r"
\set n random(1, 2000)
SELECT p.code, p.description, p.legal_basis, p.text_version, t.text,
        p.minimum_consented_version, p.created_at, p.updated_at, p.version,
        r.id AS r_id, r.subject_kind AS r_subject_kind, r.subject_id AS r_subject_id,
        r.status AS r_status, r.channel AS r_channel, r.source_system AS r_source_system,
        r.text_version AS r_text_version, r.reference AS r_reference,
        r.expires_at AS r_expires_at, r.recorded_by AS r_recorded_by,
        r.recorded_at AS r_recorded_at
    FROM purposes p JOIN purpose_texts t ON t.purpose = p.code AND t.version = p.text_version
    LEFT JOIN consent_state s
        ON s.subject_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
       AND s.purpose = p.code
    LEFT JOIN consent_records r ON r.id = s.record_id
    WHERE p.code = 'marketing_email';
";

/// What `GetBalance` runs: `get_membership`, `get_program`, `point_types`, `find_account`
/// (services/loyalty/src/store). The account's person is the service's bound NULL: written as a
/// value computed per call, since a literal NULL lets the planner simplify the statement.
const GET_BALANCE_SQL: &str = r"
\set n random(1, 2000)
SELECT id, program_id, party_id, status, pool_to_organization, tier, assigned_tier, created_at,
    updated_at, created_by, updated_by, version
    FROM memberships WHERE id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid;
SELECT id, display_name, kind, currency_code, status, valid_from, valid_to,
    accrual_rules, created_at, updated_at, created_by, updated_by, version
    FROM programs WHERE id = :program;
SELECT code, display_name, qualifying, expiry_policy, expiry_months, allow_negative, reversal_floor
    FROM point_types WHERE program_id = :program ORDER BY position;
SELECT id, membership_id, person_id, point_type, balance, held, updated_at FROM accounts
    WHERE kind = 'member'
      AND membership_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
      AND person_id IS NOT DISTINCT FROM CAST(NULLIF(:n::text, :n::text) AS uuid)
      AND point_type = 'basic';
";

/// The `n`th id the SQL baselines can address without a lookup (`n` from 1).
fn numbered(n: usize) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012}")).expect("a valid UUID")
}

fn party_subject(id: &Uuid) -> Subject {
    Subject {
        kind: SubjectKind::Party as i32,
        id: id.to_string(),
    }
}

/// A service of the suite running in a child process, on a database of its own.
struct Child {
    name: &'static str,
    addr: SocketAddr,
    process: ServiceProcess,
    database: TestDatabase,
}

impl Child {
    async fn start(name: &'static str, broker: &Broker, peers: &[(&str, SocketAddr)]) -> Self {
        let database = TestDatabase::create().await.expect("creating a database");
        let peers: Vec<(String, String)> = peers
            .iter()
            .map(|(peer, addr)| (format!("CRM__PEERS__{peer}"), format!("http://{addr}")))
            .collect();
        let process = ServiceProcess::start(name, &database.url, &broker.brokers(), &peers).await;
        Self {
            name,
            addr: process.addr,
            process,
            database,
        }
    }

    async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        self.process.channel().await
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn token(&self) -> String {
        token(
            "bench",
            &[
                &format!("{}.read", self.name),
                &format!("{}.write", self.name),
            ],
        )
    }

    /// `load.calls` calls of `path`, the `i`th with `request(i)`.
    async fn drive<R>(&self, path: &'static str, load: Load, request: impl Fn(usize) -> R) -> Run
    where
        R: prost::Message + Clone + Send + Sync + 'static,
    {
        let bearer: MetadataValue<_> = format!("Bearer {}", self.token()).parse().unwrap();
        let mut callers = Vec::new();
        for _ in 0..load.connections {
            let channel = self.channel().await.expect("connecting");
            for _ in 0..load.per_connection {
                callers.push(tonic::client::Grpc::new(channel.clone()));
            }
        }
        // Built up front so that the clock measures the calls, not the request fixtures.
        let requests: Arc<Vec<R>> = Arc::new((0..load.calls).map(request).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let rate = load.rate;
        let before = Cpu::read(self.pid());
        let started = Instant::now();
        let tasks: Vec<_> = callers
            .into_iter()
            .map(|mut grpc| {
                let (next, requests, bearer) = (next.clone(), requests.clone(), bearer.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = requests.get(i) else {
                            return samples;
                        };
                        let mut request = tonic::Request::new(body.clone());
                        request
                            .metadata_mut()
                            .insert("authorization", bearer.clone());
                        let sent = match rate {
                            Some(rate) => {
                                let due = started + Duration::from_secs_f64(i as f64 / rate);
                                tokio::time::sleep_until(due.into()).await;
                                due
                            }
                            None => Instant::now(),
                        };
                        grpc.ready().await.expect("the connection is up");
                        let codec = tonic_prost::ProstCodec::<R, ()>::default();
                        let reply = grpc
                            .unary(request, PathAndQuery::from_static(path), codec)
                            .await;
                        if let Err(status) = reply {
                            panic!("{path} failed: {status:?}");
                        }
                        samples.push((sent - started, sent.elapsed()));
                    }
                })
            })
            .collect();
        let mut samples = Vec::with_capacity(load.calls);
        for task in tasks {
            samples.extend(task.await.expect("a caller"));
        }
        let elapsed = started.elapsed();
        let after = Cpu::read(self.pid());
        Run::new(samples, elapsed, after.since(&before))
    }

    async fn stop(self) {
        // Drained and its pool closed before the database goes.
        self.process.stop().await;
        drop(self.database);
    }
}

#[derive(Clone, Copy)]
struct Load {
    connections: usize,
    /// Callers per connection: calls in flight on it at most.
    per_connection: usize,
    calls: usize,
    /// Calls per second, each sent on its schedule whether or not earlier ones have answered
    /// (latency counts from the scheduled time, so a stall delays no later measurement); `None`
    /// sends each call as soon as a caller is free.
    rate: Option<f64>,
}

impl Load {
    fn describe(&self) -> String {
        format!(
            "{} connections with {} calls in flight on each",
            self.connections, self.per_connection
        )
    }
}

/// CPU time used so far by a service process and by every PostgreSQL process.
struct Cpu {
    service: Duration,
    postgres: Duration,
}

impl Cpu {
    fn read(pid: u32) -> Self {
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "postgres")
            })
            .map(process_cpu)
            .sum();
        Self {
            service: process_cpu(pid),
            postgres,
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            service: self.service.saturating_sub(before.service),
            postgres: self.postgres.saturating_sub(before.postgres),
        }
    }
}

/// User and system time of all threads of `pid` (fields 14 and 15 of `/proc/PID/stat`, in the
/// kernel's 100 Hz ticks).
fn process_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// One throughput or latency run: each call's start (from the run's start) and latency.
struct Run {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Calls slower than 10 ms that started after the first second.
    slow: usize,
    cpu: Cpu,
}

impl Run {
    fn new(samples: Vec<(Duration, Duration)>, elapsed: Duration, cpu: Cpu) -> Self {
        let slow = samples
            .iter()
            .filter(|(start, latency)| {
                *start > Duration::from_secs(1) && *latency > Duration::from_millis(10)
            })
            .count();
        let mut latencies: Vec<Duration> = samples.into_iter().map(|(_, l)| l).collect();
        latencies.sort();
        Self {
            calls: latencies.len(),
            elapsed,
            latencies,
            slow,
            cpu,
        }
    }

    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        ms(self.latencies[i])
    }

    fn line(&self, label: &str) -> String {
        let per_call = |cpu: Duration| cpu.as_secs_f64() * 1e6 / self.calls as f64;
        format!(
            "  {label:<34} {:>8.0} calls/s   p50 {:>5.2} ms  p99 {:>5.2} ms  max {:>6.2} ms  \
             >10 ms after 1 s: {:<4} CPU/call: service {:>4.0} µs, PostgreSQL {:>4.0} µs",
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99),
            ms(*self.latencies.last().unwrap()),
            self.slow,
            per_call(self.cpu.service),
            per_call(self.cpu.postgres),
        )
    }

    fn print(&self, label: &str, baseline: Option<&Run>) {
        let mut line = self.line(label);
        if let Some(baseline) = baseline {
            let _ = write!(line, "  = {:.2} × baseline", self.rate() / baseline.rate());
        }
        println!("{line}");
    }

    fn print_against_sql(&self, label: &str, sql: &Pgbench) {
        println!(
            "{}  = {:.2} × baseline",
            self.line(label),
            self.rate() / sql.tps
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `script` run by 16 pgbench clients on the child's database, printed as a baseline.
async fn sql_baseline(
    child: &Child,
    script: &str,
    variables: &[(&str, &str)],
    calls: usize,
) -> Pgbench {
    let sql = pgbench(&child.database.url, script, variables, 16, calls)
        .await
        .expect("the SQL baseline");
    println!(
        "  {:<34} {:>8.0} calls/s   mean {:.2} ms (pgbench, prepared statements, 16 clients)",
        "its SQL from pgbench (baseline)", sql.tps, sql.latency_ms
    );
    sql
}

async fn seed_parties(parties: &Child) -> Vec<String> {
    let client = PartiesServiceClient::new(parties.channel().await.unwrap());
    let bearer = parties.token();
    stream::iter(0..ROWS)
        .map(|i| {
            let mut client = client.clone();
            let mut request = tonic::Request::new(CreatePartyRequest {
                party: Some(Party {
                    kind: PartyKind::Person as i32,
                    display_name: format!("Member {i}"),
                    person_name: Some(PersonName {
                        given_name: "Member".into(),
                        family_name: format!("{i}"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            authorize(&mut request, &bearer);
            async move { client.create_party(request).await.unwrap().into_inner().id }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Subjects numbered 1…ROWS; the odd ones granted the purpose.
async fn seed_consents(consent: &Child) -> Vec<Uuid> {
    let mut client = ConsentServiceClient::new(consent.channel().await.unwrap());
    let bearer = consent.token();
    let mut request = tonic::Request::new(CreatePurposeRequest {
        purpose: Some(Purpose {
            code: PURPOSE.into(),
            description: "E-mail offers".into(),
            legal_basis: LegalBasis::Consent as i32,
            text: "I agree".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    authorize(&mut request, &bearer);
    client.create_purpose(request).await.unwrap();
    let subjects: Vec<Uuid> = (1..=ROWS).map(numbered).collect();
    stream::iter(subjects.iter().step_by(2))
        .for_each_concurrent(16, |id| {
            let mut client = client.clone();
            let mut request = tonic::Request::new(RecordConsentRequest {
                subject: Some(party_subject(id)),
                purpose: PURPOSE.into(),
                evidence: Some(Evidence {
                    channel: ConsentChannel::WebForm as i32,
                    ..Default::default()
                }),
                request_id: Uuid::now_v7().to_string(),
                ..Default::default()
            });
            authorize(&mut request, &bearer);
            async move {
                client.record_consent(request).await.unwrap();
            }
        })
        .await;
    subjects
}

/// Members numbered 1…ROWS of one program, each with one accrual on its account. The memberships
/// are written straight into the database: enrolment through the API would need ROWS parties and
/// consents, and the figures here are about reads.
async fn seed_memberships(loyalty: &Child) -> (String, Vec<Uuid>) {
    let bearer = loyalty.token();
    let channel = loyalty.channel().await.unwrap();
    let mut club =
        LoyaltyServiceClient::with_interceptor(channel.clone(), seed::Bearer::new(&bearer));
    let program = seed::loyalty_club(&mut club).await;
    let members: Vec<Uuid> = (1..=ROWS).map(numbered).collect();
    seed::memberships(&mut loyalty.database.connect().await, &program.id, &members).await;
    let client = LoyaltyServiceClient::new(channel);
    stream::iter(members.iter())
        .for_each_concurrent(16, |member| {
            let mut client = client.clone();
            let mut request = tonic::Request::new(RecordOperationRequest {
                operation_id: format!("seed-{member}"),
                account: Some(AccountRef {
                    membership_id: member.to_string(),
                    ..Default::default()
                }),
                operation_type: "purchase".into(),
                points: 100,
                reference: "seed".into(),
                card_number: String::new(),
            });
            authorize(&mut request, &bearer);
            async move {
                client.record_operation(request).await.unwrap();
            }
        })
        .await;
    (program.id, members)
}

fn authorize<T>(request: &mut tonic::Request<T>, token: &str) {
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a valid header"),
    );
}
