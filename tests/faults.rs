//! Object-store faults during delivery: a wrapper around a real local object store (used only
//! by these tests) fails a share of requests the way a cloud store does when it is slow or
//! throttling (transient), or refuses them (permanent). Under transient faults every run still
//! delivers each change exactly once (read back with the parquet crate's reader); under
//! permanent ones the run stops at once with a message that names the fix, nothing is
//! committed, and the next healthy run delivers everything.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use lakeport::delivery::{load_tasks, run_task_with, Quiet, Task};
use lakeport::model::schema::load_tables;
use lakeport::objstore::Destination;
use lakeport::store::{open_store, Change, Store, Value};
use lakeport::Error;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// What the wrapper does to requests.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Passes everything through.
    None,
    /// Fails this share of requests (each put, multipart start, get, list, list page, delete)
    /// with a transient error, as a throttling or overloaded store does.
    Transient(f64),
    /// Refuses every write: access denied.
    AccessDenied,
    /// Every write finds no bucket.
    NoBucket,
}

/// An object store that injects faults in front of a real one.
#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fault: Mutex<Fault>,
    /// xorshift state: reproducible, no extra dependency.
    rng: Mutex<u64>,
    injected: AtomicU64,
    /// How often each location was refused (a permanent fault).
    refused: Mutex<BTreeMap<String, u32>>,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> FaultyStore {
        FaultyStore {
            inner,
            fault: Mutex::new(Fault::None),
            rng: Mutex::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            injected: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// The most times one location was refused since the fault was set.
    fn most_refusals(&self) -> u32 {
        self.refused
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Injects `fault` from now on (and forgets the refusals counted so far).
    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.refused.lock().unwrap().clear();
    }

    fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn roll(&self) -> f64 {
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The error to fail a request with, if any; `write` for puts.
    fn fault(&self, location: &Path, write: bool) -> Option<object_store::Error> {
        let fault = *self.fault.lock().unwrap();
        let error = match fault {
            Fault::None => return None,
            Fault::Transient(share) => {
                if self.roll() >= share {
                    return None;
                }
                object_store::Error::Generic {
                    store: "S3",
                    source: format!("injected: 503 Slow Down on {location}").into(),
                }
            }
            Fault::AccessDenied if write => object_store::Error::PermissionDenied {
                path: location.to_string(),
                source: "injected: 403 AccessDenied".into(),
            },
            Fault::NoBucket if write => object_store::Error::NotFound {
                path: location.to_string(),
                source: "injected: 404 NoSuchBucket".into(),
            },
            Fault::AccessDenied | Fault::NoBucket => return None,
        };
        if !matches!(fault, Fault::Transient(_)) {
            *self
                .refused
                .lock()
                .unwrap()
                .entry(location.to_string())
                .or_default() += 1;
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(error)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        match self.fault(location, true) {
            Some(e) => Err(e),
            None => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        match self.fault(location, true) {
            Some(e) => Err(e),
            None => self.inner.put_multipart_opts(location, opts).await,
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        match self.fault(location, false) {
            Some(e) => Err(e),
            None => self.inner.get_opts(location, options).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        // Decide per location now, then let the real store delete the others.
        let decided: Vec<OsResult<Path>> = futures::executor::block_on(locations.collect());
        let mut out = Vec::new();
        let mut pass = Vec::new();
        for location in decided {
            match location {
                Ok(p) => match self.fault(&p, false) {
                    Some(e) => out.push(Err(e)),
                    None => pass.push(Ok(p)),
                },
                Err(e) => out.push(Err(e)),
            }
        }
        let deleted = self.inner.delete_stream(stream::iter(pass).boxed());
        stream::iter(out).chain(deleted).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        match self.fault(prefix.unwrap_or(&Path::default()), false) {
            Some(e) => stream::iter([Err(e)]).boxed(),
            None => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        match self.fault(prefix.unwrap_or(&Path::default()), false) {
            Some(e) => Err(e),
            None => self.inner.list_with_delimiter(prefix).await,
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        match self.fault(to, true) {
            Some(e) => Err(e),
            None => self.inner.copy_opts(from, to, options).await,
        }
    }
}

const TABLE: &str = "table: items
primary_key: [id]
columns:
  - { name: id, type: int64 }
  - { name: name, type: string }
  - { name: at, type: timestamp_ms }
";

/// A project folder with the table, one incremental task (two shards, daily partitions from
/// `at`, fast retries), its store and its lake behind a [`FaultyStore`].
struct Project {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    task: Arc<Task>,
    faulty: Arc<FaultyStore>,
    dest: Arc<Destination>,
}

impl Project {
    fn new(max_elapsed: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("schemas")).unwrap();
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        std::fs::create_dir_all(root.join("lake")).unwrap();
        std::fs::write(root.join("schemas/items.yaml"), TABLE).unwrap();
        std::fs::write(
            root.join("pipelines/inc.yaml"),
            format!(
                "name: inc\nsource: items\ndestination: lake\nprefix: dt=$yyyy-$MM-$dd\n\
                 partition_time: {{ from: column, column: at }}\nmode: incremental\n\
                 concurrency: 2\nretry: {{ initial: 10ms, max_interval: 50ms, max_elapsed: {max_elapsed} }}\n"
            ),
        )
        .unwrap();
        let tables = load_tables(&root.join("schemas")).unwrap();
        let mut tasks = load_tasks(&root.join("pipelines"), &tables).unwrap();
        let task = Arc::new(tasks.remove("inc").unwrap());
        let store = open_store(&format!("sqlite:{}", root.join("lakeport.db").display())).unwrap();
        store.ensure_table(&tables["items"]).unwrap();
        let local = LocalFileSystem::new_with_prefix(root.join("lake")).unwrap();
        let faulty = Arc::new(FaultyStore::new(Arc::new(local), 0x5eed));
        let dest = Arc::new(
            Destination::from_store(faulty.clone(), "s3://lake-bucket/lake").with_retry(task.retry),
        );
        Project {
            dir,
            store,
            task,
            faulty,
            dest,
        }
    }

    fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// Upserts rows `ids` named `name-<id>` over ten days from day `day` of May 2024 (so a run
    /// writes many objects), and deletes `gone`.
    fn change(&self, ids: impl IntoIterator<Item = i64>, name: &str, day: i64, gone: &[i64]) {
        let mut changes: Vec<lakeport::Result<Change>> = ids
            .into_iter()
            .map(|i| {
                Ok(Change::Upsert(vec![
                    Value::Int64(i),
                    Value::String(format!("{name}-{i}")),
                    Value::TimestampMs(1_714_521_600_000 + (day - 1 + i % 10) * 86_400_000 + i),
                ]))
            })
            .collect();
        changes.extend(
            gone.iter()
                .map(|&i| Ok(Change::Delete(vec![Value::Int64(i)]))),
        );
        self.store.apply("items", &mut changes.into_iter()).unwrap();
    }

    fn run(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> lakeport::Result<lakeport::delivery::RunSummary> {
        rt.block_on(run_task_with(
            Arc::clone(&self.store),
            Arc::clone(&self.task),
            Arc::clone(&self.dest),
            Arc::new(Quiet),
        ))
    }

    fn checkpoint(&self) -> u64 {
        self.store
            .task_state("inc")
            .unwrap()
            .map_or(0, |s| s.checkpoint)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every file under `dir`, relative, `/`-separated.
fn files(dir: &FsPath) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

/// (id, _seq, name) of every row of every Parquet object under `lake`.
fn lake_rows(lake: &FsPath) -> Vec<(i64, i64, String)> {
    let mut rows = Vec::new();
    for rel in files(lake).into_iter().filter(|f| f.ends_with(".parquet")) {
        let file = std::fs::File::open(lake.join(&rel)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = |n: &str| batch.column_by_name(n).unwrap().clone();
            let ids = col("id");
            let ids: &Int64Array = ids.as_primitive::<Int64Type>();
            let seqs = col("_seq");
            let seqs = seqs.as_primitive::<Int64Type>();
            let names = col("name");
            let names = names.as_string::<i32>();
            for r in 0..batch.num_rows() {
                rows.push((ids.value(r), seqs.value(r), names.value(r).to_string()));
            }
        }
    }
    rows
}

/// The store's live rows: id → (_seq, name).
fn store_rows(store: &dyn Store) -> BTreeMap<i64, (i64, String)> {
    let mut out = BTreeMap::new();
    let mut snap = store.snapshot("items", 1).unwrap();
    for reader in &mut snap.shards {
        reader
            .read(1024, &mut |b| {
                let ids = b.column(0).as_primitive::<Int64Type>();
                let names = b.column(1).as_string::<i32>();
                let seqs = b.column(3).as_primitive::<Int64Type>();
                for r in 0..b.num_rows() {
                    out.insert(ids.value(r), (seqs.value(r), names.value(r).to_string()));
                }
                Ok(())
            })
            .unwrap();
    }
    out
}

#[test]
fn transient_faults_are_retried_and_every_change_is_delivered_once() {
    let rt = runtime();
    let p = Project::new("60s");
    p.faulty.set(Fault::Transient(0.3));
    let mut delivered = 0;
    for round in 0..4i64 {
        let first = round * 500;
        p.change(
            first..first + 1500,
            &format!("r{round}"),
            1 + round,
            &[first + 3, first + 7],
        );
        let run = p
            .run(&rt)
            .unwrap_or_else(|e| panic!("round {round}: {}", e.chain()));
        delivered += run.record.rows;
        assert_eq!(p.checkpoint(), run.record.seq_to);
    }
    let injected = p.faulty.injected();
    assert!(injected >= 10, "only {injected} faults were injected");
    println!("injected {injected} transient faults");
    p.faulty.set(Fault::None);

    // Exactly once: no (id, _seq) twice, as many rows as the runs say, and the newest version
    // of every live row is the store's.
    let rows = lake_rows(&p.lake());
    let mut seen = HashMap::new();
    for (id, seq, _) in &rows {
        assert!(
            seen.insert((*id, *seq), ()).is_none(),
            "({id}, {seq}) delivered twice"
        );
    }
    assert_eq!(rows.len() as u64, delivered);
    let mut newest: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for (id, seq, name) in rows {
        if newest.get(&id).is_none_or(|(s, _)| *s < seq) {
            newest.insert(id, (seq, name));
        }
    }
    let live = store_rows(p.store.as_ref());
    for (id, version) in &live {
        assert_eq!(newest.get(id), Some(version), "row {id}");
    }
    // No orphan: the lake holds the live set, a manifest per run and the owner marker,
    // nothing else.
    let live = p.store.live_objects("inc").unwrap();
    let mut expected: Vec<String> = live.iter().map(|o| o.path.clone()).collect();
    expected.push("_lakeport/inc/owner.json".to_string());
    let runs = p.store.runs(Some("inc"), 100).unwrap();
    expected.extend(
        runs.iter()
            .map(|r| format!("_lakeport/inc/runs/{}.json", r.run_id)),
    );
    expected.sort();
    assert_eq!(files(&p.lake()), expected);
    assert!(runs.iter().all(|r| r.error.is_none()), "{runs:?}");
}

#[test]
fn permanent_faults_stop_the_run_with_the_fix_and_lose_nothing() {
    let rt = runtime();
    let p = Project::new("60s");
    p.change(1..=100, "a", 1, &[]);
    p.run(&rt).unwrap();
    let before = files(&p.lake());
    let checkpoint = p.checkpoint();
    p.change(101..=150, "b", 2, &[5]);

    for (fault, fix) in [
        (
            Fault::AccessDenied,
            "access denied: the credentials in use may not write",
        ),
        (
            Fault::NoBucket,
            "bucket or container of s3://lake-bucket/lake does not exist",
        ),
    ] {
        p.faulty.set(fault);
        let injected = p.faulty.injected();
        let err = p.run(&rt).unwrap_err();
        let Error::Permanent {
            context: message, ..
        } = &err
        else {
            panic!("{fault:?}: expected a permanent error, got {err:?}");
        };
        assert!(message.contains(fix), "{message}");
        assert!(
            message.contains("s3://lake-bucket/lake/"),
            "names the object: {message}"
        );
        // Stopped at once: no refused request was retried, and each shard stopped at its
        // first refusal (the uploads it had running then may be refused too).
        assert_eq!(p.faulty.most_refusals(), 1, "a refusal was retried");
        let refused = p.faulty.injected() - injected;
        assert!((1..=2 * 4).contains(&refused), "{refused} refusals");
        assert_eq!(
            p.checkpoint(),
            checkpoint,
            "the checkpoint moved past undelivered rows"
        );
        let last = &p.store.runs(Some("inc"), 1).unwrap()[0];
        assert_eq!(last.error, Some(err.chain().to_string()));
        assert_eq!(files(&p.lake()), before, "a failed run left objects behind");
    }

    // Healthy again: the next run delivers what the failed ones could not.
    p.faulty.set(Fault::None);
    let run = p.run(&rt).unwrap();
    assert_eq!(run.record.rows, 50);
    assert_eq!(run.record.seq_from, checkpoint);
}

#[test]
fn transient_faults_that_outlast_the_retry_budget_fail_the_run_cleanly() {
    let rt = runtime();
    let p = Project::new("300ms");
    p.change(1..=100, "a", 1, &[]);
    p.faulty.set(Fault::Transient(1.0));
    let err = p.run(&rt).unwrap_err();
    let Error::Transient {
        context: message, ..
    } = &err
    else {
        panic!("expected a transient error, got {err:?}");
    };
    assert!(
        message.contains("gave up after") && message.contains("retry.max_elapsed"),
        "{message}"
    );
    assert!(p.faulty.injected() > 2, "it was not retried");
    assert_eq!(p.checkpoint(), 0);
    p.faulty.set(Fault::None);
    assert!(files(&p.lake()).is_empty(), "{:?}", files(&p.lake()));
    assert_eq!(p.run(&rt).unwrap().record.rows, 100);
}
