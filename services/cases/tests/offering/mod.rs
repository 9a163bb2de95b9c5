//! What the offer tests share: the fridge shop's client, a member with her own discount and a
//! coupon, and the lines of her offer.

use crm_e2e::Suite;
use crm_proto::crm::{cases::v1::*, loyalty::v1::*, parties::v1::Party};

pub fn line(
    description: &str,
    quantity: &str,
    price: &str,
    discount: &str,
    tax: (&str, &str),
) -> OfferLine {
    OfferLine {
        description: description.into(),
        quantity: quantity.into(),
        unit: "pcs".into(),
        unit_price: price.into(),
        discount_percent: discount.into(),
        tax_code: tax.0.into(),
        tax_percent: tax.1.into(),
        ..Default::default()
    }
}

/// The fridge shop's offer to Anna, worked by hand as its invoice would be. Her own discount on
/// fridges (7.5 %) beats the agreed 5 %; the 10 % coupon comes off what is left:
///
/// | line | value | discount | net | VAT |
/// |---|---|---|---|---|
/// | 3 × 1999.99 | 5999.97 | 16.75 % | 4994.98 (4994.975025) | 23 % |
/// | 2.5 × 120.00 | 300.00 | 10 % | 270.00 | 8 % |
/// | 1 × 0.05 | 0.05 | 10 % | 0.05 (0.045, the half away from zero) | 23 % |
/// | 1 × 50.00 | 50.00 | 10 % | 45.00 | zw (exempt) |
///
/// 23 %: 4995.03 + 1148.86 (1148.8569) = 6143.89; 8 %: 270.00 + 21.60 = 291.60; zw: 45.00.
/// In all: 5310.03 + 1170.46 = 6480.49 PLN.
pub fn fridges() -> Vec<OfferLine> {
    vec![
        OfferLine {
            category: "fridges".into(),
            product_id: "POLAR-300".into(),
            ..line("Lodówka Polar 300", "3", "1999.99", "5", ("23", "23"))
        },
        OfferLine {
            unit: "h".into(),
            ..line(
                "Montaż i uruchomienie\nw dzień roboczy",
                "2.5",
                "120.00",
                "",
                ("8", "8"),
            )
        },
        line("Transport", "1", "0.05", "0", ("23", "23")),
        line("Utylizacja starego sprzętu", "1", "50", "0", ("zw", "0")),
    ]
}

/// Anna, a member of the club with her own discount on fridges, and a 10 % coupon.
pub async fn client(suite: &Suite) -> (Party, Membership, String) {
    let anna = suite.consumer("Anna", "Kowalska", "anna@example.pl").await;
    suite.loyalty_purpose().await;
    suite.consent_to(&anna.id, "loyalty_program", true).await;
    let program = suite.loyalty_program().await;
    let mut loyalty = suite.loyalty_client();
    let membership = loyalty
        .enroll(EnrollRequest {
            program_id: program.id.clone(),
            party_id: anna.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    loyalty
        .set_discount(SetDiscountRequest {
            discount: Some(Discount {
                party_id: anna.id.clone(),
                price_list: "retail".into(),
                category: "fridges".into(),
                percentage: "7.5".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let definition = loyalty
        .create_coupon_definition(CreateCouponDefinitionRequest {
            definition: Some(CouponDefinition {
                program_id: program.id.clone(),
                display_name: "10% off".into(),
                kind: CouponKind::Percentage as i32,
                percentage: "10".into(),
                uses_per_code: 1,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let code = loyalty
        .generate_coupons(GenerateCouponsRequest {
            definition_id: definition.id,
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .coupons
        .remove(0)
        .code;
    (anna, membership, code)
}

pub fn offer_for(party: &Party, membership: &Membership) -> Offer {
    Offer {
        party_id: party.id.clone(),
        title: "Kitchen for the new flat".into(),
        currency_code: "PLN".into(),
        locale: "pl-PL".into(),
        price_list: "retail".into(),
        membership_id: membership.id.clone(),
        notes: "Delivery within 14 days.\n<b>Not bold</b> & plain".into(),
        ..Default::default()
    }
}
