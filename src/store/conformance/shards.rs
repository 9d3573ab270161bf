//! Conformance checks of shards shared among workers (`store::shards`).

use std::time::Duration;

use super::{apply, batch_rows, declare, finished, item, start, Row, ITEMS};
use crate::error::Error;
use crate::model::{DeliveredObject, TableDef};
use crate::store::{
    ClaimFrom, LiveSet, RunStatus, ShardOffer, ShardReader, ShardResult, ShardState, Store,
};

/// Every row a reader gives.
fn rows_of(def: &TableDef, reader: &mut dyn ShardReader) -> Vec<Row> {
    let mut rows = Vec::new();
    reader
        .read(2, &mut |b| {
            rows.extend(batch_rows(def, &b));
            Ok(())
        })
        .unwrap();
    rows
}

fn result(worker: &str, rows: u64) -> ShardResult {
    ShardResult {
        objects: vec![DeliveredObject {
            path: format!("p/{worker}.parquet"),
            rows,
            ..DeliveredObject::default()
        }],
        rows,
        next_seq: 1000,
        worker: worker.into(),
        ..ShardResult::default()
    }
}

/// A store that shares shards: readers have tickets another connection opens into the same
/// snapshot; an offered shard is claimed by one worker at a time, only by a worker that
/// names the task's fingerprint or the run; a claim renews, expires after the lease (or is
/// released) into a new attempt, and a report of a lost claim is refused; the run's end (or
/// its takeover) forgets its shards. A
/// store that does not share says so, and its readers have no tickets.
pub(crate) fn shards_are_claimed_once_and_reported(store: &dyn Store) {
    let items = declare(store, ITEMS);
    apply(store, "items", (0..9).map(|i| item(i, "x", i)).collect()).unwrap();
    let mut snap = store.snapshot("items", 3).unwrap();
    if !store.shares_shards() {
        assert!(snap.shards.iter().all(|r| r.ticket().is_none()));
        let run = start(store, "hourly");
        let offer = store.offer_shards(run.run_id, "f", Duration::from_secs(60), &[]);
        assert!(matches!(offer, Err(Error::Conflict(_))), "{offer:?}");
        assert!(store.shards(None).unwrap().is_empty());
        return;
    }
    let tickets: Vec<String> = snap.shards.iter().map(|r| r.ticket().unwrap()).collect();
    // A writer commits after the snapshot: a reader opened from a ticket does not see it.
    apply(
        store,
        "items",
        vec![item(1, "changed", 1), item(100, "new", 0)],
    )
    .unwrap();
    let mut opened = store.open_shard(&tickets[1]).unwrap();
    let from_ticket = rows_of(&items, opened.as_mut());
    let own = rows_of(&items, snap.shards[1].as_mut());
    assert_eq!(from_ticket, own);
    assert_eq!(own.len(), 3);
    assert!(matches!(
        store.open_shard("not a ticket"),
        Err(Error::InvalidInput(_))
    ));

    let lease = Duration::from_secs(60);
    let run = start(store, "hourly");
    let offers: Vec<ShardOffer> = tickets
        .iter()
        .enumerate()
        .map(|(cid, ticket)| ShardOffer {
            concurrent_id: cid as u32,
            ticket: ticket.clone(),
        })
        .collect();
    store
        .offer_shards(run.run_id, "print", lease, &offers)
        .unwrap();
    let other_print = [("hourly".to_string(), "other".to_string())];
    assert!(store
        .claim_shard("w2", ClaimFrom::Tasks(&other_print))
        .unwrap()
        .is_none());
    let mine = store
        .claim_shard("w1", ClaimFrom::Run(run.run_id))
        .unwrap()
        .unwrap();
    assert_eq!((mine.concurrent_id, mine.attempt), (0, 1));
    assert_eq!(mine.run.run_id, run.run_id);
    assert_eq!(mine.run.first_object_seq, run.first_object_seq);
    assert_eq!((mine.fingerprint.as_str(), mine.lease), ("print", lease));
    let known = [("hourly".to_string(), "print".to_string())];
    let theirs = store
        .claim_shard("w2", ClaimFrom::Tasks(&known))
        .unwrap()
        .unwrap();
    assert_eq!((theirs.concurrent_id, theirs.attempt), (1, 1));
    assert_eq!(theirs.ticket, tickets[1]);
    assert_eq!(
        store.renew_shard_claims("w1").unwrap(),
        [(run.run_id, 0, 1)]
    );

    // Reports: only by the claim's worker and attempt, once.
    let done = result("w2", 3);
    assert!(!store
        .finish_shard("w1", run.run_id, 1, 1, Ok(&done))
        .unwrap());
    assert!(!store
        .finish_shard("w2", run.run_id, 1, 2, Ok(&done))
        .unwrap());
    assert!(store
        .finish_shard("w2", run.run_id, 1, 1, Ok(&done))
        .unwrap());
    assert!(!store
        .finish_shard("w2", run.run_id, 1, 1, Err("again"))
        .unwrap());
    assert!(store
        .finish_shard("w1", run.run_id, 0, 1, Err("disk full"))
        .unwrap());
    let statuses = store.shards(Some(run.run_id)).unwrap();
    let states: Vec<&ShardState> = statuses.iter().map(|s| &s.state).collect();
    assert_eq!(
        states,
        [
            &ShardState::Failed("disk full".into()),
            &ShardState::Done(done.clone()),
            &ShardState::Pending
        ]
    );
    assert_eq!(statuses[1].worker.as_deref(), Some("w2"));
    assert!(statuses.iter().all(|s| s.task == "hourly"));
    assert_eq!(store.shards(None).unwrap().len(), 3, "the run is running");

    // A claim released (its worker is gone) makes the shard claimable at once, as a new
    // attempt; the released claim can no longer report.
    let third = store
        .claim_shard("w3", ClaimFrom::Run(run.run_id))
        .unwrap()
        .unwrap();
    assert_eq!((third.concurrent_id, third.attempt), (2, 1));
    assert!(store.release_shard(run.run_id, 2, 1).unwrap());
    assert!(!store.release_shard(run.run_id, 2, 1).unwrap());
    let again = store
        .claim_shard("w2", ClaimFrom::Tasks(&known))
        .unwrap()
        .unwrap();
    assert_eq!((again.concurrent_id, again.attempt), (2, 2));
    assert!(
        !store.release_shard(run.run_id, 2, 1).unwrap(),
        "not the latest claim"
    );
    assert!(!store
        .finish_shard("w3", run.run_id, 2, 1, Ok(&done))
        .unwrap());

    // The run ends: its shards are forgotten and nothing of it can be claimed.
    let ended = finished(run.clone(), RunStatus::Failed, Vec::new(), 0);
    store.finish_run(&ended, LiveSet::Replace).unwrap();
    assert!(store.shards(Some(run.run_id)).unwrap().is_empty());
    assert!(store
        .claim_shard("w2", ClaimFrom::Tasks(&known))
        .unwrap()
        .is_none());
    assert!(store.renew_shard_claims("w1").unwrap().is_empty());

    // With no lease, a claim expires at once: the next claim is a new attempt, and the
    // first claimer can neither renew nor report.
    let run = start(store, "hourly");
    store
        .offer_shards(run.run_id, "print", Duration::ZERO, &offers[..1])
        .unwrap();
    let first = store
        .claim_shard("w1", ClaimFrom::Tasks(&known))
        .unwrap()
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let second = store
        .claim_shard("w2", ClaimFrom::Run(run.run_id))
        .unwrap()
        .unwrap();
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert_eq!(second.concurrent_id, 0);
    assert!(store.renew_shard_claims("w1").unwrap().is_empty());
    assert!(!store
        .finish_shard("w1", run.run_id, 0, 1, Ok(&result("w1", 3)))
        .unwrap());
    assert!(store
        .finish_shard("w2", run.run_id, 0, 2, Ok(&result("w2", 3)))
        .unwrap());
    let statuses = store.shards(None).unwrap();
    assert_eq!(
        statuses.len(),
        1,
        "the first run's shards are gone: {statuses:?}"
    );
    assert_eq!(statuses[0].attempt, 2);
    assert_eq!(statuses[0].state, ShardState::Done(result("w2", 3)));

    // A run taken over (its process silent past its lease): its claims are lost.
    let taken = store
        .start_run(&super::planned("hourly"), Duration::ZERO, &|_| false)
        .unwrap();
    assert_eq!(taken.interrupted.len(), 1);
    assert!(!store
        .finish_shard("w2", run.run_id, 0, 2, Ok(&result("w2", 3)))
        .unwrap());
    store
        .offer_shards(taken.run.run_id, "print", lease, &offers[..1])
        .unwrap();
    let claim = store
        .claim_shard("w1", ClaimFrom::Tasks(&known))
        .unwrap()
        .unwrap();
    assert_eq!((claim.run.run_id, claim.attempt), (taken.run.run_id, 1));
    let next = store
        .start_run(&super::planned("hourly"), Duration::ZERO, &|_| false)
        .unwrap();
    assert_eq!(next.interrupted.len(), 1);
    assert!(store.renew_shard_claims("w1").unwrap().is_empty());
    assert!(!store
        .finish_shard("w1", taken.run.run_id, 0, 1, Ok(&result("w1", 3)))
        .unwrap());
    assert!(store
        .claim_shard("w2", ClaimFrom::Tasks(&known))
        .unwrap()
        .is_none());
}
