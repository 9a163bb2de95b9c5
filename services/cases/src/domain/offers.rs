//! An offer's life (draft → sent → accepted, rejected or expired; a new version sends it back to
//! draft), how its discounts add up, and how many decimal places its currency has.

use rust_decimal::Decimal;

use super::proto;

crm_kit::text_enum! {
    pub enum OfferStatus: proto::OfferStatus {
        Draft = "draft",
        Sent = "sent",
        Accepted = "accepted",
        Rejected = "rejected",
        Expired = "expired",
    }
}

/// What is done to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Edit,
    AddVersion,
    Send,
    Accept,
    Reject,
    Expire,
}

/// Why a step cannot be taken, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Accepted, rejected or expired: nothing more happens to it.
    Closed,
    /// Only a draft is edited; only a draft is sent.
    NotDraft,
    /// Only a sent offer is accepted, rejected or expired.
    NotSent,
}

/// The status after `step`.
pub fn step(from: OfferStatus, step: Step) -> Result<OfferStatus, Refused> {
    use OfferStatus::*;
    match (from, step) {
        (Accepted | Rejected | Expired, _) => Err(Refused::Closed),
        (Draft, Step::Edit) => Ok(Draft),
        (Draft | Sent, Step::AddVersion) => Ok(Draft),
        (Draft, Step::Send) => Ok(Sent),
        (Sent, Step::Accept) => Ok(Accepted),
        (Sent, Step::Reject) => Ok(Rejected),
        (Sent, Step::Expire) => Ok(Expired),
        (Sent, Step::Edit | Step::Send) => Err(Refused::NotDraft),
        (Draft, Step::Accept | Step::Reject | Step::Expire) => Err(Refused::NotSent),
    }
}

/// A line's discount: the better of the one agreed by hand and the member's, then the coupon's
/// taken off what is left (10 % and a 5 % coupon make 14.5 %, not 15 %).
pub fn applied_discount(agreed: Decimal, member: Decimal, coupon: Decimal) -> Decimal {
    let hundred = Decimal::ONE_HUNDRED;
    let kept = (hundred - agreed.max(member)) * (hundred - coupon) / hundred;
    (hundred - kept).normalize()
}

/// Decimal places of an ISO 4217 currency's minor unit: 2 unless the standard says otherwise.
pub fn minor_units(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OfferStatus::*;

    #[test]
    fn an_offer_is_decided_once_and_only_after_it_was_sent() {
        assert_eq!(step(Draft, Step::Send), Ok(Sent));
        assert_eq!(step(Sent, Step::Accept), Ok(Accepted));
        assert_eq!(step(Sent, Step::Reject), Ok(Rejected));
        assert_eq!(step(Sent, Step::Expire), Ok(Expired));
        assert_eq!(step(Draft, Step::Accept), Err(Refused::NotSent));
        assert_eq!(step(Draft, Step::Expire), Err(Refused::NotSent));
        assert_eq!(step(Sent, Step::Edit), Err(Refused::NotDraft));
        assert_eq!(step(Sent, Step::Send), Err(Refused::NotDraft));
        for closed in [Accepted, Rejected, Expired] {
            for s in [
                Step::Edit,
                Step::AddVersion,
                Step::Send,
                Step::Accept,
                Step::Reject,
            ] {
                assert_eq!(step(closed, s), Err(Refused::Closed), "{closed:?} {s:?}");
            }
        }
    }

    #[test]
    fn a_new_version_of_a_sent_offer_is_a_draft_again() {
        assert_eq!(step(Sent, Step::AddVersion), Ok(Draft));
        assert_eq!(step(Draft, Step::AddVersion), Ok(Draft));
    }

    #[test]
    fn discounts_take_the_better_one_then_the_coupon_on_what_is_left() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(applied_discount(d("10"), d("0"), d("5")), d("14.5"));
        assert_eq!(applied_discount(d("3"), d("7.5"), d("0")), d("7.5"));
        assert_eq!(applied_discount(d("0"), d("0"), d("0")), d("0"));
        assert_eq!(applied_discount(d("100"), d("0"), d("20")), d("100"));
        assert_eq!(applied_discount(d("0"), d("0"), d("100")), d("100"));
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(minor_units("PLN"), 2);
        assert_eq!(minor_units("JPY"), 0);
        assert_eq!(minor_units("KWD"), 3);
    }
}
