//! The shard queue of a PostgreSQL store (semantics: [`crate::store::shards`]).
//!
//! # Layout
//! `_lakeport_shards(run_id, concurrent_id, task, fingerprint, ticket, lease_ms, state,
//! attempt, worker, heartbeat, outcome)`, one row per offered shard, `state` one of
//! `pending`, `claimed`, `done`, `failed`; `outcome` the [`ShardResult`] (JSON as `TEXT`, as
//! run records) or the error. `heartbeat` is the server's clock (`clock_timestamp()`), as
//! run leases are, so workers on hosts whose clocks differ judge a claim alike.
//!
//! # Claims
//! A claim is one `UPDATE` of the first claimable row found by a sub-select that locks it
//! `FOR UPDATE SKIP LOCKED`: two workers claiming at once lock different rows (or one finds
//! none), and a row is claimable only while its run's row says `running`. The claim's
//! `attempt` goes up by one each time; renewals and reports name the worker and attempt and
//! change the row only while both still match, the state is `claimed` and the run is still
//! running, so a worker whose claim expired and was taken by another, or whose run ended or
//! was taken over, can neither renew it nor report over it.

use std::time::Duration;

use super::postgres::types::ToSql;
use super::{non_negative, to_i64, PostgresStore};
use crate::error::{Error, Result};
use crate::store::runs::decode_run;
use crate::store::{ClaimFrom, ShardClaim, ShardOffer, ShardResult, ShardState, ShardStatus};

/// The shard table (run by `PostgresStore::open`).
pub(super) const CREATE_SHARDS: &str = r#"
CREATE TABLE IF NOT EXISTS "_lakeport_shards" (
    "run_id" BIGINT NOT NULL,
    "concurrent_id" INTEGER NOT NULL,
    "task" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "ticket" TEXT NOT NULL,
    "lease_ms" BIGINT NOT NULL,
    "state" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "worker" TEXT,
    "heartbeat" TIMESTAMPTZ,
    "outcome" TEXT,
    PRIMARY KEY ("run_id", "concurrent_id")
);
"#;

/// Rows of a run that is no longer running.
const FORGET_ENDED: &str = r#"DELETE FROM "_lakeport_shards" s WHERE NOT EXISTS (
    SELECT 1 FROM "_lakeport_runs" r WHERE r."run_id" = s."run_id" AND r."status" = 'running')"#;

/// [`Store::offer_shards`](crate::store::Store::offer_shards).
pub(super) fn offer(
    s: &PostgresStore,
    run_id: u64,
    fingerprint: &str,
    lease: Duration,
    offers: &[ShardOffer],
) -> Result<()> {
    let what = format!("offering the shards of run {run_id}");
    let id = to_i64(run_id, "run id")?;
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(s.db(&what))?;
    tx.batch_execute(FORGET_ENDED).map_err(s.db(&what))?;
    let task: Option<String> = tx
        .query_opt(
            r#"SELECT "task" FROM "_lakeport_runs" WHERE "run_id" = $1 AND "status" = 'running'"#,
            &[&id],
        )
        .map_err(s.db(&what))?
        .map(|r| r.get(0));
    let Some(task) = task else {
        return Err(Error::Conflict(format!(
            "{what}: the run is not running (it ended or was taken over)"
        )));
    };
    let ids: Vec<i32> = offers
        .iter()
        .map(|o| i32::try_from(o.concurrent_id).unwrap_or(i32::MAX))
        .collect();
    let tickets: Vec<&str> = offers.iter().map(|o| o.ticket.as_str()).collect();
    tx.execute(
        r#"INSERT INTO "_lakeport_shards"
               ("run_id", "concurrent_id", "task", "fingerprint", "ticket", "lease_ms", "state")
           SELECT $1, c, $2, $3, t, $4, 'pending' FROM unnest($5::int[], $6::text[]) AS o(c, t)"#,
        &[&id, &task, &fingerprint, &lease_ms, &ids, &tickets],
    )
    .map_err(s.db(&what))?;
    tx.commit().map_err(s.db(&what))
}

/// [`Store::claim_shard`](crate::store::Store::claim_shard).
pub(super) fn claim(
    s: &PostgresStore,
    worker: &str,
    from: ClaimFrom<'_>,
) -> Result<Option<ShardClaim>> {
    let what = format!("claiming a shard for worker {worker}");
    let run;
    let (tasks, prints): (Vec<&str>, Vec<&str>);
    let (filter, params): (&str, Vec<&(dyn ToSql + Sync)>) = match from {
        ClaimFrom::Run(run_id) => {
            run = to_i64(run_id, "run id")?;
            (r#"x."run_id" = $2"#, vec![&worker, &run])
        }
        ClaimFrom::Tasks(known) => {
            (tasks, prints) = known.iter().map(|(t, f)| (t.as_str(), f.as_str())).unzip();
            (
                r#"(x."task", x."fingerprint") IN (SELECT * FROM unnest($2::text[], $3::text[]))"#,
                vec![&worker, &tasks, &prints],
            )
        }
    };
    let sql = format!(
        r#"UPDATE "_lakeport_shards" s
           SET "state" = 'claimed', "attempt" = s."attempt" + 1, "worker" = $1,
               "heartbeat" = clock_timestamp()
           FROM "_lakeport_runs" r
           WHERE r."run_id" = s."run_id" AND (s."run_id", s."concurrent_id") IN (
               SELECT x."run_id", x."concurrent_id" FROM "_lakeport_shards" x
               JOIN "_lakeport_runs" y ON y."run_id" = x."run_id" AND y."status" = 'running'
               WHERE (x."state" = 'pending' OR (x."state" = 'claimed' AND x."heartbeat" <
                      clock_timestamp() - x."lease_ms" * interval '1 millisecond'))
                 AND {filter}
               ORDER BY x."run_id", x."concurrent_id" LIMIT 1 FOR UPDATE OF x SKIP LOCKED)
           RETURNING s."run_id", s."concurrent_id", s."attempt", s."ticket", s."fingerprint",
               s."lease_ms", r."record""#
    );
    let mut conn = s.conn()?;
    let row = conn.query_opt(&sql, &params).map_err(s.db(&what))?;
    let Some(row) = row else { return Ok(None) };
    let run_id: i64 = row.get(0);
    let concurrent_id: i32 = row.get(1);
    let attempt: i32 = row.get(2);
    let lease_ms: i64 = row.get(5);
    Ok(Some(ShardClaim {
        run: decode_run(run_id, row.get(6))?,
        fingerprint: row.get(4),
        concurrent_id: u32::try_from(concurrent_id).unwrap_or_default(),
        attempt: u32::try_from(attempt).unwrap_or_default(),
        ticket: row.get(3),
        lease: Duration::from_millis(non_negative(lease_ms, "a lease")?),
    }))
}

/// [`Store::renew_shard_claims`](crate::store::Store::renew_shard_claims).
pub(super) fn renew(s: &PostgresStore, worker: &str) -> Result<Vec<(u64, u32, u32)>> {
    let mut conn = s.conn()?;
    let rows = conn
        .query(
            r#"UPDATE "_lakeport_shards" s SET "heartbeat" = clock_timestamp()
               FROM "_lakeport_runs" r
               WHERE s."worker" = $1 AND s."state" = 'claimed' AND r."run_id" = s."run_id"
                 AND r."status" = 'running'
               RETURNING s."run_id", s."concurrent_id", s."attempt""#,
            &[&worker],
        )
        .map_err(s.db(format!("renewing the shard claims of worker {worker}")))?;
    rows.iter()
        .map(|r| {
            let (run, cid, attempt): (i64, i32, i32) = (r.get(0), r.get(1), r.get(2));
            Ok((
                non_negative(run, "a run id")?,
                u32::try_from(cid).unwrap_or_default(),
                u32::try_from(attempt).unwrap_or_default(),
            ))
        })
        .collect()
}

/// [`Store::finish_shard`](crate::store::Store::finish_shard).
pub(super) fn finish(
    s: &PostgresStore,
    worker: &str,
    run_id: u64,
    concurrent_id: u32,
    attempt: u32,
    outcome: std::result::Result<&ShardResult, &str>,
) -> Result<bool> {
    let what = format!("reporting shard {concurrent_id} of run {run_id}");
    let (state, text) = match outcome {
        Ok(result) => (
            "done",
            serde_json::to_string(result).map_err(|e| Error::store_caused(what.to_string(), e))?,
        ),
        Err(error) => ("failed", error.to_string()),
    };
    let (id, cid, attempt) = claim_key(run_id, concurrent_id, attempt)?;
    let mut conn = s.conn()?;
    let changed = conn
        .execute(
            r#"UPDATE "_lakeport_shards" s SET "state" = $1, "outcome" = $2,
                   "heartbeat" = clock_timestamp()
               FROM "_lakeport_runs" r
               WHERE s."run_id" = $3 AND s."concurrent_id" = $4 AND s."attempt" = $5
                 AND s."worker" = $6 AND s."state" = 'claimed'
                 AND r."run_id" = s."run_id" AND r."status" = 'running'"#,
            &[&state, &text, &id, &cid, &attempt, &worker],
        )
        .map_err(s.db(&what))?;
    Ok(changed == 1)
}

/// A claim's run, shard and attempt as the table stores them.
fn claim_key(run_id: u64, concurrent_id: u32, attempt: u32) -> Result<(i64, i32, i32)> {
    let too_large = |what: &str, v: u32| Error::InvalidInput(format!("{what} {v} is too large"));
    Ok((
        to_i64(run_id, "run id")?,
        i32::try_from(concurrent_id).map_err(|_| too_large("shard", concurrent_id))?,
        i32::try_from(attempt).map_err(|_| too_large("attempt", attempt))?,
    ))
}

/// [`Store::release_shard`](crate::store::Store::release_shard).
pub(super) fn release(
    s: &PostgresStore,
    run_id: u64,
    concurrent_id: u32,
    attempt: u32,
) -> Result<bool> {
    let (id, cid, attempt) = claim_key(run_id, concurrent_id, attempt)?;
    let mut conn = s.conn()?;
    let changed = conn
        .execute(
            r#"UPDATE "_lakeport_shards" SET "state" = 'pending'
               WHERE "run_id" = $1 AND "concurrent_id" = $2 AND "attempt" = $3
                 AND "state" = 'claimed'"#,
            &[&id, &cid, &attempt],
        )
        .map_err(s.db(format!("releasing shard {concurrent_id} of run {run_id}")))?;
    Ok(changed == 1)
}

/// [`Store::shards`](crate::store::Store::shards).
pub(super) fn list(s: &PostgresStore, run_id: Option<u64>) -> Result<Vec<ShardStatus>> {
    let run = run_id.map(|r| to_i64(r, "run id")).transpose()?;
    let mut conn = s.conn()?;
    let rows = conn
        .query(
            r#"SELECT s."run_id", s."task", s."concurrent_id", s."attempt", s."worker",
                   floor(extract(epoch FROM s."heartbeat") * 1000)::bigint, s."state",
                   s."outcome"
               FROM "_lakeport_shards" s
               WHERE CASE WHEN $1::bigint IS NULL
                     THEN EXISTS (SELECT 1 FROM "_lakeport_runs" r
                                  WHERE r."run_id" = s."run_id" AND r."status" = 'running')
                     ELSE s."run_id" = $1 END
               ORDER BY s."run_id", s."concurrent_id""#,
            &[&run],
        )
        .map_err(s.db("reading the offered shards"))?;
    rows.iter()
        .map(|r| {
            let run_id = non_negative(r.get::<_, i64>(0), "a run id")?;
            let cid: i32 = r.get(2);
            let outcome: Option<String> = r.get(7);
            let state = match (r.get::<_, &str>(6), outcome) {
                ("pending", _) => ShardState::Pending,
                ("claimed", _) => ShardState::Claimed,
                ("done", Some(json)) => {
                    ShardState::Done(serde_json::from_str(&json).map_err(|e| {
                        Error::store_caused(
                            format!(
                                "the stored outcome of shard {cid} of run {run_id} is not valid"
                            ),
                            e,
                        )
                    })?)
                }
                ("failed", error) => ShardState::Failed(error.unwrap_or_default()),
                (other, _) => {
                    return Err(Error::store(format!(
                        "shard {cid} of run {run_id} has an unknown state {other:?}"
                    )))
                }
            };
            Ok(ShardStatus {
                run_id,
                task: r.get(1),
                concurrent_id: u32::try_from(cid).unwrap_or_default(),
                attempt: u32::try_from(r.get::<_, i32>(3)).unwrap_or_default(),
                worker: r.get(4),
                heartbeat_ms: r.get(5),
                state,
            })
        })
        .collect()
}

/// Forgets the shards of run `run_id` (in the transaction that ends it).
pub(super) fn forget_run(
    tx: &mut impl super::postgres::GenericClient,
    run_id: i64,
) -> std::result::Result<u64, super::postgres::Error> {
    tx.execute(
        r#"DELETE FROM "_lakeport_shards" WHERE "run_id" = $1"#,
        &[&run_id],
    )
}

#[cfg(test)]
mod tests {
    use crate::store::Runs;
    use crate::store::Workers;
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::Duration;

    use super::super::tests::fresh_store;
    use crate::store::conformance::planned;
    use crate::store::{ClaimFrom, ShardOffer};

    /// Workers claiming all at once, round after round, take every offered shard exactly
    /// once (none twice, none left behind while others wait on a lock).
    #[test]
    fn concurrent_claims_take_each_shard_once() {
        const WORKERS: usize = 6;
        const SHARDS: u32 = 16;
        let store = Arc::new(fresh_store());
        let known = Arc::new(vec![("race".to_string(), "print".to_string())]);
        for round in 0..20 {
            let run = store
                .start_run(&planned("race"), Duration::from_secs(3600), &|_| false)
                .unwrap()
                .run;
            let offers: Vec<ShardOffer> = (0..SHARDS)
                .map(|cid| ShardOffer {
                    concurrent_id: cid,
                    ticket: format!("t{cid}"),
                })
                .collect();
            store
                .offer_shards(run.run_id, "print", Duration::from_secs(3600), &offers)
                .unwrap();
            let barrier = Arc::new(Barrier::new(WORKERS));
            let threads: Vec<_> = (0..WORKERS)
                .map(|w| {
                    let (store, barrier, known) =
                        (Arc::clone(&store), Arc::clone(&barrier), Arc::clone(&known));
                    thread::spawn(move || {
                        let me = format!("w{w}");
                        barrier.wait();
                        let mut got = Vec::new();
                        while let Some(c) =
                            store.claim_shard(&me, ClaimFrom::Tasks(&known)).unwrap()
                        {
                            got.push(c.concurrent_id);
                        }
                        got
                    })
                })
                .collect();
            let mut all: Vec<u32> = threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..SHARDS).collect::<Vec<_>>(), "round {round}");
            let mut ended = run.clone();
            ended.status = crate::store::RunStatus::Failed;
            ended.ended_ms = Some(run.started_ms + 1);
            store
                .finish_run(&ended, crate::store::LiveSet::Replace)
                .unwrap();
        }
    }
}
