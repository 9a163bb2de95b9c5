//! One timeline per party, person and case, and full-text search over the contact history.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    error::{FieldViolations, Result},
    request::{self, optional_time, optional_uuid, timestamp},
    store::Page,
};
use crm_proto::crm::interactions::v1::{timeline_item::Item, *};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Interactions, convert,
    domain::{self, TimelineKind},
    store::{interactions, notes, tasks, timeline as store},
};

/// The longest search query taken.
const MAX_QUERY_CHARS: usize = 500;

impl Interactions {
    pub async fn get_timeline(&self, req: GetTimelineRequest) -> Result<GetTimelineResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(
            &'a str,
            &'a str,
            &'a str,
            &'a [i32],
            i32,
            Option<(i64, i32)>,
            Option<(i64, i32)>,
        );
        let mut v = FieldViolations::new();
        let filters = Filters(
            &req.party_id,
            &req.person_id,
            &req.case_id,
            &req.kinds,
            req.channel,
            req.occurred_after.map(|t| (t.seconds, t.nanos)),
            req.occurred_before.map(|t| (t.seconds, t.nanos)),
        );
        let page: Page<(DateTime<Utc>, Uuid)> =
            Page::new(req.page_size, &req.page_token, &filters, &mut v);
        v.check(
            page.after.is_none_or(|(at, _)| request::in_range(at)),
            "page_token",
            "is not a token from this timeline with these filters",
        );
        let owners = [
            optional_uuid(&req.party_id, "party_id", &mut v),
            optional_uuid(&req.person_id, "person_id", &mut v),
            optional_uuid(&req.case_id, "case_id", &mut v),
        ];
        let owner = owners.iter().flatten().next().copied();
        v.check(
            owners.iter().flatten().count() == 1 || !v.is_empty(),
            "party_id",
            "give exactly one of party_id, person_id and case_id",
        );
        let mut kinds: Vec<TimelineKind> = req
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| TimelineKind::require(*kind, &format!("kinds[{i}]"), &mut v))
            .collect();
        kinds.sort_by_key(|k| k.as_str());
        kinds.dedup();
        let filter = store::Filter {
            owner: owner.unwrap_or_default(),
            kinds,
            channel: domain::Channel::optional(req.channel, "channel", &mut v),
            after: optional_time(req.occurred_after.as_ref(), "occurred_after", &mut v),
            before: optional_time(req.occurred_before.as_ref(), "occurred_before", &mut v),
        };
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut entries = store::page(&mut conn, &filter, page.after, page.limit()).await?;
        let next_page_token = page.finish(&mut entries, |last| (last.occurred_at, last.item_id));

        let ids = |kind: TimelineKind| -> Vec<Uuid> {
            entries
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| e.item_id)
                .collect()
        };
        let found_interactions: HashMap<Uuid, Interaction> =
            interactions::get_many(&mut conn, &ids(TimelineKind::Interaction))
                .await?
                .iter()
                .map(|row| (row.id, convert::interaction(row)))
                .collect();
        let found_notes: HashMap<Uuid, Note> = notes::get_many(&mut conn, &ids(TimelineKind::Note))
            .await?
            .iter()
            .map(|row| (row.id, convert::note(row)))
            .collect();
        let found_tasks: HashMap<Uuid, Task> = tasks::get_many(&mut conn, &ids(TimelineKind::Task))
            .await?
            .iter()
            .map(|row| (row.id, convert::task(row)))
            .collect();
        let items = entries
            .into_iter()
            .filter_map(|entry| {
                let item = match entry.kind {
                    TimelineKind::Interaction => {
                        Item::Interaction(found_interactions.get(&entry.item_id)?.clone())
                    }
                    TimelineKind::Note => Item::Note(found_notes.get(&entry.item_id)?.clone()),
                    TimelineKind::Task => Item::Task(found_tasks.get(&entry.item_id)?.clone()),
                    _ => Item::Fact(fact(&entry)),
                };
                Some(TimelineItem {
                    id: entry.item_id.to_string(),
                    kind: entry.kind.to_proto() as i32,
                    occur_time: Some(timestamp(entry.occurred_at)),
                    item: Some(item),
                })
            })
            .collect();
        Ok(GetTimelineResponse {
            items,
            next_page_token,
        })
    }

    pub async fn search_interactions(
        &self,
        req: SearchInteractionsRequest,
    ) -> Result<SearchInteractionsResponse> {
        #[derive(Serialize)]
        struct Filters<'a>(&'a str, &'a str, &'a str, i32);
        let mut v = FieldViolations::new();
        let filters = Filters(&req.query, &req.party_id, &req.person_id, req.channel);
        let page: Page<(DateTime<Utc>, Uuid)> =
            Page::new(req.page_size, &req.page_token, &filters, &mut v);
        v.check(
            page.after.is_none_or(|(at, _)| request::in_range(at)),
            "page_token",
            "is not a token from this search",
        );
        let query = req.query.trim();
        v.check(
            !query.is_empty() && query.chars().count() <= MAX_QUERY_CHARS,
            "query",
            format!("is 1 to {MAX_QUERY_CHARS} characters"),
        );
        let party = optional_uuid(&req.party_id, "party_id", &mut v);
        let person = optional_uuid(&req.person_id, "person_id", &mut v);
        v.check(
            party.is_none() || person.is_none(),
            "person_id",
            "search by a party or by a person, not both",
        );
        let channel = domain::Channel::optional(req.channel, "channel", &mut v);
        v.finish()?;
        let mut conn = self.pool.acquire().await?;
        if !interactions::searchable(&mut conn, query).await? {
            return Err(FieldViolations::single(
                "query",
                "has no word to look for (only exclusions or stop characters)",
            )
            .into());
        }
        let mut rows = interactions::search(
            &mut conn,
            query,
            party.or(person),
            channel,
            page.after,
            page.limit(),
        )
        .await?;
        let next_page_token = page.finish(&mut rows, |last| (last.occurred_at, last.id));
        Ok(SearchInteractionsResponse {
            interactions: rows.iter().map(convert::interaction).collect(),
            next_page_token,
        })
    }
}

fn fact(entry: &store::Entry) -> Fact {
    Fact {
        source: entry.source.clone().unwrap_or_default(),
        r#type: entry.event_type.clone().unwrap_or_default(),
        reference: entry.reference.clone().unwrap_or_default(),
        summary: entry.summary.clone().unwrap_or_default(),
        attributes: entry
            .attributes
            .iter()
            .flat_map(|attributes| attributes.0.iter())
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect(),
    }
}
