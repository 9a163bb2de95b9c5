//! Offers: created with a first version, edited while drafts, versioned, sent, then accepted
//! (one sales order request), rejected or expired by the sweep; rendered from templates.

pub mod lines;
pub mod render;

use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use crm_kit::{
    error::{FieldViolations, Result, ServiceError, check_etag},
    request::{self, currency, date, mask_paths, optional_uuid, required, uuid},
    shutdown::Shutdown,
    store::Page,
};
use crm_proto::crm::cases::v1::*;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    Cases, convert,
    domain::offers::{self as rules, OfferStatus, Refused, Step},
    error::Refusal,
    events,
    store::{
        cases as case_store,
        offers::{self as store, Filter, OfferRow},
    },
};

/// What UpdateOffer may change.
const EDITABLE: &[&str] = &["title", "case_id", "locale", "valid_until", "notes"];

/// What prices every version, set at creation like the currency: a version is priced, sent and
/// accepted on the same terms.
const PRICING: &[&str] = &["price_list", "membership_id"];

/// How long an offer is valid when it does not say.
const DEFAULT_VALIDITY: Days = Days::new(30);

/// Versions an offer may have: each is kept whole, and the answer carries them all.
const MAX_VERSIONS: usize = 100;

impl Cases {
    pub async fn create_offer(&self, caller: &str, req: CreateOfferRequest) -> Result<Offer> {
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let input = required(req.offer.clone(), "offer", &mut v);
        let today = Utc::now().date_naive();
        let now = Utc::now();
        let mut row = OfferRow {
            id: Uuid::now_v7(),
            party_id: uuid(&input.party_id, "offer.party_id", &mut v),
            case_id: None,
            title: String::new(),
            currency_code: currency(&input.currency_code, "offer.currency_code", &mut v),
            locale: render::DEFAULT_LOCALE.to_owned(),
            valid_until: today + DEFAULT_VALIDITY,
            price_list: String::new(),
            membership_id: None,
            notes: String::new(),
            status: OfferStatus::Draft,
            accepted_version: None,
            order_request_id: None,
            reject_reason: String::new(),
            client_reference: String::new(),
            sent_at: None,
            decided_at: None,
            created_at: now,
            updated_at: now,
            created_by: caller.to_owned(),
            updated_by: caller.to_owned(),
            version: 1,
        };
        for path in EDITABLE.iter().chain(PRICING) {
            let given = match *path {
                "locale" => !input.locale.is_empty(),
                "valid_until" => input.valid_until.is_some(),
                _ => true,
            };
            if given {
                set_field(&mut row, &input, path, today, &mut v);
            }
        }
        let draft = lines::read(&req.lines, &req.coupon_code, "lines", &mut v);
        v.finish()?;
        self.require_clients(Some(row.party_id), &[], "offer")
            .await?;
        if let Some(membership) = row.membership_id {
            self.require_membership_of(row.party_id, membership, "offer.membership_id")
                .await?;
        }
        self.require_case_of(&mut *self.pool.acquire().await?, &row)
            .await?;
        let first = self.price(&row, draft, 1, caller, "lines").await?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        store::insert(&mut tx, &row).await?;
        store::insert_version(&mut tx, &first).await?;
        let offer = answer(&mut tx, row.id).await?;
        events::offer_changed(&mut tx, &offer, "created").await?;
        claim.commit(tx, &offer).await?;
        Ok(offer)
    }

    pub async fn get_offer(&self, req: GetOfferRequest) -> Result<Offer> {
        let id = request::id(&req.id, "id")?;
        answer(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn update_offer(&self, caller: &str, req: UpdateOfferRequest) -> Result<Offer> {
        let mut v = FieldViolations::new();
        let input = required(req.offer.clone(), "offer", &mut v);
        let id = uuid(&input.id, "offer.id", &mut v);
        let paths = mask_paths(req.update_mask.as_ref(), EDITABLE, &mut v);
        v.finish()?;
        let today = Utc::now().date_naive();
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Offer", id))?;
        check_etag("offer", &input.etag, row.version)?;
        take(&row, Step::Edit)?;
        let mut v = FieldViolations::new();
        for path in &paths {
            set_field(&mut row, &input, path, today, &mut v);
        }
        v.finish()?;
        if paths.contains(&"case_id") {
            self.require_case_of(&mut tx, &row).await?;
        }
        store::update(&mut tx, &row, caller).await?;
        let offer = answer(&mut tx, id).await?;
        events::offer_changed(&mut tx, &offer, "updated").await?;
        claim.commit(tx, &offer).await?;
        Ok(offer)
    }

    pub async fn list_offers(&self, req: ListOffersRequest) -> Result<ListOffersResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(&'a str, &'a str, i32);
        let mut v = FieldViolations::new();
        let filters = Filters(&req.party_id, &req.case_id, req.status);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filters, &mut v);
        let filter = Filter {
            party: optional_uuid(&req.party_id, "party_id", &mut v),
            case: optional_uuid(&req.case_id, "case_id", &mut v),
            status: OfferStatus::optional(req.status, "status", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let current = store::current_versions(&mut conn, &ids).await?;
        let offers = rows
            .iter()
            .map(|row| convert::offer(row, current.get(&row.id).into_iter()))
            .collect();
        Ok(ListOffersResponse {
            offers,
            next_page_token,
        })
    }

    pub async fn add_offer_version(
        &self,
        caller: &str,
        req: AddOfferVersionRequest,
    ) -> Result<Offer> {
        crm_kit::replay_first!(&self.pool, caller, &req);
        let mut v = FieldViolations::new();
        let id = uuid(&req.offer_id, "offer_id", &mut v);
        let draft = lines::read(&req.lines, &req.coupon_code, "lines", &mut v);
        v.finish()?;
        let (seen, count) = {
            let mut conn = self.pool.acquire().await?;
            let row = store::get(&mut conn, id)
                .await?
                .ok_or_else(|| ServiceError::not_found("Offer", id))?;
            (row, store::versions(&mut conn, id).await?.len())
        };
        check_etag("offer", &req.etag, seen.version)?;
        take(&seen, Step::AddVersion)?;
        if count >= MAX_VERSIONS {
            return Err(Refusal::TooManyVersions {
                id,
                most: MAX_VERSIONS,
            }
            .into());
        }
        let next = self
            .price(&seen, draft, count as i32 + 1, caller, "lines")
            .await?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Offer", id))?;
        // Priced from what was read before loyalty was asked: anything since is another's change.
        if row.version != seen.version {
            return Err(ServiceError::EtagMismatch("offer"));
        }
        row.status = take(&row, Step::AddVersion)?;
        store::insert_version(&mut tx, &next).await?;
        store::update(&mut tx, &row, caller).await?;
        let offer = answer(&mut tx, id).await?;
        events::offer_changed(&mut tx, &offer, "versioned").await?;
        claim.commit(tx, &offer).await?;
        Ok(offer)
    }

    pub async fn send_offer(&self, caller: &str, req: SendOfferRequest) -> Result<Offer> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Offer", id))?;
        check_etag("offer", &req.etag, row.version)?;
        row.status = take(&row, Step::Send)?;
        require_valid(&row)?;
        row.sent_at = Some(Utc::now());
        store::update(&mut tx, &row, caller).await?;
        let offer = answer(&mut tx, id).await?;
        events::offer_changed(&mut tx, &offer, "sent").await?;
        claim.commit(tx, &offer).await?;
        Ok(offer)
    }

    pub async fn accept_offer(&self, caller: &str, req: AcceptOfferRequest) -> Result<Offer> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.check(
            req.version >= 1,
            "version",
            "must be the version the client accepts (the current one)",
        );
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Offer", id))?;
        let accepted_already =
            row.status == OfferStatus::Accepted && row.accepted_version == Some(req.version);
        if accepted_already {
            // The same acceptance again (a retry without its request_id): nothing new happens.
            let offer = answer(&mut tx, id).await?;
            claim.commit(tx, &offer).await?;
            return Ok(offer);
        }
        check_etag("offer", &req.etag, row.version)?;
        row.status = take(&row, Step::Accept)?;
        require_valid(&row)?;
        let versions = store::versions(&mut tx, id).await?;
        let current = versions
            .last()
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("offer {id} has no version")))?;
        if req.version != current.number {
            return Err(Refusal::NotCurrentVersion {
                id,
                version: req.version,
                current: current.number,
            }
            .into());
        }
        let now = Utc::now();
        row.accepted_version = Some(current.number);
        row.order_request_id = Some(Uuid::now_v7());
        row.decided_at = Some(now);
        row.client_reference = req.client_reference.trim().to_owned();
        store::update(&mut tx, &row, caller).await?;
        let order = convert::sales_order(&row, current, caller, now);
        events::order_requested(&mut tx, &order).await?;
        let offer = answer(&mut tx, id).await?;
        events::offer_changed(&mut tx, &offer, "accepted").await?;
        claim.commit(tx, &offer).await?;
        Ok(offer)
    }

    pub async fn reject_offer(&self, caller: &str, req: RejectOfferRequest) -> Result<Offer> {
        let id = request::id(&req.id, "id")?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, caller, &req);
        let mut row = store::lock(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Offer", id))?;
        check_etag("offer", &req.etag, row.version)?;
        row.status = take(&row, Step::Reject)?;
        row.reject_reason = req.reason.trim().to_owned();
        row.decided_at = Some(Utc::now());
        store::update(&mut tx, &row, caller).await?;
        let offer = answer(&mut tx, id).await?;
        events::offer_changed(&mut tx, &offer, "rejected").await?;
        claim.commit(tx, &offer).await?;
        Ok(offer)
    }

    /// Expires sent offers past their last valid day: at start, then every minute until
    /// shutdown.
    pub async fn expire_offers(self, shutdown: Shutdown) {
        loop {
            if let Err(error) = self.expire_due().await {
                tracing::warn!(%error, "expiring offers failed; retrying");
            }
            if !shutdown.sleep(Duration::from_secs(60)).await {
                return;
            }
        }
    }

    /// Expires every sent offer past its last valid day (UTC), a hundred per transaction; how many.
    pub async fn expire_due(&self) -> Result<usize> {
        let mut expired = 0;
        loop {
            let today = Utc::now().date_naive();
            let mut tx = self.pool.begin().await?;
            let due = store::lock_expired(&mut tx, today, 100).await?;
            if due.is_empty() {
                return Ok(expired);
            }
            for mut row in due {
                row.status = OfferStatus::Expired;
                row.decided_at = Some(Utc::now());
                store::update(&mut tx, &row, "crm-cases").await?;
                let offer = answer(&mut tx, row.id).await?;
                events::offer_changed(&mut tx, &offer, "expired").await?;
                expired += 1;
            }
            tx.commit().await?;
        }
    }

    /// The case an offer names must exist and be about the offer's party, when it names one.
    async fn require_case_of(&self, conn: &mut PgConnection, row: &OfferRow) -> Result<()> {
        let Some(case_id) = row.case_id else {
            return Ok(());
        };
        let case = case_store::get(conn, case_id)
            .await?
            .ok_or_else(|| FieldViolations::single("offer.case_id", "is not a case"))?;
        if case.party_id.is_some_and(|party| party != row.party_id) {
            return Err(
                FieldViolations::single("offer.case_id", "is a case of another party").into(),
            );
        }
        Ok(())
    }
}

/// The status after `step`, or the refusal that names why not.
fn take(row: &OfferRow, step: Step) -> Result<OfferStatus> {
    rules::step(row.status, step).map_err(|refused| {
        let (id, status) = (row.id, row.status.as_str());
        match refused {
            Refused::Closed => Refusal::OfferClosed { id, status },
            Refused::NotDraft => Refusal::OfferNotDraft { id, status },
            Refused::NotSent => Refusal::OfferNotSent { id, status },
        }
        .into()
    })
}

/// A client may act on an offer through its last valid day (UTC).
fn require_valid(row: &OfferRow) -> Result<()> {
    if row.valid_until < Utc::now().date_naive() {
        return Err(Refusal::OfferExpired {
            id: row.id,
            valid_until: row.valid_until,
        }
        .into());
    }
    Ok(())
}

/// Sets one editable field of `row` from `input`, checked; violations name `offer.<path>`.
fn set_field(
    row: &mut OfferRow,
    input: &Offer,
    path: &str,
    today: NaiveDate,
    v: &mut FieldViolations,
) {
    let field = format!("offer.{path}");
    let field = field.as_str();
    match path {
        "title" => row.title = input.title.trim().to_owned(),
        "case_id" => row.case_id = optional_uuid(&input.case_id, field, v),
        "locale" => match render::template_locale(&input.locale) {
            Some(locale) => row.locale = locale.to_owned(),
            None => v.add(
                field,
                format!("has no template; one of {}", render::LOCALES.join(", ")),
            ),
        },
        "valid_until" => match date(input.valid_until.as_ref(), field, v) {
            Some(day) if day < today => v.add(field, "is in the past"),
            Some(day) => row.valid_until = day,
            None => v.check(input.valid_until.is_some(), field, "is required"),
        },
        "price_list" => {
            row.price_list = match input.price_list.trim() {
                "" => String::new(),
                list => request::code(list, field, v),
            }
        }
        "membership_id" => row.membership_id = optional_uuid(&input.membership_id, field, v),
        _ => row.notes = input.notes.trim_end().to_owned(),
    }
}

/// The offer as the API answers it, with every version.
pub(crate) async fn answer(conn: &mut PgConnection, id: Uuid) -> Result<Offer> {
    let row = store::get(conn, id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Offer", id))?;
    let versions = store::versions(conn, id).await?;
    Ok(convert::offer(&row, versions.iter()))
}
