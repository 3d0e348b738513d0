//! The storage thread on a real queue: requests are served in the order
//! they were sent, a play queued serves the parked standing orders, and
//! the queue depths are reported after the writes that change them.

use std::sync::{Arc, Mutex};

use super::*;
use crate::delivery::tests::Fake;
use crate::delivery::{Next, Step};
use crate::scrobble::test_listen as listen;

fn play(i: u64) -> Play {
    Play {
        listen: listen(i),
        routed: vec![("a".to_owned(), listen(i))],
        info: PlayInfo::default(),
    }
}

fn step() -> Step {
    Step::new("a", Arc::new(Fake::new(50)))
}

#[tokio::test]
async fn a_play_queued_is_handed_to_the_flusher_waiting_for_it_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["a", "b"]).unwrap();
    let store = Store::start(queue.clone(), None).unwrap();
    let mut order = store.standing_order(step());
    assert_eq!(store.len("a").await, 0);
    assert!(order.try_recv().is_err(), "nothing queued: parked");
    let written = store.enqueue(vec![play(1)]).await;
    assert_eq!((written.count, written.failed.is_none()), (1, true));
    // The order was answered before the writer was.
    let Ok(Ok(Next::Send(batch))) = order.try_recv() else {
        panic!("the play was not handed over");
    };
    assert_eq!(batch.items, [(batch.items[0].0, listen(1))]);
    let (id, _) = queue.target("a").in_flight().unwrap().expect("recorded");
    assert_eq!(id, batch.first_flight);
    assert_eq!(store.len("b").await, 0, "routed to a only");
    assert_eq!(
        queue.history().unwrap().unwrap().len(),
        1,
        "in the history too"
    );
}

#[tokio::test]
async fn requests_are_served_in_the_order_they_were_sent() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["a"]).unwrap();
    let store = Store::start(queue.clone(), None).unwrap();
    store.enqueue(vec![play(1), play(2)]).await;
    let Next::Send(batch) = store.step(step()).await.unwrap() else {
        panic!("two plays to send");
    };
    let keys: Vec<Key> = batch.items.iter().map(|(k, _)| *k).collect();
    // A settling write not awaited is done before the next request.
    let settled = store.settle("a", batch.first_flight, keys.clone(), Vec::new());
    assert_eq!(store.items("a", keys).await.unwrap(), []);
    assert_eq!(store.len("a").await, 0);
    settled.await.unwrap().unwrap();
    let counts = store.counts(None).await;
    assert!(counts.open);
    assert_eq!(counts.targets["a"], TargetCounts::default());
    assert_eq!(counts.history["plays"], 2);
    store.flush().await.unwrap();
}

#[tokio::test]
async fn the_depths_are_reported_after_a_play_and_after_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["a"]).unwrap();
    let reported: Arc<Mutex<Vec<usize>>> = Arc::default();
    let report: DepthReport = {
        let reported = Arc::clone(&reported);
        Box::new(move |depths| {
            assert_eq!(depths[0].name, "a");
            assert_eq!(depths[0].oldest.is_some(), depths[0].queued > 0);
            reported.lock().unwrap().push(depths[0].queued);
        })
    };
    let store = Store::start(queue, Some(report)).unwrap();
    store.enqueue(vec![play(1), play(2)]).await;
    let Next::Send(batch) = store.step(step()).await.unwrap() else {
        panic!("two plays to send");
    };
    let keys = batch.items.iter().map(|(k, _)| *k).collect();
    store
        .settle("a", batch.first_flight, keys, Vec::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *reported.lock().unwrap(),
        [0, 2, 0],
        "at start, then per change"
    );
}
