//! Coupons: generated in bulk, validated, and redeemed never beyond their limit.

mod common;

use std::collections::HashSet;

use common::*;
use crm_proto::crm::loyalty::v1::*;

fn definition(program: &Program, uses: i32, per_member: bool) -> CreateCouponDefinitionRequest {
    CreateCouponDefinitionRequest {
        definition: Some(CouponDefinition {
            program_id: program.id.clone(),
            display_name: "15% off".into(),
            kind: CouponKind::Percentage as i32,
            percentage: "15".into(),
            uses_per_code: uses,
            per_member,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One generic code of the definition.
async fn one_code(client: &mut Loyalty, definition: &CouponDefinition) -> String {
    client
        .generate_coupons(GenerateCouponsRequest {
            definition_id: definition.id.clone(),
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .coupons
        .remove(0)
        .code
}

fn redeem(id: &str, code: &str, member: &Membership) -> RedeemCouponRequest {
    RedeemCouponRequest {
        redemption_id: id.into(),
        code: code.into(),
        membership_id: member.id.clone(),
        reference: format!("receipt-{id}"),
    }
}

#[tokio::test]
async fn coupons_are_unique_checked_and_never_used_beyond_their_limit() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let anna = suite.member(&program, "Anna").await;
    let bob = suite.member(&program, "Bob").await;

    let single = client
        .create_coupon_definition(definition(&program, 1, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(single.percentage, "15");
    let codes = client
        .generate_coupons(GenerateCouponsRequest {
            definition_id: single.id.clone(),
            count: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .coupons;
    let distinct: HashSet<&str> = codes.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(distinct.len(), 200);

    // Typed as a cashier might: lower case, no dashes.
    let typed = codes[0].code.to_lowercase().replace('-', "");
    let check = client
        .validate_coupon(ValidateCouponRequest {
            code: typed.clone(),
            membership_id: anna.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(check.valid, "{check:?}");
    let first = client
        .redeem_coupon(redeem("r-1", &typed, &anna))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.code, codes[0].code);
    let replay = client
        .redeem_coupon(redeem("r-1", &typed, &anna))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replay, first,
        "a replayed redemption answers the same and uses nothing"
    );
    let again = client
        .redeem_coupon(redeem("r-2", &typed, &bob))
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "COUPON_USED_UP");
    let check = client
        .validate_coupon(ValidateCouponRequest {
            code: codes[0].code.clone(),
            membership_id: bob.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (check.valid, check.reason.as_str(), check.remaining_uses),
        (false, "COUPON_USED_UP", 0)
    );

    // Twenty tills race for a five-use code: five win.
    let multi = client
        .create_coupon_definition(definition(&program, 5, false))
        .await
        .unwrap()
        .into_inner();
    let code = one_code(&mut client, &multi).await;
    let tills = (0..20).map(|i| {
        let mut client = client.clone();
        let request = redeem(&format!("race-{i}"), &code, &anna);
        async move { client.redeem_coupon(request).await }
    });
    let results = futures::future::join_all(tills).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let used_up = results
        .iter()
        .filter(|r| matches!(r, Err(s) if reason(s) == "COUPON_USED_UP"))
        .count();
    assert_eq!((won, used_up), (5, 15));

    let personal = client
        .create_coupon_definition(definition(&program, 1, true))
        .await
        .unwrap()
        .into_inner();
    let annas = client
        .generate_coupons(GenerateCouponsRequest {
            definition_id: personal.id.clone(),
            membership_ids: vec![anna.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .coupons;
    assert_eq!(annas[0].membership_id, anna.id);
    let not_bobs = client
        .redeem_coupon(redeem("p-1", &annas[0].code, &bob))
        .await
        .unwrap_err();
    assert_eq!(reason(&not_bobs), "COUPON_NOT_FOR_MEMBER");
    client
        .redeem_coupon(redeem("p-2", &annas[0].code, &anna))
        .await
        .unwrap();

    let mut expired = definition(&program, 1, false);
    if let Some(d) = expired.definition.as_mut() {
        d.valid_from = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        });
        d.valid_to = Some(prost_types::Timestamp {
            seconds: 1_700_000_100,
            nanos: 0,
        });
    }
    let expired = client
        .create_coupon_definition(expired)
        .await
        .unwrap()
        .into_inner();
    let old = client
        .generate_coupons(GenerateCouponsRequest {
            definition_id: expired.id,
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .coupons;
    let late = client
        .redeem_coupon(redeem("late", &old[0].code, &anna))
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "COUPON_EXPIRED");

    // A suspended member's coupon waits for the suspension to end.
    let spare = client
        .generate_coupons(GenerateCouponsRequest {
            definition_id: multi.id.clone(),
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .coupons;
    client
        .suspend_membership(SuspendMembershipRequest {
            id: bob.id.clone(),
            reason: "audit".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let check = client
        .validate_coupon(ValidateCouponRequest {
            code: spare[0].code.clone(),
            membership_id: bob.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (check.valid, check.reason.as_str()),
        (false, "MEMBERSHIP_NOT_ACTIVE")
    );
    let suspended = client
        .redeem_coupon(redeem("while-suspended", &spare[0].code, &bob))
        .await
        .unwrap_err();
    assert_eq!(reason(&suspended), "MEMBERSHIP_NOT_ACTIVE");
    suite.assert_invariants().await;
}

/// Definitions are read, listed and changed where a change keeps the promise codes already made.
#[tokio::test]
async fn coupon_definitions_are_read_listed_and_updated_under_their_etag() {
    let suite = Suite::start().await;
    let mut client = suite.client.clone();
    let program = suite.program().await;
    let member = suite.member(&program, "Anna").await;
    let first = client
        .create_coupon_definition(definition(&program, 1, false))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .create_coupon_definition(definition(&program, 2, false))
        .await
        .unwrap()
        .into_inner();
    let got = client
        .get_coupon_definition(GetCouponDefinitionRequest {
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, first);
    let page = client
        .list_coupon_definitions(ListCouponDefinitionsRequest {
            program_id: program.id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.definitions,
        std::slice::from_ref(&second),
        "newest first"
    );
    let rest = client
        .list_coupon_definitions(ListCouponDefinitionsRequest {
            program_id: program.id.clone(),
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.definitions, std::slice::from_ref(&first));

    let code = one_code(&mut client, &first).await;
    client
        .redeem_coupon(redeem("r-1", &code, &member))
        .await
        .unwrap();
    let update = |etag: &str, uses: i32| UpdateCouponDefinitionRequest {
        definition: Some(CouponDefinition {
            id: first.id.clone(),
            display_name: "Welcome back".into(),
            uses_per_code: uses,
            // Not in the mask: what a coupon gives stays.
            percentage: "90".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into(), "uses_per_code".into()],
        }),
        ..Default::default()
    };
    let updated = client
        .update_coupon_definition(update(&first.etag, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            updated.display_name.as_str(),
            updated.uses_per_code,
            updated.percentage.as_str()
        ),
        ("Welcome back", 2, "15")
    );
    assert_ne!(updated.etag, first.etag);
    let stale = client
        .update_coupon_definition(update(&first.etag, 3))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted);
    // The code used once may now be used once more.
    client
        .redeem_coupon(redeem("r-2", &code, &member))
        .await
        .unwrap();
    let bad = client
        .update_coupon_definition(UpdateCouponDefinitionRequest {
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["kind".into()],
            }),
            ..update(&updated.etag, 0)
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    suite.assert_invariants().await;
}
