//! Loyalty's view of each party's loyalty_program consent (see the `party_consents` migration).

use crm_kit::store::Tx;
use uuid::Uuid;

/// What became of a party's consent once something was learned about it.
pub struct Learned {
    /// Whether the consent counts, from the newest record known.
    pub granted: bool,
    /// Whether what was learned is the newest (false: something newer was known already).
    pub newest: bool,
}

/// Records that `record` grants or no longer grants the party's consent, unless something newer
/// is known, and locks the party's row until the transaction ends either way.
pub async fn learn_consent(
    tx: &mut Tx,
    party: Uuid,
    record: Uuid,
    granted: bool,
) -> sqlx::Result<Learned> {
    let stage: i16 = if granted { 0 } else { 1 };
    let (granted, newest): (bool, bool) = sqlx::query_as(
        "INSERT INTO party_consents AS c (party_id, record_id, stage, granted) VALUES ($1, $2, $3, $4)
         ON CONFLICT (party_id) DO UPDATE SET
             record_id = CASE WHEN (excluded.record_id, excluded.stage) > (c.record_id, c.stage)
                 THEN excluded.record_id ELSE c.record_id END,
             stage = CASE WHEN (excluded.record_id, excluded.stage) > (c.record_id, c.stage)
                 THEN excluded.stage ELSE c.stage END,
             granted = CASE WHEN (excluded.record_id, excluded.stage) > (c.record_id, c.stage)
                 THEN excluded.granted ELSE c.granted END,
             updated_at = now()
         RETURNING c.granted, (c.record_id, c.stage) = ($2, $3)",
    )
    .bind(party)
    .bind(record)
    .bind(stage)
    .bind(granted)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Learned { granted, newest })
}

/// Whether the party's consent counts, as far as loyalty has heard (`None`: nothing yet), with
/// its row locked against a change until the transaction ends.
pub async fn consent_known(tx: &mut Tx, party: Uuid) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("SELECT granted FROM party_consents WHERE party_id = $1 FOR SHARE")
        .bind(party)
        .fetch_optional(&mut **tx)
        .await
}

/// Forgets an erased party's consent.
pub async fn forget_consent(tx: &mut Tx, party: Uuid) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM party_consents WHERE party_id = $1")
            .bind(party)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}
