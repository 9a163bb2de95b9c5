//! `consumer::caught_up`, which `crm up` asks before it stops its in-process broker: false while
//! a consumer group has events left to take, true once it has committed the end of its topic.
//! Its own test binary: the answer covers every group the process has run.

use std::{sync::Arc, time::Duration};

use crm_kit::{
    consumer::{self, ConsumerOptions, Event, HandleError, Handler},
    shutdown,
    store::Tx,
};
use crm_testkit::{Broker, TestDatabase, eventually};
use rdkafka::producer::FutureRecord;
use tokio::sync::Semaphore;

const TOPIC: &str = "crm.test.backlog.v1";

/// Takes an event only when the test lets it.
struct Gated(Arc<Semaphore>);

impl Handler for Gated {
    async fn handle(&self, _tx: &mut Tx, _event: &Event) -> Result<(), HandleError> {
        self.0
            .acquire()
            .await
            .expect("the gate stays open")
            .forget();
        Ok(())
    }
}

#[tokio::test]
async fn a_group_is_caught_up_once_it_has_taken_every_event() {
    let database = TestDatabase::create().await.unwrap();
    let broker = Broker::start().await.unwrap();
    let pool = database.kit_pool().await.unwrap();
    let kafka = broker.kafka(2);
    kafka.ensure_topics(&[TOPIC.into()]).await.unwrap();
    let producer = kafka.producer().unwrap();
    for i in 0..4 {
        let key = format!("key-{i}");
        let record = FutureRecord::to(TOPIC).key(&key).payload("thing");
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }

    let gate = Arc::new(Semaphore::new(1));
    let (trigger, shutdown) = shutdown::channel();
    let options = ConsumerOptions::new("test-backlog", &[TOPIC]);
    let running = tokio::spawn(consumer::run(
        pool.clone(),
        kafka.clone(),
        options,
        Gated(gate.clone()),
        shutdown,
    ));

    // One event taken, three waiting at the gate.
    eventually(Duration::from_secs(20), || async {
        (gate.available_permits() == 0).then_some(())
    })
    .await
    .expect("the consumer takes the first event");
    assert!(!consumer::caught_up().await, "three events are left");

    gate.add_permits(3);
    eventually(Duration::from_secs(20), || async {
        consumer::caught_up().await.then_some(())
    })
    .await
    .expect("caught up once every event is taken and committed");

    trigger.trigger();
    running.await.unwrap().unwrap();
}
