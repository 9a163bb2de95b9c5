//! Bulk accrual: a campaign credits a selection of members as a background job, in batches,
//! exactly once each, with its progress readable while it runs.

mod common;

use std::time::Duration;

use common::*;
use crm_proto::crm::{
    loyalty::v1::{start_bulk_accrual_request::Selection, *},
    parties::v1::{AddPartyToBaseRequest, Base, CreateBaseRequest, PartyKind},
};
use crm_testkit::eventually;

async fn finished(client: &Loyalty, job_id: &str) -> BulkAccrual {
    eventually(Duration::from_secs(60), || {
        let mut client = client.clone();
        let job_id = job_id.to_owned();
        async move {
            let job = client
                .get_bulk_accrual(GetBulkAccrualRequest { job_id })
                .await
                .ok()?
                .into_inner();
            (job.status() == BulkAccrualStatus::Completed).then_some(job)
        }
    })
    .await
    .expect("the job completes")
}

fn campaign(
    job_id: &str,
    program: &Program,
    points: i64,
    selection: Selection,
) -> StartBulkAccrualRequest {
    StartBulkAccrualRequest {
        job_id: job_id.into(),
        program_id: program.id.clone(),
        operation_type: "purchase".into(),
        points,
        selection: Some(selection),
        reference: format!("campaign {job_id}"),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_campaign_credits_every_selected_member_once() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;

    // More members than one batch holds.
    let mut members = Vec::new();
    for chunk in 0..(crm_loyalty::bulk::BATCH as usize + 120) / 40 {
        let names: Vec<String> = (0..40).map(|i| format!("Member {chunk}-{i}")).collect();
        let enrolments = names.iter().map(|name| suite.member(&program, name));
        members.extend(futures::future::join_all(enrolments).await);
    }
    let total = members.len() as i64;
    client
        .suspend_membership(SuspendMembershipRequest {
            id: members[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let start = campaign("campaign-1", &program, 25, Selection::AllMembers(true));
    let job = client
        .start_bulk_accrual(start.clone())
        .await
        .unwrap()
        .into_inner();
    // A worker starts it a moment later: it lists the members then, however many.
    assert_eq!(job.status(), BulkAccrualStatus::Scheduled);
    let again = client
        .start_bulk_accrual(start.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, job.id, "the same job id is the same job");
    let other = client
        .start_bulk_accrual(StartBulkAccrualRequest {
            points: 26,
            ..start
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&other), "REQUEST_ID_REUSED");

    let done = finished(&client, "campaign-1").await;
    assert_eq!(
        (done.total, done.done, done.failed),
        (total, total - 1, 1),
        "the suspended member is not credited"
    );
    assert_eq!(balance(&mut client, &members[1]).await.balance, 25);
    assert_eq!(balance(&mut client, &members[0]).await.balance, 0);
    let mut db = suite.loyalty.db().await;
    let posted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE client_id LIKE 'bulk:campaign-1:%'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(posted, total - 1);

    let listed = Selection::Memberships(MembershipIds {
        membership_ids: vec![members[1].id.clone(), members[2].id.clone()],
    });
    client
        .start_bulk_accrual(campaign("campaign-2", &program, 10, listed))
        .await
        .unwrap();
    let done = finished(&client, "campaign-2").await;
    assert_eq!((done.total, done.done), (2, 2));
    assert_eq!(balance(&mut client, &members[1]).await.balance, 35);

    // A base from the parties service selects its parties' memberships.
    let mut parties = suite.parties_client.clone();
    let base = parties
        .create_base(CreateBaseRequest {
            base: Some(Base {
                display_name: "VIP".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let vip = suite.party(PartyKind::Organization, "VIP Ltd").await;
    parties
        .add_party_to_base(AddPartyToBaseRequest {
            party_id: vip.id.clone(),
            base_id: base.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    suite.consent_to_loyalty(&vip.id).await;
    let vip_member = client
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: vip.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    client
        .start_bulk_accrual(campaign(
            "campaign-3",
            &program,
            7,
            Selection::BaseId(base.id),
        ))
        .await
        .unwrap();
    let done = finished(&client, "campaign-3").await;
    assert_eq!((done.total, done.done), (1, 1));
    assert_eq!(balance(&mut client, &vip_member).await.balance, 7);

    // A completed job has nothing left to stop; the program's jobs are listed newest first.
    let late = client
        .cancel_bulk_accrual(CancelBulkAccrualRequest {
            job_id: "campaign-3".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "BULK_ACCRUAL_COMPLETED");
    let listed = client
        .list_bulk_accruals(ListBulkAccrualsRequest {
            program_id: program.id.clone(),
            status: BulkAccrualStatus::Completed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed
        .bulk_accruals
        .iter()
        .map(|j| j.job_id.as_str())
        .collect();
    assert_eq!(ids, ["campaign-3", "campaign-2", "campaign-1"]);

    // Stopped while it runs: it stops between batches, never within one.
    client
        .start_bulk_accrual(campaign(
            "campaign-4",
            &program,
            1,
            Selection::AllMembers(true),
        ))
        .await
        .unwrap();
    let cancel = CancelBulkAccrualRequest {
        job_id: "campaign-4".into(),
        request_id: "stop-4".into(),
    };
    match client.cancel_bulk_accrual(cancel.clone()).await {
        Ok(stopped) => {
            let stopped = stopped.into_inner();
            assert_eq!(stopped.status(), BulkAccrualStatus::Cancelled);
            assert_eq!(stopped.done % crm_loyalty::bulk::BATCH, 0, "{stopped:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let later = client
                .get_bulk_accrual(GetBulkAccrualRequest {
                    job_id: "campaign-4".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                (later.status(), later.done),
                (stopped.status(), stopped.done)
            );
            let posted: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM operations WHERE client_id LIKE 'bulk:campaign-4:%'",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            assert_eq!(
                posted, stopped.done,
                "exactly the members counted were credited"
            );
            let again = client
                .cancel_bulk_accrual(cancel)
                .await
                .unwrap()
                .into_inner();
            assert_eq!(again, stopped, "a replayed cancellation answers the same");
        }
        // The job finished first (a fast machine): nothing was left to stop.
        Err(status) => assert_eq!(reason(&status), "BULK_ACCRUAL_COMPLETED"),
    }
    suite.assert_invariants().await;
}

#[tokio::test]
async fn an_interrupted_campaign_resumes_and_credits_each_member_once() {
    // Twelve batches, credited two at a time: the counts add up and no member is credited twice.
    let suite = Suite::start().await;
    let program = suite.program().await;
    // Enough members for several batches, seeded straight into the database for speed: the test
    // is about the job, not enrolment.
    let members = 12 * crm_loyalty::bulk::BATCH as usize;
    let mut db = suite.loyalty.db().await;
    let ids: Vec<uuid::Uuid> = (0..members).map(|_| uuid::Uuid::now_v7()).collect();
    let parties: Vec<uuid::Uuid> = (0..members).map(|_| uuid::Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO memberships (id, program_id, party_id, created_by, updated_by)
         SELECT id, $1, party, 'test', 'test' FROM unnest($2::uuid[], $3::uuid[]) AS m(id, party)",
    )
    .bind(uuid::Uuid::parse_str(&program.id).unwrap())
    .bind(&ids)
    .bind(&parties)
    .execute(&mut db)
    .await
    .unwrap();

    let mut client = suite.client.clone();
    client
        .start_bulk_accrual(campaign(
            "interrupted",
            &program,
            3,
            Selection::AllMembers(true),
        ))
        .await
        .unwrap();
    // Stop the service as soon as the first batch is in: the job is part done.
    eventually(Duration::from_secs(60), || {
        let mut client = client.clone();
        async move {
            let job = client
                .get_bulk_accrual(GetBulkAccrualRequest {
                    job_id: "interrupted".into(),
                })
                .await
                .ok()?;
            (job.into_inner().done > 0).then_some(())
        }
    })
    .await
    .expect("the job starts");
    let suite = suite.restart_loyalty().await;
    let mut db = suite.loyalty.db().await;
    let (done_at_stop, status): (i64, String) = sqlx::query_as(
        "SELECT coalesce(sum(b.done), 0)::bigint, j.status FROM bulk_accruals j
         LEFT JOIN bulk_accrual_batches b ON b.job_id = j.id
         WHERE j.client_id = 'interrupted' GROUP BY j.status",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(
        done_at_stop < members as i64,
        "stopped part way ({done_at_stop} done, {status})"
    );

    let done = finished(&suite.client, "interrupted").await;
    assert_eq!(
        (done.total, done.done, done.failed),
        (members as i64, members as i64, 0)
    );
    let credited: Vec<(i64,)> = sqlx::query_as(
        "SELECT count(*) FROM operations WHERE client_id LIKE 'bulk:interrupted:%' GROUP BY account_id HAVING count(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(credited.is_empty(), "no member was credited twice");
    let total: i64 =
        sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts WHERE kind = 'member'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(total, 3 * members as i64);
    suite.assert_invariants().await;
}

#[tokio::test]
async fn a_scheduled_campaign_starts_at_its_time_and_repeats_with_the_members_of_each_day() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let first = suite.member(&program, "Early Member").await;

    // Scheduled a moment ahead: nobody is chosen until it starts.
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    let scheduled = client
        .start_bulk_accrual(StartBulkAccrualRequest {
            start_time: Some(later.into()),
            ..campaign("later", &program, 7, Selection::AllMembers(true))
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scheduled.status(), BulkAccrualStatus::Scheduled);
    assert_eq!(scheduled.total, 0);
    let second = suite.member(&program, "Joined Meanwhile").await;
    let done = finished(&client, "later").await;
    assert_eq!(
        (done.total, done.done),
        (2, 2),
        "members are chosen at the start"
    );
    assert_eq!(balance(&mut client, &second).await.balance, 7);

    // Every day, three runs: the first now, the next scheduled a day after it.
    let daily = client
        .start_bulk_accrual(StartBulkAccrualRequest {
            repeat_every_days: 1,
            runs: 3,
            ..campaign("daily", &program, 5, Selection::AllMembers(true))
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((daily.run, daily.series_id.as_str()), (1, "daily"));
    finished(&client, "daily").await;
    let next = client
        .get_bulk_accrual(GetBulkAccrualRequest {
            job_id: "daily#2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.status(), BulkAccrualStatus::Scheduled);
    let day = next.start_time.unwrap().seconds - daily.start_time.unwrap().seconds;
    assert_eq!(day, 86_400);

    // The day comes (moved forward here): a member who joined since is credited too.
    let third = suite.member(&program, "Joined Later").await;
    let mut db = suite.loyalty.db().await;
    sqlx::query("UPDATE bulk_accruals SET start_at = now() WHERE client_id = 'daily#2'")
        .execute(&mut db)
        .await
        .unwrap();
    let run2 = finished(&client, "daily#2").await;
    assert_eq!((run2.run, run2.done), (2, 3));
    assert_eq!(balance(&mut client, &third).await.balance, 5);
    assert_eq!(balance(&mut client, &first).await.balance, 7 + 5 + 5);

    // Cancelling the series (by any of its runs) stops the runs to come; the last one is never made.
    let cancelled = client
        .cancel_bulk_accrual(CancelBulkAccrualRequest {
            job_id: "daily".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), BulkAccrualStatus::Completed);
    let run3 = client
        .get_bulk_accrual(GetBulkAccrualRequest {
            job_id: "daily#3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run3.status(), BulkAccrualStatus::Cancelled);

    // A schedule out of bounds names its fields.
    let status = client
        .start_bulk_accrual(StartBulkAccrualRequest {
            repeat_every_days: 400,
            runs: -1,
            ..campaign("bad#1", &program, 5, Selection::AllMembers(true))
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["job_id", "repeat_every_days", "runs"]);
    suite.assert_invariants().await;
}
