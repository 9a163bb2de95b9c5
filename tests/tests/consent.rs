//! Consent decisions honoured across services: loyalty keeps a local view of the
//! `loyalty_program` consent from the consent service's events.

use std::time::Duration;

use crm_e2e::{LOYALTY_PROGRAM, Suite};
use crm_proto::crm::{
    loyalty::v1::{
        AccountRef, EnrollRequest, GetMembershipRequest, Membership, MembershipStatus,
        ReactivateMembershipRequest, RecordOperationRequest, SuspendMembershipRequest,
    },
    parties::v1::{CreatePartyRequest, Party, PartyKind, PersonName},
};
use crm_testkit::eventually;
use tonic::Code;
use tonic_types::StatusExt;

async fn consumer(suite: &Suite, name: &str) -> Party {
    suite
        .parties_client()
        .create_party(CreatePartyRequest {
            party: Some(Party {
                kind: PartyKind::Person as i32,
                person_name: Some(PersonName {
                    given_name: name.into(),
                    family_name: "Nowak".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn status_becomes(suite: &Suite, id: &str, wanted: MembershipStatus) -> Membership {
    let loyalty = suite.loyalty_client();
    eventually(Duration::from_secs(30), || {
        let mut loyalty = loyalty.clone();
        let id = id.to_owned();
        async move {
            let membership = loyalty
                .get_membership(GetMembershipRequest { id })
                .await
                .ok()?
                .into_inner();
            (membership.status() == wanted).then_some(membership)
        }
    })
    .await
    .unwrap_or_else(|| panic!("membership {id} becomes {wanted:?}"))
}

fn purchase(membership: &Membership, n: u32) -> RecordOperationRequest {
    RecordOperationRequest {
        operation_id: format!("purchase-{}-{n}", membership.id),
        account: Some(AccountRef {
            membership_id: membership.id.clone(),
            ..Default::default()
        }),
        operation_type: "purchase".into(),
        points: 10,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_withdrawal_suspends_membership_and_a_new_grant_restores_it() {
    let suite = Suite::start().await.unwrap();
    suite.loyalty_purpose().await;
    let program = suite.loyalty_program().await;
    let mut loyalty = suite.loyalty_client();
    let anna = consumer(&suite, "Anna").await;
    let piotr = consumer(&suite, "Piotr").await;

    let refused = loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: anna.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.get_details_error_info().unwrap().reason,
        "CONSENT_REQUIRED"
    );

    let mut members = Vec::new();
    for party in [&anna, &piotr] {
        suite.consent_to(&party.id, LOYALTY_PROGRAM, true).await;
        let membership = loyalty
            .enroll(EnrollRequest {
                program_id: program.id.clone(),
                party_id: party.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        loyalty
            .record_operation(purchase(&membership, 1))
            .await
            .unwrap();
        members.push(membership);
    }
    let (anna_member, piotr_member) = (&members[0], &members[1]);
    // Piotr's membership is suspended by hand; only a consent withdrawal is undone by a grant.
    loyalty
        .suspend_membership(SuspendMembershipRequest {
            id: piotr_member.id.clone(),
            reason: "card fraud under investigation".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    for party in [&anna, &piotr] {
        suite.consent_to(&party.id, LOYALTY_PROGRAM, false).await;
    }
    status_becomes(&suite, &anna_member.id, MembershipStatus::Suspended).await;
    let refused = loyalty
        .record_operation(purchase(anna_member, 2))
        .await
        .unwrap_err();
    assert_eq!(
        refused.get_details_error_info().unwrap().reason,
        "MEMBERSHIP_NOT_ACTIVE"
    );
    // A suspension for a withdrawn consent is not lifted by hand.
    let by_hand = loyalty
        .reactivate_membership(ReactivateMembershipRequest {
            id: anna_member.id.clone(),
            reason: "customer asked".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        by_hand.get_details_error_info().unwrap().reason,
        "CONSENT_REQUIRED"
    );

    for party in [&anna, &piotr] {
        suite.consent_to(&party.id, LOYALTY_PROGRAM, true).await;
    }
    status_becomes(&suite, &anna_member.id, MembershipStatus::Active).await;
    loyalty
        .record_operation(purchase(anna_member, 3))
        .await
        .unwrap();
    // Once loyalty has seen all six consent changes, Piotr's grant among them:
    let seen = eventually(Duration::from_secs(30), || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_inbox WHERE consumer = $1")
            .bind(crm_loyalty::consumers::consents::CONSUMER)
            .fetch_one(&mut suite.loyalty_db().await)
            .await
            .ok()?;
        (seen == 6).then_some(seen)
    })
    .await;
    assert_eq!(seen, Some(6));
    let piotr_now = loyalty
        .get_membership(GetMembershipRequest {
            id: piotr_member.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(piotr_now.status(), MembershipStatus::Suspended);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_consent_that_expires_suspends_membership_as_a_withdrawal_does() {
    use crm_proto::crm::consent::v1::{
        Channel, Evidence, RecordConsentRequest, Subject, SubjectKind,
    };
    let suite = Suite::start().await.unwrap();
    suite.loyalty_purpose().await;
    let program = suite.loyalty_program().await;
    let ewa = consumer(&suite, "Ewa").await;
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3;
    suite
        .consent_client()
        .record_consent(RecordConsentRequest {
            subject: Some(Subject {
                kind: SubjectKind::Party as i32,
                id: ewa.id.clone(),
            }),
            purpose: LOYALTY_PROGRAM.into(),
            evidence: Some(Evidence {
                channel: Channel::WebForm as i32,
                ..Default::default()
            }),
            expire_time: Some(prost_types::Timestamp {
                seconds: soon,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let membership = suite
        .loyalty_client()
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: ewa.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(membership.status(), MembershipStatus::Active);
    status_becomes(&suite, &membership.id, MembershipStatus::Suspended).await;
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_merged_party_takes_its_membership_and_consent_to_the_survivor() {
    use crm_proto::crm::{
        consent::v1::{CheckConsentRequest, Subject, SubjectKind},
        parties::v1::MergePartiesRequest,
    };
    let suite = Suite::start().await.unwrap();
    suite.loyalty_purpose().await;
    let program = suite.loyalty_program().await;
    let survivor = consumer(&suite, "Tomasz").await;
    let duplicate = consumer(&suite, "Tomek").await;
    suite.consent_to(&duplicate.id, LOYALTY_PROGRAM, true).await;
    let membership = suite
        .loyalty_client()
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    suite
        .loyalty_client()
        .record_operation(purchase(&membership, 1))
        .await
        .unwrap();

    suite
        .parties_client()
        .merge_parties(MergePartiesRequest {
            surviving_party_id: survivor.id.clone(),
            merged_party_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let loyalty = suite.loyalty_client();
    let moved = eventually(Duration::from_secs(30), || {
        let mut loyalty = loyalty.clone();
        let id = membership.id.clone();
        let survivor = survivor.id.clone();
        async move {
            let found = loyalty
                .get_membership(GetMembershipRequest { id })
                .await
                .ok()?
                .into_inner();
            (found.party_id == survivor).then_some(found)
        }
    })
    .await
    .expect("the membership moves to the surviving party");
    assert_eq!(moved.status(), MembershipStatus::Active);

    let consent = suite.consent_client();
    let granted = eventually(Duration::from_secs(30), || {
        let mut consent = consent.clone();
        let survivor = survivor.id.clone();
        async move {
            let answer = consent
                .check_consent(CheckConsentRequest {
                    subject: Some(Subject {
                        kind: SubjectKind::Party as i32,
                        id: survivor,
                    }),
                    purpose: LOYALTY_PROGRAM.into(),
                })
                .await
                .ok()?
                .into_inner();
            answer.granted.then_some(())
        }
    })
    .await;
    assert!(
        granted.is_some(),
        "the survivor takes over the merged party's consent"
    );
    suite.stop().await.unwrap();
}
