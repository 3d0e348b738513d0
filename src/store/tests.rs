//! The storage thread on a real queue: requests are served in the order
//! they were sent, a play queued serves the parked standing orders, and
//! the queue depths are reported after the writes that change them.

use std::sync::{Arc, Mutex};

use super::*;
use super::{Next, Step};
use crate::model::test_listen as listen;
use crate::store::HistorySummary;
use crate::targets::fake::Fake;

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
    let db = HistoryDb::open_reader(dir.path()).unwrap().unwrap();
    assert_eq!(db.len().unwrap(), 1, "in the history too");
    // Applied without a sync of its own: the outbox keeps it until a
    // synced commit covers it, here the one at shutdown.
    assert!(
        !queue.outbox(usize::MAX).unwrap().is_empty(),
        "kept until synced"
    );
    store.flush().await.unwrap();
    assert!(
        queue.outbox(usize::MAX).unwrap().is_empty(),
        "applied, synced, done"
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
    assert_eq!(
        counts.history,
        HistorySummary::Plays {
            plays: 2,
            first_started: Some(listen(1).started_at)
        }
    );
    // The delivery marks are in the history at once, and durable with the
    // next synced commit.
    let mut delivered = 0;
    HistoryDb::open_reader(dir.path())
        .unwrap()
        .unwrap()
        .select(&Filter::default(), true, |r| {
            delivered += r.record.delivered.len();
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(delivered, 2);
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

#[tokio::test]
async fn import_and_backfill_skip_what_the_history_says_a_target_has() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["a", "b"]).unwrap();
    let store = Store::start(queue.clone(), None).unwrap();
    store.enqueue(vec![play(1)]).await;
    // Played once, queued for "a" only: a re-import queues it for "b" only.
    let r = store
        .import(vec![listen(1), listen(2)], None)
        .await
        .unwrap();
    assert_eq!(r.recorded, 1);
    assert_eq!(r.queued["a"], 1);
    assert_eq!(r.queued["b"], 2);
    let r = store
        .import(vec![listen(1), listen(2)], None)
        .await
        .unwrap();
    assert_eq!((r.added, r.skipped), (0, 2));
    assert_eq!(store.len("a").await, 2);
    // A backfill for one target only.
    let r = store
        .import(vec![listen(3)], Some("b".into()))
        .await
        .unwrap();
    assert_eq!(r.queued.get("a"), None);
    assert_eq!(r.queued["b"], 1);
    assert_eq!(store.len("a").await, 2);
    assert_eq!(store.len("b").await, 3);
    let db = HistoryDb::open_reader(dir.path()).unwrap().unwrap();
    assert_eq!(db.len().unwrap(), 3);
    assert_eq!(
        store.prune_history(u64::MAX).await.unwrap(),
        0,
        "all queued"
    );
}

#[tokio::test]
async fn a_sled_history_of_an_older_release_moves_at_the_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The old layout: records in the sled tree `history`.
        let queue = Queue::open(dir.path(), &["a"]).unwrap();
        queue.old_history_fixture(2500);
    }
    let queue = Queue::open(dir.path(), &["a"]).unwrap();
    let store = Store::start(queue.clone(), None).unwrap();
    store.flush().await.unwrap();
    let db = HistoryDb::open_reader(dir.path()).unwrap().unwrap();
    assert_eq!(db.len().unwrap(), 2500);
    assert!(queue.old_history().unwrap().is_empty(), "the tree is gone");
}

#[tokio::test]
async fn the_history_commit_is_synced_once_the_outbox_holds_enough() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["a"]).unwrap();
    let store = Store::start(queue.clone(), None).unwrap();
    let mut most = 0;
    for i in 0..300 {
        store.enqueue(vec![play(i)]).await;
        most = most.max(queue.outbox(usize::MAX).unwrap().len());
    }
    // Each play leaves its record and its queue mark; a synced commit
    // empties the outbox when it reaches the bound, so it never grows past.
    assert!(most >= OUTBOX_SYNC_AT - 2, "the outbox filled up to {most}");
    assert!(most <= OUTBOX_SYNC_AT, "the outbox grew to {most}");
    let db = HistoryDb::open_reader(dir.path()).unwrap().unwrap();
    assert_eq!(db.len().unwrap(), 300, "every play readable, synced or not");
}

/// Plays queued without the storage thread (as a benchmark fills a backlog)
/// or while the history database could not be written leave a long outbox:
/// it is applied a batch at a time, at the start and by a command.
#[tokio::test]
async fn a_long_outbox_is_applied_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let plays = 3 * OUTBOX_SYNC_AT as u64 + 7;
    {
        let queue = Queue::open(dir.path(), &["a"]).unwrap();
        for i in 0..plays {
            queue.enqueue_blocking(&listen(i)).unwrap();
        }
        assert_eq!(queue.outbox(usize::MAX).unwrap().len() as u64, plays);
        assert_eq!(queue.outbox(OUTBOX_SYNC_AT).unwrap().len(), OUTBOX_SYNC_AT);
    }
    let queue = Queue::open(dir.path(), &["a"]).unwrap();
    let store = Store::start(queue.clone(), None).unwrap();
    store.flush().await.unwrap();
    let db = HistoryDb::open_reader(dir.path()).unwrap().unwrap();
    assert_eq!(db.len().unwrap(), plays);
    assert!(queue.outbox(usize::MAX).unwrap().is_empty());
    drop(store);

    // A command with no daemon running catches up the same way.
    let other = tempfile::tempdir().unwrap();
    let queue = Queue::open(other.path(), &["a"]).unwrap();
    for i in 0..plays {
        queue.enqueue_blocking(&listen(i)).unwrap();
    }
    let mut db = HistoryDb::open_writer(other.path()).unwrap();
    catch_up(&queue, &mut db).unwrap();
    assert_eq!(db.len().unwrap(), plays);
    assert!(queue.outbox(usize::MAX).unwrap().is_empty());
}
