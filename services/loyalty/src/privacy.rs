//! The loyalty service's side of data-subject requests. Export: the subject's memberships, point
//! accounts, operations, cards, coupons, discounts and invoice lines. Erasure: the ledger and the
//! invoice lines are financial records and stay, but every link to the person is replaced by a
//! random pseudonym that is stored nowhere, so they no longer lead to anyone.

use crm_kit::{
    privacy::{Erasure, Export, Participant, Subject, retained},
    store::Tx,
};
use crm_proto::crm::loyalty::v1::MembershipLeft;
use uuid::Uuid;

use crate::{events, store};

/// Who erasures are recorded as (`updated_by`).
const ERASER: &str = "crm-privacy";

/// The subject's accounts: those of memberships held by the party, and B2B person accounts.
const ACCOUNTS: &str = "SELECT a.* FROM accounts a
    WHERE a.person_id = $1 OR a.membership_id IN (SELECT id FROM memberships WHERE party_id = $1)";

pub struct LoyaltyPrivacy;

impl Participant for LoyaltyPrivacy {
    async fn export(&self, tx: &mut Tx, subject: Subject) -> anyhow::Result<Export> {
        let id = subject.id();
        let export = Export::default()
            .table(tx, "memberships", "SELECT * FROM memberships WHERE party_id = $1 ORDER BY id", id)
            .await?
            .table(tx, "accounts", ACCOUNTS, id)
            .await?
            .table(
                tx,
                "operations",
                "SELECT o.* FROM operations o WHERE o.account_id IN (SELECT a.id FROM accounts a
                     WHERE a.person_id = $1 OR a.membership_id IN (SELECT id FROM memberships WHERE party_id = $1))
                 ORDER BY o.created_at, o.id",
                id,
            )
            .await?
            .table(
                tx,
                "cards",
                "SELECT * FROM cards WHERE person_id = $1
                     OR membership_id IN (SELECT id FROM memberships WHERE party_id = $1) ORDER BY id",
                id,
            )
            .await?
            .table(
                tx,
                "coupons",
                "SELECT * FROM coupons WHERE membership_id IN (SELECT id FROM memberships WHERE party_id = $1)",
                id,
            )
            .await?
            .table(tx, "discounts", "SELECT * FROM discounts WHERE party_id = $1 ORDER BY id", id)
            .await?
            .table(
                tx,
                "party_consents",
                "SELECT * FROM party_consents WHERE party_id = $1",
                id,
            )
            .await?
            .table(
                tx,
                "invoice_lines",
                "SELECT * FROM invoice_lines WHERE party_id = $1 ORDER BY invoice_id, line_id",
                id,
            )
            .await?;
        Ok(export)
    }

    async fn erase(&self, tx: &mut Tx, subject: Subject, _: Uuid) -> anyhow::Result<Erasure> {
        let id = subject.id();
        let pseudonym = Uuid::new_v4();
        // In the lock order of the other paths: the party's consent row and invoice lines before
        // its memberships, memberships before their accounts and cards.
        let consents = store::forget_consent(tx, id).await?;
        let invoice_lines = store::pseudonymise_invoice_lines(tx, id, pseudonym).await?;
        let memberships = store::end_memberships_of(tx, id, pseudonym, ERASER).await?;
        for (membership, ended_now) in &memberships {
            if *ended_now {
                let event = MembershipLeft {
                    membership_id: membership.to_string(),
                };
                events::MEMBERSHIP.enqueue(tx, *membership, &event).await?;
            }
        }
        let memberships: Vec<Uuid> = memberships.into_iter().map(|(id, _)| id).collect();
        let accounts = store::pseudonymise_accounts(tx, id, pseudonym).await?;
        let cards = store::block_cards_of(tx, id, pseudonym, &memberships, ERASER).await?;
        let discounts = store::delete_discounts_of(tx, id).await?;

        let mut erasure = Erasure {
            found: !memberships.is_empty()
                || accounts + cards + discounts + invoice_lines + consents > 0,
            related_ids: memberships.clone(),
            ..Erasure::default()
        };
        if !memberships.is_empty() {
            erasure.erased.push(format!(
                "link from {} membership(s) to the person (now a pseudonym; memberships ended)",
                memberships.len()
            ));
            erasure.retained.push(retained(
                "the memberships' point accounts, ledger entries and operations",
                "accounting records of issued and redeemed points (Polish Accounting Act art. 74); linked to no one",
            ));
        }
        if accounts > 0 {
            erasure.erased.push(format!(
                "link from {accounts} B2B person account(s) to the person"
            ));
        }
        if cards > 0 {
            erasure.erased.push(format!(
                "link from {cards} card(s) to the person; active cards blocked"
            ));
        }
        if discounts > 0 {
            erasure
                .erased
                .push(format!("{discounts} personal discount(s)"));
        }
        if consents > 0 {
            erasure
                .erased
                .push("the loyalty program consent loyalty knew of".into());
        }
        if invoice_lines > 0 {
            erasure.erased.push(format!(
                "link from {invoice_lines} invoice line(s) to the person"
            ));
            erasure.retained.push(retained(
                format!("{invoice_lines} invoice line(s) (amounts, invoice ids)"),
                "tax records (Polish Tax Ordinance art. 86); linked to no one",
            ));
        }
        Ok(erasure)
    }
}
