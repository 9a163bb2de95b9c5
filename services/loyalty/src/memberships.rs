//! Memberships: parties enrolled in programs (with their consent), suspended and leaving.

use chrono::Utc;
use crm_kit::{
    error::{FieldViolations, Result, ServiceError},
    request::{self, optional_uuid, uuid},
    store::Page,
};
use crm_proto::crm::loyalty::v1::{
    EnrollRequest, GetMembershipRequest, LeaveProgramRequest, ListMembershipsRequest,
    ListMembershipsResponse, Membership, MembershipEnrolled, MembershipLeft, MembershipReactivated,
    MembershipSuspended, ReactivateMembershipRequest, SuspendMembershipRequest,
};
use uuid::Uuid;

use crate::domain;
use crate::{
    Loyalty,
    convert::membership_to_proto,
    error::Refusal,
    events,
    lookups::{membership_in, require_active_program},
    store::{self, MembershipRow},
};

impl Loyalty {
    pub async fn enroll(&self, subject: &str, req: EnrollRequest) -> Result<Membership> {
        let mut v = FieldViolations::new();
        let program_id = uuid(&req.program_id, "program_id", &mut v);
        let party_id = uuid(&req.party_id, "party_id", &mut v);
        v.finish()?;
        // Asked before the transaction: no row is locked while the peers answer.
        self.require_active_party(party_id).await?;
        let consent = self.require_enrolment_consent(party_id).await?;

        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, &req);
        // A withdrawal that loyalty heard of after the consent service answered wins; one it hears
        // of later waits for this enrolment on the party's row, then suspends the new membership.
        if !store::learn_consent(&mut tx, party_id, consent, true)
            .await?
            .granted
        {
            return Err(Refusal::consent_required(party_id, "WITHDRAWN").into());
        }
        let program = store::share_program(&mut tx, program_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Program", program_id))?;
        require_active_program(&program)?;
        let mut v = FieldViolations::new();
        v.check(
            program.kind == domain::ProgramKind::B2b || !req.pool_to_organization,
            "pool_to_organization",
            "only B2B programs pool points",
        );
        v.finish()?;
        let membership = MembershipRow {
            id: Uuid::now_v7(),
            program_id,
            party_id,
            status: domain::MembershipStatus::Active,
            pool_to_organization: req.pool_to_organization,
            tier: None,
            assigned_tier: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: subject.to_owned(),
            updated_by: subject.to_owned(),
            version: 1,
            suspended_for_consent: false,
        };
        let membership = if store::insert_membership(&mut tx, &membership).await? {
            membership
        } else {
            // A party that left comes back to its membership, with its accounts and history.
            let existing = store::lock_membership_of(&mut tx, program_id, party_id)
                .await?
                .filter(|m| m.status == domain::MembershipStatus::Left);
            let Some(existing) = existing else {
                let (party, program) = (party_id, program_id);
                return Err(Refusal::AlreadyEnrolled { party, program }.into());
            };
            store::set_membership_status(
                &mut tx,
                existing.id,
                domain::MembershipStatus::Active,
                subject,
            )
            .await?;
            existing
        };
        let event = MembershipEnrolled {
            membership_id: membership.id.to_string(),
            program_id: program_id.to_string(),
            party_id: party_id.to_string(),
        };
        events::MEMBERSHIP
            .enqueue(&mut tx, membership.id, &event)
            .await?;
        let membership = membership_in(&mut tx, membership.id).await?;
        claim.commit(tx, &membership).await?;
        Ok(membership)
    }

    pub async fn get_membership(&self, req: GetMembershipRequest) -> Result<Membership> {
        let id = request::id(&req.id, "id")?;
        membership_in(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn list_memberships(
        &self,
        req: ListMembershipsRequest,
    ) -> Result<ListMembershipsResponse> {
        let mut v = FieldViolations::new();
        let program = optional_uuid(&req.program_id, "program_id", &mut v);
        let party = optional_uuid(&req.party_id, "party_id", &mut v);
        v.check(
            program.is_some() || party.is_some(),
            "program_id",
            "give a program_id or a party_id",
        );
        let filter = (program, party);
        let page: Page<Uuid> = Page::new(req.page_size, &req.page_token, &filter, &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            store::list_memberships(&mut conn, program, party, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut rows, |last| last.id);
        Ok(ListMembershipsResponse {
            memberships: rows.iter().map(membership_to_proto).collect(),
            next_page_token,
        })
    }

    pub async fn suspend_membership(
        &self,
        subject: &str,
        req: SuspendMembershipRequest,
    ) -> Result<Membership> {
        let reason = req.reason.trim().to_owned();
        self.change_membership(
            subject,
            &req.id,
            &req,
            domain::MembershipStatus::Suspended,
            |id| MembershipSuspended {
                membership_id: id.to_string(),
                reason,
            },
            None,
        )
        .await
    }

    /// A suspension by hand ends by hand; one for a withdrawn consent ends with a new grant.
    pub async fn reactivate_membership(
        &self,
        subject: &str,
        req: ReactivateMembershipRequest,
    ) -> Result<Membership> {
        let mut v = FieldViolations::new();
        let id = uuid(&req.id, "id", &mut v);
        v.finish()?;
        let reason = req.reason.trim().to_owned();
        let membership = store::get_membership(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        self.change_membership(
            subject,
            &req.id,
            &req,
            domain::MembershipStatus::Active,
            |id| MembershipReactivated {
                membership_id: id.to_string(),
                reason,
            },
            Some(membership.party_id),
        )
        .await
    }

    pub async fn leave_program(
        &self,
        subject: &str,
        req: LeaveProgramRequest,
    ) -> Result<Membership> {
        self.change_membership(
            subject,
            &req.id,
            &req,
            domain::MembershipStatus::Left,
            |id| MembershipLeft {
                membership_id: id.to_string(),
            },
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_membership<M: prost::Name>(
        &self,
        subject: &str,
        id: &str,
        request: &(impl crm_kit::store::Idempotent + prost::Message),
        status: domain::MembershipStatus,
        event: impl FnOnce(Uuid) -> M,
        needs_consent_of: Option<Uuid>,
    ) -> Result<Membership>
    where
        events::MembershipTopic: crm_kit::outbox::Carries<M>,
    {
        let mut v = FieldViolations::new();
        let id = uuid(id, "id", &mut v);
        v.finish()?;
        let (mut tx, claim) = crm_kit::begin!(&self.pool, subject, request);
        // The party's consent row before the membership: the consent consumer's lock order.
        if let Some(party) = needs_consent_of
            && store::consent_known(&mut tx, party).await? == Some(false)
        {
            return Err(Refusal::consent_required(party, "WITHDRAWN").into());
        }
        let membership = store::lock_membership(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Membership", id))?;
        if let Some(party) = needs_consent_of {
            if party != membership.party_id {
                // Merged or erased since it was read: the consent checked was another party's.
                return Err(ServiceError::EtagMismatch("membership"));
            }
            if membership.suspended_for_consent {
                let why = "the membership waits for a new grant";
                return Err(Refusal::consent_required(party, why).into());
            }
        }
        if membership.status == domain::MembershipStatus::Left
            && status != domain::MembershipStatus::Left
        {
            return Err(Refusal::MembershipLeft { id }.into());
        }
        // Suspending by hand what a withdrawal suspended makes it a suspension by hand: a new
        // grant no longer lifts it.
        let takeover =
            status == domain::MembershipStatus::Suspended && membership.suspended_for_consent;
        if membership.status != status || takeover {
            store::set_membership_status(&mut tx, id, status, subject).await?;
        }
        if membership.status != status {
            events::MEMBERSHIP.enqueue(&mut tx, id, &event(id)).await?;
        }
        let membership = membership_in(&mut tx, id).await?;
        claim.commit(tx, &membership).await?;
        Ok(membership)
    }
}
