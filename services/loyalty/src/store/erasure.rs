//! What an erasure changes: the subject's links become a random pseudonym, their memberships end,
//! their cards are blocked and their personal discounts go; the ledger stays, as the law asks.

use crm_kit::store::Tx;
use uuid::Uuid;

/// Ends the subject's memberships under `pseudonym`; returns each with whether it ended now.
pub async fn end_memberships_of(
    tx: &mut Tx,
    subject: Uuid,
    pseudonym: Uuid,
    by: &str,
) -> sqlx::Result<Vec<(Uuid, bool)>> {
    super::lock_memberships_of(tx, &[subject]).await?;
    sqlx::query_as(
        "UPDATE memberships m SET party_id = $2, status = 'left', updated_at = now(),
             updated_by = $3, version = m.version + 1
         FROM memberships before
         WHERE before.id = m.id AND m.party_id = $1
         RETURNING m.id, before.status <> 'left'",
    )
    .bind(subject)
    .bind(pseudonym)
    .bind(by)
    .fetch_all(&mut **tx)
    .await
}

pub async fn pseudonymise_accounts(
    tx: &mut Tx,
    person: Uuid,
    pseudonym: Uuid,
) -> sqlx::Result<u64> {
    // In the postings' order: the accounts' memberships, then the accounts, each in id order.
    sqlx::query(
        "SELECT 1 FROM memberships m WHERE m.id IN (SELECT membership_id FROM accounts WHERE person_id = $1)
         ORDER BY m.id FOR NO KEY UPDATE",
    )
    .bind(person)
    .execute(&mut **tx)
    .await?;
    sqlx::query("SELECT 1 FROM accounts WHERE person_id = $1 ORDER BY id FOR UPDATE")
        .bind(person)
        .execute(&mut **tx)
        .await?;
    Ok(
        sqlx::query("UPDATE accounts SET person_id = $2 WHERE person_id = $1")
            .bind(person)
            .bind(pseudonym)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

/// Blocks the open cards of the person or of the memberships, and unlinks the person.
pub async fn block_cards_of(
    tx: &mut Tx,
    person: Uuid,
    pseudonym: Uuid,
    memberships: &[Uuid],
    by: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE cards SET person_id = CASE WHEN person_id = $1 THEN $2 ELSE person_id END,
             status = CASE WHEN status IN ('issued', 'active') THEN 'blocked' ELSE status END,
             block_reason = CASE WHEN status IN ('issued', 'active') THEN 'holder erased' ELSE block_reason END,
             updated_at = now(), updated_by = $4
         WHERE person_id = $1 OR membership_id = ANY($3)",
    )
    .bind(person)
    .bind(pseudonym)
    .bind(memberships)
    .bind(by)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

pub async fn delete_discounts_of(tx: &mut Tx, party: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM discounts WHERE party_id = $1")
        .bind(party)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

pub async fn pseudonymise_invoice_lines(
    tx: &mut Tx,
    party: Uuid,
    pseudonym: Uuid,
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE invoice_lines SET party_id = $2 WHERE party_id = $1")
            .bind(party)
            .bind(pseudonym)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}
