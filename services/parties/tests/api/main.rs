//! The parties service through its public gRPC API, against real PostgreSQL and a real
//! Kafka-protocol broker (tansu).

// `assert_eq!(ids, [id.clone()])` reads as the list a user expects; `slice::from_ref` would not.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod bases;
mod custom_fields;
mod merges;
mod parties;
mod persons;
mod platform;

use crm_kit::app::Service;
use std::time::Duration;

use crm_kit::client::TracedChannel;
use crm_proto::crm::{
    common::v1::{Date, PostalAddress},
    parties::v1::{parties_service_client::PartiesServiceClient, *},
};
use crm_testkit::{TestService, read_topic, token};
use prost::Message;
use prost_types::FieldMask;
use sqlx::Row;
use tonic::Code;
use tonic_types::StatusExt;

const PARTIES: Service = crm_parties::SERVICE;

type Client = PartiesServiceClient<TracedChannel>;

async fn start() -> (TestService, Client) {
    let service = TestService::start(&PARTIES)
        .await
        .expect("starting the parties service");
    let client = PartiesServiceClient::new(
        service.channel(&token("tester", &["parties.read", "parties.write"])),
    );
    (service, client)
}

fn organization(name: &str) -> Party {
    Party {
        kind: PartyKind::Organization as i32,
        display_name: name.into(),
        ..Default::default()
    }
}

fn natural_person(given: &str, family: &str) -> Party {
    Party {
        kind: PartyKind::Person as i32,
        person_name: Some(PersonName {
            given_name: given.into(),
            family_name: family.into(),
        }),
        ..Default::default()
    }
}

fn contact(kind: ContactPointKind, value: &str) -> ContactPoint {
    ContactPoint {
        kind: kind as i32,
        value: value.into(),
        ..Default::default()
    }
}

async fn create(client: &mut Client, party: Party) -> Party {
    client
        .create_party(CreatePartyRequest {
            party: Some(party),
            ..Default::default()
        })
        .await
        .expect("CreateParty")
        .into_inner()
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries a BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

fn without_audit(party: &Party) -> Party {
    Party {
        audit: None,
        ..party.clone()
    }
}
