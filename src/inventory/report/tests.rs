use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use md5::{Digest, Md5};

use super::*;
use crate::model::schema::OBJECT_INVENTORY_YAML;
use crate::store::Value;

const ALL_FIELDS: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm, ObjectAccessControlList, ObjectOwner, LifecycleExpirationDate";

fn table() -> TableDef {
    TableDef::from_yaml(OBJECT_INVENTORY_YAML, "builtin").unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

/// A report folder in a tempdir laid out as S3 writes it.
struct Report {
    _dir: tempfile::TempDir,
    config: PathBuf,
    manifest: PathBuf,
}

impl Report {
    fn new() -> Report {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dest-bucket/inv/src-bucket/cfg1");
        let manifest_dir = config.join("2024-03-06T00-00Z");
        std::fs::create_dir_all(config.join("data")).unwrap();
        std::fs::create_dir_all(&manifest_dir).unwrap();
        Report {
            _dir: dir,
            config,
            manifest: manifest_dir.join("manifest.json"),
        }
    }

    /// Writes a data file; returns its manifest entry (key, size, md5).
    fn data(&self, name: &str, bytes: &[u8]) -> serde_json::Value {
        std::fs::write(self.config.join("data").join(name), bytes).unwrap();
        serde_json::json!({
            "key": format!("inv/src-bucket/cfg1/data/{name}"),
            "size": bytes.len(),
            "MD5checksum": md5_hex(bytes),
        })
    }

    fn manifest_json(&self, text: &str, checksum: bool) {
        std::fs::write(&self.manifest, text).unwrap();
        if checksum {
            let sum = format!("{}\n", md5_hex(text.as_bytes()));
            std::fs::write(self.manifest.with_file_name("manifest.checksum"), sum).unwrap();
        }
    }

    fn manifest(&self, format: &str, schema: &str, files: Vec<serde_json::Value>) {
        let doc = serde_json::json!({
            "sourceBucket": "src-bucket",
            "destinationBucket": "arn:aws:s3:::dest-bucket",
            "version": "2016-11-30",
            "creationTimestamp": "1709683200000",
            "fileFormat": format,
            "fileSchema": schema,
            "files": files,
            "someFutureField": {"x": 1},
        });
        self.manifest_json(&serde_json::to_string_pretty(&doc).unwrap(), true);
    }

    fn url(&self) -> String {
        self.manifest.display().to_string()
    }

    fn read_all(&self) -> Result<Vec<Vec<Value>>> {
        let def = table();
        let report = open_report(&self.url(), None, &def)?;
        report
            .into_changes()
            .map(|c| match c? {
                Change::Upsert(v) => Ok(v),
                Change::Delete(_) => panic!("delete from a report"),
            })
            .collect()
    }
}

fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::InvalidInput(m)) => m,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

fn col(row: &[Value], name: &str) -> Value {
    row[table().column_index(name).unwrap()].clone()
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn happy_path_every_field_exact_values() {
    let r = Report::new();
    let csv1 = concat!(
        "\"src-bucket\",\"dir+one/a%2Bb+c%C3%A9.txt\",\"v1\",\"true\",\"false\",\"1234\",",
        "\"2024-03-05T10:20:30.000Z\",\"etag1\",\"STANDARD\",\"true\",\"COMPLETED\",\"SSE-S3\",",
        "\"2025-01-01T00:00:00.000Z\",\"GOVERNANCE\",\"OFF\",\"FREQUENT\",\"ENABLED\",\"CRC32\",",
        "\"acl-b64\",\"owner1\",\"2026-06-01T12:00:00.500Z\"\n",
        "\"src-bucket\",\"top.txt\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n",
    );
    let csv2 = "\"src-bucket\",\"a/b/c\",\"v2\",\"false\",\"true\",\"0\",\"2024-03-05T10:20:30.123Z\",\"e\",\"GLACIER\",\"false\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n";
    let f1 = r.data("one.csv.gz", &gzip(csv1.as_bytes()));
    let f2 = r.data("two.csv", csv2.as_bytes());
    r.manifest("CSV", ALL_FIELDS, vec![f1, f2]);

    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    assert_eq!(report.info.source_bucket, "src-bucket");
    assert_eq!(report.info.created_ms, 1_709_683_200_000);
    assert_eq!(report.info.files, 2);
    assert_eq!(
        report.info.manifest_md5,
        md5_hex(&std::fs::read(&r.manifest).unwrap())
    );
    let rows: Vec<Vec<Value>> = report
        .into_changes()
        .map(|c| match c.unwrap() {
            Change::Upsert(v) => v,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rows.len(), 3);
    let want = [
        ("bucket", s("src-bucket")),
        ("key", s("dir one/a+b cé.txt")),
        ("version_id", s("v1")),
        ("prefix", s("dir one/")),
        ("is_latest", Value::Bool(true)),
        ("is_delete_marker", Value::Bool(false)),
        ("size", Value::Int64(1234)),
        ("last_modified", Value::TimestampMs(1_709_634_030_000)),
        ("etag", s("etag1")),
        ("storage_class", s("STANDARD")),
        ("is_multipart_uploaded", Value::Bool(true)),
        ("replication_status", s("COMPLETED")),
        ("encryption_status", s("SSE-S3")),
        (
            "object_lock_retain_until_date",
            Value::TimestampMs(1_735_689_600_000),
        ),
        ("object_lock_mode", s("GOVERNANCE")),
        ("object_lock_legal_hold_status", s("OFF")),
        ("intelligent_tiering_access_tier", s("FREQUENT")),
        ("bucket_key_status", s("ENABLED")),
        ("checksum_algorithm", s("CRC32")),
        ("object_access_control_list", s("acl-b64")),
        ("object_owner", s("owner1")),
        (
            "lifecycle_expiration_date",
            Value::TimestampMs(1_780_315_200_500),
        ),
        ("object_acl", Value::Null),
        ("object_type", Value::Null),
        ("tagging_count", Value::Null),
        ("crc64", Value::Null),
        ("transition_time", Value::Null),
    ];
    assert_eq!(want.len(), def.columns.len());
    for (name, value) in &want {
        assert_eq!(&col(&rows[0], name), value, "column {name}");
    }
    // Empty fields are NULL; the empty VersionId is "" (key column); top-level prefix is "".
    assert_eq!(col(&rows[1], "key"), s("top.txt"));
    assert_eq!(col(&rows[1], "version_id"), s(""));
    assert_eq!(col(&rows[1], "prefix"), s(""));
    assert_eq!(col(&rows[1], "size"), Value::Null);
    assert_eq!(col(&rows[1], "is_latest"), Value::Null);
    // Second file, versioned delete marker.
    assert_eq!(col(&rows[2], "key"), s("a/b/c"));
    assert_eq!(col(&rows[2], "prefix"), s("a/b/"));
    assert_eq!(col(&rows[2], "is_delete_marker"), Value::Bool(true));
    assert_eq!(
        col(&rows[2], "last_modified"),
        Value::TimestampMs(1_709_634_030_123)
    );
}

#[test]
fn columns_absent_from_file_schema_are_null_and_version_id_empty() {
    let r = Report::new();
    let f = r.data("x.csv.gz", &gzip(b"\"src-bucket\",\"k+1\",\"5\"\n"));
    r.manifest("CSV", "Bucket,Key,Size", vec![f]);
    let rows = r.read_all().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(col(row, "key"), s("k 1"));
    assert_eq!(col(row, "version_id"), s(""));
    assert_eq!(col(row, "size"), Value::Int64(5));
    for name in [
        "is_latest",
        "etag",
        "storage_class",
        "last_modified",
        "object_owner",
    ] {
        assert_eq!(col(row, name), Value::Null, "{name}");
    }
}

#[test]
fn form_decoding_is_exact() {
    assert_eq!(form_decode("a+b%2Bc%20d").unwrap(), "a b+c d");
    assert_eq!(form_decode("%E6%97%A5%E6%9C%AC").unwrap(), "日本");
    assert_eq!(form_decode("100%25").unwrap(), "100%");
    assert!(form_decode("%FF%FE").unwrap_err().contains("not UTF-8"));
}

#[test]
fn invalid_utf8_key_names_file_and_line() {
    let r = Report::new();
    let f = r.data(
        "x.csv",
        b"\"src-bucket\",\"ok\"\n\"src-bucket\",\"bad%FF\"\n",
    );
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/x.csv:2: Key: expected form-encoded UTF-8"),
        "{msg}"
    );
}

#[test]
fn manifest_checksum_mismatch_is_refused() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"src-bucket\",\"k\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let sum_path = r.manifest.with_file_name("manifest.checksum");
    std::fs::write(&sum_path, "0123456789abcdef0123456789abcdef\n").unwrap();
    let actual = md5_hex(&std::fs::read(&r.manifest).unwrap());
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert_eq!(
        msg,
        format!(
            "{}: manifest.checksum says 0123456789abcdef0123456789abcdef, manifest.json has MD5 {actual}",
            r.url()
        )
    );
    // Upper-case hex with whitespace is the same checksum; no checksum file is fine too.
    std::fs::write(&sum_path, format!("  {}\r\n", actual.to_uppercase())).unwrap();
    open_report(&r.url(), None, &table()).unwrap();
    std::fs::remove_file(&sum_path).unwrap();
    open_report(&r.url(), None, &table()).unwrap();
}

#[test]
fn data_file_md5_mismatch_is_refused_before_any_row() {
    let r = Report::new();
    let mut f = r.data("x.csv", b"\"src-bucket\",\"k\"\n");
    f["MD5checksum"] = "00000000000000000000000000000000".into();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    let first = report.into_changes().next().unwrap();
    let msg = err_text(first);
    assert!(
        msg.contains(
            "data/x.csv: MD5: expected 00000000000000000000000000000000 (manifest), found "
        ) && msg.contains(&md5_hex(b"\"src-bucket\",\"k\"\n")),
        "{msg}"
    );
}

#[test]
fn size_mismatch_is_refused() {
    let r = Report::new();
    let mut f = r.data("x.csv", b"\"src-bucket\",\"k\"\n");
    f["size"] = 99.into();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/x.csv: size: expected 99 bytes (manifest), found 17"),
        "{msg}"
    );
}

#[test]
fn missing_data_file_is_refused() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"src-bucket\",\"k\"\n");
    std::fs::remove_file(r.config.join("data/x.csv")).unwrap();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(msg.contains("data/x.csv: data file listed in"), "{msg}");
}

#[test]
fn corrupt_and_truncated_gzip_name_the_file() {
    let r = Report::new();
    let mut bad = gzip(b"\"src-bucket\",\"k\"\n\"src-bucket\",\"l\"\n");
    let n = bad.len();
    bad[12..n - 8].iter_mut().for_each(|b| *b ^= 0x5a);
    let f = r.data("bad.csv.gz", &bad);
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/bad.csv.gz") && msg.contains("gzip"),
        "{msg}"
    );

    let r = Report::new();
    let whole = gzip("\"src-bucket\",\"k\"\n".repeat(1000).as_bytes());
    let f = r.data("cut.csv.gz", &whole[..whole.len() / 2]);
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/cut.csv.gz") && msg.contains("gzip"),
        "{msg}"
    );
}

#[test]
fn unknown_file_schema_field_is_named() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"src-bucket\",\"k\",\"1\"\n");
    r.manifest("CSV", "Bucket, Key, Colour", vec![f]);
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.contains("fileSchema: unknown field \"Colour\""),
        "{msg}"
    );
}

#[test]
fn bad_values_name_file_line_and_field() {
    let r = Report::new();
    let f = r.data(
        "x.csv.gz",
        &gzip(b"\"src-bucket\",\"k\",\"1\",\"true\"\n\"src-bucket\",\"k2\",\"12x\",\"true\"\n"),
    );
    r.manifest("CSV", "Bucket,Key,Size,IsLatest", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/x.csv.gz:2: Size: expected an integer, found \"12x\""),
        "{msg}"
    );

    let r = Report::new();
    let f = r.data("y.csv", b"\"src-bucket\",\"k\",\"yes\"\n");
    r.manifest("CSV", "Bucket,Key,IsLatest", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("y.csv:1: IsLatest: expected true or false, found \"yes\""),
        "{msg}"
    );

    let r = Report::new();
    let f = r.data("z.csv", b"\"src-bucket\",\"k\",\"2024-13-01\"\n");
    r.manifest("CSV", "Bucket,Key,LastModifiedDate", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("z.csv:1: LastModifiedDate: expected an ISO 8601 date"),
        "{msg}"
    );

    let r = Report::new();
    let f = r.data(
        "w.csv",
        b"\"src-bucket\",\"k\",\"1\"\n\"src-bucket\",\"k\"\n",
    );
    r.manifest("CSV", "Bucket,Key,Size", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("w.csv:2: expected 3 fields (fileSchema), found 2"),
        "{msg}"
    );
}

#[test]
fn manifest_field_errors_name_url_and_field() {
    let r = Report::new();
    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":1709683200000,"fileFormat":"CSV","fileSchema":"Bucket,Key"}"#,
        true,
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert_eq!(msg, format!("{}: files: missing (required field)", r.url()));

    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":"soon","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[]}"#,
        true,
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.contains("creationTimestamp: expected epoch milliseconds"),
        "{msg}"
    );

    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":1,"fileFormat":"CSV","fileSchema":"Bucket,Key","files":[{"key":"a/data/x.csv","size":1,"MD5checksum":"zz"}]}"#,
        true,
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.contains("files[0].MD5checksum: expected 32 hex digits"),
        "{msg}"
    );
}

#[test]
fn numeric_creation_timestamp_and_empty_report() {
    let r = Report::new();
    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":1709683200000,"fileFormat":"CSV","fileSchema":"Bucket,Key","files":[]}"#,
        false,
    );
    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    assert_eq!(report.info.created_ms, 1_709_683_200_000);
    assert_eq!(report.into_changes().count(), 0);
}

#[test]
fn trailing_comma_is_refused_for_s3_and_oss() {
    // S3 and OSS never write one; only OBS manifests get that leniency.
    let r = Report::new();
    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":"1","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[],}"#,
        true,
    );
    for provider in [Provider::S3, Provider::Oss] {
        let msg = err_text(open_report(&r.url(), Some(provider), &table()));
        assert!(
            msg.starts_with(&format!(
                "{}: not valid JSON for a {provider} manifest",
                r.url()
            )),
            "{msg}"
        );
    }
    // Anything else that is not JSON is refused for every provider, OBS included.
    r.manifest_json(r#"{"sourceBucket":"s",,"files":[]}"#, true);
    for provider in [None, Some(Provider::Obs)] {
        let msg = err_text(open_report(&r.url(), provider, &table()));
        assert!(
            msg.starts_with(&format!("{}: not valid JSON", r.url())),
            "{msg}"
        );
    }
}

#[test]
fn file_url_and_layout_rule() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"src-bucket\",\"k\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let url = url::Url::from_file_path(&r.manifest).unwrap().to_string();
    let def = table();
    let report = open_report(&url, None, &def).unwrap();
    assert_eq!(report.into_changes().count(), 1);

    let root = local_bucket_root(
        FsPath::new("/t/dest/inv/src/cfg"),
        "inv/src/cfg/data/u.csv.gz",
    );
    assert_eq!(root, Some(PathBuf::from("/t/dest")));
    assert_eq!(
        local_bucket_root(
            FsPath::new("/t/dest/inv/src/cfg"),
            "other/src/cfg/data/u.csv.gz"
        ),
        None
    );

    // A key that does not fit the layout is named.
    let r = Report::new();
    let mut f = r.data("x.csv", b"\"src-bucket\",\"k\"\n");
    f["key"] = "elsewhere/cfg9/data/x.csv".into();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.contains("key \"elsewhere/cfg9/data/x.csv\" does not fit the report layout"),
        "{msg}"
    );
}

#[test]
fn runs_on_the_callers_runtime_from_a_blocking_thread() {
    let r = Report::new();
    let f = r.data("x.csv.gz", &gzip(b"\"src-bucket\",\"k\"\n"));
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = r.url();
    let n = rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let def = table();
                let report = open_report(&url, None, &def).unwrap();
                report.into_changes().count()
            })
            .await
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn in_store_report_resolves_keys_in_the_bucket() {
    use object_store::memory::InMemory;
    use object_store::PutPayload;
    let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(InMemory::new());
    let csv = gzip(b"\"src\",\"x/%E2%82%AC+1\",\"7\"\n");
    let manifest = serde_json::json!({
        "sourceBucket": "src", "destinationBucket": "arn:aws:s3:::dest",
        "version": "2016-11-30", "creationTimestamp": "1700000000000",
        "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size",
        "files": [{"key": "p/src/c/data/u.csv.gz", "size": csv.len(), "MD5checksum": md5_hex(&csv)}],
    })
    .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let put = |k: &str, b: Vec<u8>| {
            let (path, store) = (Path::from(k), store.clone());
            async move { store.put(&path, PutPayload::from(b)).await }
        };
        put("p/src/c/data/u.csv.gz", csv.clone()).await.unwrap();
        put(
            "p/src/c/2023-11-14T22-13Z/manifest.json",
            manifest.clone().into_bytes(),
        )
        .await
        .unwrap();
        put(
            "p/src/c/2023-11-14T22-13Z/manifest.checksum",
            md5_hex(manifest.as_bytes()).into_bytes(),
        )
        .await
        .unwrap();
    });
    let def = table();
    let report = open_report_in_store(
        store.clone(),
        "s3://dest",
        "p/src/c/2023-11-14T22-13Z/manifest.json",
        None,
        &def,
    )
    .unwrap();
    assert_eq!(
        report.data_file_url("p/src/c/data/u.csv.gz"),
        "s3://dest/p/src/c/data/u.csv.gz"
    );
    assert_eq!(report.info.provider, Provider::S3);
    let rows: Vec<Change> = report.into_changes().map(|c| c.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    let Change::Upsert(row) = &rows[0] else {
        panic!()
    };
    assert_eq!(col(row, "key"), s("x/€ 1"));
    assert_eq!(col(row, "prefix"), s("x/"));
    assert_eq!(col(row, "size"), Value::Int64(7));

    // A wrong checksum next to the manifest in the store is caught there too.
    rt.block_on(store.put(
        &Path::from("p/src/c/2023-11-14T22-13Z/manifest.checksum"),
        PutPayload::from("ffffffffffffffffffffffffffffffff"),
    ))
    .unwrap();
    let msg = err_text(open_report_in_store(
        store,
        "s3://dest",
        "p/src/c/2023-11-14T22-13Z/manifest.json",
        None,
        &def,
    ));
    assert!(
        msg.starts_with(
            "s3://dest/p/src/c/2023-11-14T22-13Z/manifest.json: manifest.checksum says ffff"
        ),
        "{msg}"
    );
}

#[test]
fn empty_key_and_missing_manifest_are_refused() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"src-bucket\",\"k\"\n\"src-bucket\",\"\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/x.csv:2: Key: expected a non-empty value, found \"\""),
        "{msg}"
    );

    let missing = r.manifest.with_file_name("nope.json");
    match open_report(&missing.display().to_string(), None, &table()) {
        Err(e) => assert!(e.to_string().contains("nope.json"), "{e}"),
        Ok(_) => panic!("a missing manifest was read"),
    }
}

fn rows_of(report: super::Report) -> Result<Vec<Vec<Value>>> {
    report
        .into_changes()
        .map(|c| match c? {
            Change::Upsert(v) => Ok(v),
            Change::Delete(_) => panic!("delete from a report"),
        })
        .collect()
}

#[test]
fn every_row_must_be_in_the_source_bucket() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"src-bucket\",\"k\"\n\"other\",\"l\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with(
            "data/x.csv:2: Bucket: expected \"src-bucket\" (the manifest's sourceBucket), found \"other\""
        ),
        "{msg}"
    );
}

#[test]
fn provider_names_parse_and_errors_list_them() {
    for p in [Provider::S3, Provider::Oss, Provider::Obs] {
        assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
    }
    match "gcs".parse::<Provider>() {
        Err(Error::InvalidConfig(m)) => {
            assert_eq!(m, "report format: expected s3, oss or obs, found \"gcs\"")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn detection_rules() {
    let detect = |text: &str| {
        let (doc, lenient) = manifest::parse_json(text.as_bytes(), "m").unwrap();
        manifest::detect(&doc, lenient)
    };
    assert_eq!(
        detect(
            r#"{"version":"2016-11-30","creationTimestamp":"1709683200000","files":[{"MD5checksum":"x"}]}"#
        ),
        Provider::S3
    );
    assert_eq!(
        detect(r#"{"version":"2019-09-01","creationTimestamp":"1709683200000","files":[]}"#),
        Provider::Oss
    );
    assert_eq!(
        detect(r#"{"creationTimestamp":"1642994594","files":[]}"#),
        Provider::Oss
    );
    assert_eq!(
        detect(
            r#"{"version":"2016-11-30","creationTimestamp":"1709683200000","files":[{"key":"k","inventoriedRecord":3}]}"#
        ),
        Provider::Obs
    );
    assert_eq!(
        detect(r#"{"version":"2019-01-03","files":[]}"#),
        Provider::Obs
    );
    assert_eq!(
        detect("{\"files\":[{\"key\":\"k\",\"size\":1,}\n]}"),
        Provider::Obs
    );
    // Commas inside strings are data, never trailing commas.
    let (doc, lenient) = manifest::parse_json(br#"{"a":",}","b":[1,2]}"#, "m").unwrap();
    assert!(!lenient);
    assert_eq!(doc["a"], ",}");
}

// ---------------------------------------------------------------- Parquet

const PARQUET_SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary storage_class (UTF8);}";

/// A Parquet file written with the parquet crate's ArrowWriter (pyarrow-written files are
/// tested end to end elsewhere), in `row_group` rows per group.
fn parquet_file(batch: &RecordBatch, row_group: usize) -> Vec<u8> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut out = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    out
}

fn versioned_batch(bucket: &str) -> RecordBatch {
    use arrow::array::{BooleanArray, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_latest", DataType::Boolean, true),
        Field::new("is_delete_marker", DataType::Boolean, true),
        Field::new("size", DataType::Int64, true),
        Field::new(
            "last_modified_date",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("e_tag", DataType::Utf8, true),
        Field::new("storage_class", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec![bucket, bucket, bucket])),
            // Unencoded keys: `+` and `%2B` are literal characters here.
            Arc::new(StringArray::from(vec![
                "d/a+b %2B.txt",
                "d/a+b %2B.txt",
                "top",
            ])),
            Arc::new(StringArray::from(vec![Some("v2"), Some("v1"), None])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(BooleanArray::from(vec![Some(false), Some(true), None])),
            Arc::new(Int64Array::from(vec![Some(10), Some(0), None])),
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    Some(1_709_634_030_123),
                    Some(1_709_634_000_000),
                    None,
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![Some("e2"), None, None])),
            Arc::new(StringArray::from(vec![Some("STANDARD"), None, None])),
        ],
    )
    .unwrap()
}

#[test]
fn parquet_versioned_report_exact_values() {
    let r = Report::new();
    let f = r.data(
        "p.parquet",
        &parquet_file(&versioned_batch("src-bucket"), 1024),
    );
    r.manifest("Parquet", PARQUET_SCHEMA, vec![f]);
    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    assert_eq!(report.info.provider, Provider::S3);
    assert_eq!(report.info.file_format, "Parquet");
    let rows = rows_of(report).unwrap();
    assert_eq!(rows.len(), 3);
    // One row per version, keys never decoded.
    assert_eq!(col(&rows[0], "key"), s("d/a+b %2B.txt"));
    assert_eq!(col(&rows[0], "version_id"), s("v2"));
    assert_eq!(col(&rows[0], "prefix"), s("d/"));
    assert_eq!(col(&rows[0], "is_latest"), Value::Bool(true));
    assert_eq!(col(&rows[0], "size"), Value::Int64(10));
    assert_eq!(
        col(&rows[0], "last_modified"),
        Value::TimestampMs(1_709_634_030_123)
    );
    assert_eq!(col(&rows[0], "etag"), s("e2"));
    assert_eq!(col(&rows[0], "storage_class"), s("STANDARD"));
    assert_eq!(col(&rows[1], "key"), s("d/a+b %2B.txt"));
    assert_eq!(col(&rows[1], "version_id"), s("v1"));
    assert_eq!(col(&rows[1], "is_delete_marker"), Value::Bool(true));
    assert_eq!(col(&rows[1], "etag"), Value::Null);
    // A null version_id is "" (key column); other nulls stay NULL; absent fields are NULL.
    assert_eq!(col(&rows[2], "version_id"), s(""));
    assert_eq!(col(&rows[2], "prefix"), s(""));
    assert_eq!(col(&rows[2], "size"), Value::Null);
    assert_eq!(col(&rows[2], "last_modified"), Value::Null);
    assert_eq!(col(&rows[0], "replication_status"), Value::Null);
    assert_eq!(col(&rows[0], "object_owner"), Value::Null);
}

#[test]
fn parquet_reads_many_batches_and_files() {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    let n = BATCH_ROWS * 2 + 17;
    let keys: Vec<String> = (0..n).map(|i| format!("k/{i:06}")).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            // An int32 size is cast to the int64 column.
            Field::new("size", DataType::Int32, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["src-bucket"; n])),
            Arc::new(StringArray::from(keys.clone())),
            Arc::new(arrow::array::Int32Array::from_iter_values(0..n as i32)),
        ],
    )
    .unwrap();
    let r = Report::new();
    let f1 = r.data("a.parquet", &parquet_file(&batch, 5000));
    let f2 = r.data(
        "b.parquet",
        &parquet_file(&versioned_batch("src-bucket"), 10),
    );
    r.manifest(
        "Parquet",
        "message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional binary e_tag (UTF8); optional binary storage_class (UTF8);}",
        vec![f1, f2],
    );
    let rows = r.read_all().unwrap();
    assert_eq!(rows.len(), n + 3);
    assert_eq!(col(&rows[n - 1], "key"), s(&keys[n - 1]));
    assert_eq!(col(&rows[n - 1], "size"), Value::Int64(n as i64 - 1));
    assert_eq!(col(&rows[n], "version_id"), s("v2"));
}

#[test]
fn parquet_errors_name_file_row_and_field() {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    // A bucket that is not the manifest's: row 2 of the file.
    let r = Report::new();
    let mut batch = versioned_batch("src-bucket");
    let buckets = StringArray::from(vec!["src-bucket", "elsewhere", "src-bucket"]);
    batch = RecordBatch::try_new(batch.schema(), {
        let mut cols = batch.columns().to_vec();
        cols[0] = Arc::new(buckets);
        cols
    })
    .unwrap();
    let f = r.data("p.parquet", &parquet_file(&batch, 1024));
    r.manifest("Parquet", PARQUET_SCHEMA, vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/p.parquet: row 2: Bucket: expected \"src-bucket\" (the manifest's sourceBucket), found \"elsewhere\""),
        "{msg}"
    );

    // A null key.
    let r = Report::new();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["src-bucket", "src-bucket"])),
            Arc::new(StringArray::from(vec![Some("a"), None])),
        ],
    )
    .unwrap();
    let f = r.data("n.parquet", &parquet_file(&batch, 1024));
    r.manifest("Parquet", PARQUET_SCHEMA, vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/n.parquet: row 2: key: expected a non-empty value, found null"),
        "{msg}"
    );

    // A column that is no S3 field.
    let r = Report::new();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("colour", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["src-bucket"])),
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["red"])),
        ],
    )
    .unwrap();
    let f = r.data("c.parquet", &parquet_file(&batch, 1024));
    r.manifest("Parquet", PARQUET_SCHEMA, vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/c.parquet: rows 1..: unknown field \"colour\""),
        "{msg}"
    );

    // A size that is text.
    let r = Report::new();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("size", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["src-bucket"])),
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["12x"])),
        ],
    )
    .unwrap();
    let f = r.data("t.parquet", &parquet_file(&batch, 1024));
    r.manifest("Parquet", PARQUET_SCHEMA, vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains(
            "data/t.parquet: rows 1..: size: expected values for a int64 column, found Utf8"
        ),
        "{msg}"
    );

    // Not a Parquet file at all, and a truncated one.
    let r = Report::new();
    let f = r.data("g.parquet", b"this is not parquet");
    let whole = parquet_file(&versioned_batch("src-bucket"), 1024);
    let g = r.data("h.parquet", &whole[..whole.len() / 2]);
    r.manifest("Parquet", PARQUET_SCHEMA, vec![f.clone()]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/g.parquet: expected a Parquet file, cannot read it"),
        "{msg}"
    );
    r.manifest("Parquet", PARQUET_SCHEMA, vec![g]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/h.parquet: expected a Parquet file, cannot read it"),
        "{msg}"
    );
}

#[test]
fn columnar_file_schemas_are_checked_at_open() {
    let r = Report::new();
    r.manifest(
        "Parquet",
        "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary colour (UTF8);}",
        vec![],
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.contains("fileSchema: unknown field \"colour\""),
        "{msg}"
    );

    r.manifest("ORC", "struct<bucket:string,size:bigint>", vec![]);
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(msg.ends_with("fileSchema: key is missing"), "{msg}");

    r.manifest("Parquet", "Bucket, Key", vec![]);
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.contains("fileSchema: expected a Parquet message type"),
        "{msg}"
    );

    r.manifest(
        "ORC",
        "struct<bucket:string,key:string,tags:map<string,string>>",
        vec![],
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(msg.contains("fileSchema: expected an ORC struct"), "{msg}");

    // AWS's documented ORC schema opens.
    r.manifest("ORC", "struct<bucket:string,key:string,version_id:string,is_latest:boolean,is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,e_tag:string,storage_class:string,is_multipart_uploaded:boolean,replication_status:string,encryption_status:string,object_lock_retain_until_date:timestamp,object_lock_mode:string,object_lock_legal_hold_status:string,intelligent_tiering_access_tier:string,bucket_key_status:string,checksum_algorithm:string,object_access_control_list:string,object_owner:string>", vec![]);
    let report = open_report(&r.url(), None, &table()).unwrap();
    assert_eq!(report.info.file_format, "ORC");
}

// ---------------------------------------------------------------- OSS

const OSS_SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, StorageClass, LastModifiedDate, TransitionTime, ETag, IsMultipartUploaded, EncryptionStatus, ObjectAcl, TaggingCount, ObjectType, Crc64";

/// An OSS manifest as OSS writes it: seconds, upper-case MD5, version 2019-09-01.
fn oss_manifest(r: &Report, schema: &str, files: Vec<serde_json::Value>) {
    let files: Vec<serde_json::Value> = files
        .into_iter()
        .map(|mut f| {
            let upper = f["MD5checksum"].as_str().unwrap().to_uppercase();
            f["MD5checksum"] = upper.into();
            f
        })
        .collect();
    let doc = serde_json::json!({
        "creationTimestamp": "1709683200",
        "destinationBucket": "dest-bucket",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": files,
        "sourceBucket": "src-bucket",
        "version": "2019-09-01",
    });
    r.manifest_json(&serde_json::to_string_pretty(&doc).unwrap(), true);
}

#[test]
fn oss_report_exact_values() {
    let r = Report::new();
    let csv = concat!(
        "\"src-bucket\",\"dir/a%2Bb+c%E6%97%A5.txt\",\"CAEQ\",\"true\",\"false\",\"42\",\"IA\",",
        "\"2024-03-05T10:20:30.000Z\",\"2024-04-01T00:00:00.000Z\",\"\"\"5B0E\"\"\",\"false\",",
        "\"false\",\"default\",\"2\",\"Normal\",\"5476332058845306787\"\n",
        "\"src-bucket\",\"top\",\"\",\"true\",\"false\",\"0\",\"Standard\",",
        "\"2024-03-05T10:20:30.000Z\",\"\",\"\",\"true\",\"true\",\"private\",\"0\",\"Appendable\",\"\"\n",
    );
    let f = r.data("x.csv.gz", &gzip(csv.as_bytes()));
    oss_manifest(&r, OSS_SCHEMA, vec![f]);
    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    assert_eq!(report.info.provider, Provider::Oss);
    assert_eq!(report.info.created_ms, 1_709_683_200_000);
    assert_eq!(report.info.source_bucket, "src-bucket");
    let rows = rows_of(report).unwrap();
    assert_eq!(rows.len(), 2);
    let want = [
        ("key", s("dir/a+b c日.txt")),
        ("prefix", s("dir/")),
        ("version_id", s("CAEQ")),
        ("is_latest", Value::Bool(true)),
        ("size", Value::Int64(42)),
        ("storage_class", s("IA")),
        ("last_modified", Value::TimestampMs(1_709_634_030_000)),
        ("transition_time", Value::TimestampMs(1_711_929_600_000)),
        ("etag", s("\"5B0E\"")),
        ("is_multipart_uploaded", Value::Bool(false)),
        ("encryption_status", s("false")),
        ("object_acl", s("default")),
        ("tagging_count", Value::Int64(2)),
        ("object_type", s("Normal")),
        ("crc64", s("5476332058845306787")),
        ("replication_status", Value::Null),
        ("object_owner", Value::Null),
    ];
    for (name, value) in &want {
        assert_eq!(&col(&rows[0], name), value, "column {name}");
    }
    assert_eq!(col(&rows[1], "version_id"), s(""));
    assert_eq!(col(&rows[1], "transition_time"), Value::Null);
    assert_eq!(col(&rows[1], "crc64"), Value::Null);
    assert_eq!(col(&rows[1], "object_type"), s("Appendable"));
}

#[test]
fn oss_minimal_schema_other_spellings_and_override() {
    // Only Bucket and Key are required; CRC64 and TransistionTime (sic) are OSS spellings too.
    let r = Report::new();
    let f = r.data(
        "x.csv.gz",
        &gzip(b"\"src-bucket\",\"k\",\"123\",\"2024-04-01T00:00:00.000Z\"\n"),
    );
    oss_manifest(&r, "Bucket, Key, CRC64, TransistionTime", vec![f.clone()]);
    let rows = rows_of(open_report(&r.url(), None, &table()).unwrap()).unwrap();
    assert_eq!(col(&rows[0], "crc64"), s("123"));
    assert_eq!(
        col(&rows[0], "transition_time"),
        Value::TimestampMs(1_711_929_600_000)
    );
    assert_eq!(col(&rows[0], "size"), Value::Null);

    // --format s3 reads it by S3's rules, which know no CRC64.
    let msg = err_text(open_report(&r.url(), Some(Provider::S3), &table()));
    assert!(msg.contains("fileSchema: unknown field \"CRC64\""), "{msg}");

    // OSS times are seconds: a millisecond value is refused rather than misread.
    let r = Report::new();
    r.manifest_json(
        r#"{"sourceBucket":"src-bucket","version":"2019-09-01","creationTimestamp":"1709683200000","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[]}"#,
        true,
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.ends_with("creationTimestamp: expected epoch seconds (OSS), found \"1709683200000\""),
        "{msg}"
    );
    r.manifest_json(
        r#"{"sourceBucket":"src-bucket","version":"2019-09-01","creationTimestamp":"1","fileFormat":"ORC","fileSchema":"struct<bucket:string,key:string>","files":[]}"#,
        true,
    );
    let msg = err_text(open_report(&r.url(), None, &table()));
    assert!(
        msg.ends_with("fileFormat: oss reports are CSV, found \"ORC\""),
        "{msg}"
    );

    // A bad TaggingCount names file, line and field.
    let r = Report::new();
    let f = r.data("y.csv", b"\"src-bucket\",\"k\",\"two\"\n");
    oss_manifest(&r, "Bucket, Key, TaggingCount", vec![f]);
    let msg = err_text(rows_of(open_report(&r.url(), None, &table()).unwrap()));
    assert!(
        msg.ends_with("data/y.csv:1: TaggingCount: expected an integer, found \"two\""),
        "{msg}"
    );
}

// ---------------------------------------------------------------- OBS

/// An OBS report folder: data inside the timestamp folder, under files/.
struct ObsReport {
    _dir: tempfile::TempDir,
    folder: PathBuf,
    manifest: PathBuf,
}

impl ObsReport {
    fn new() -> ObsReport {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join("dest-bucket/BucketInventory/src-bucket/inv1/2024-03-06T12-28Z");
        std::fs::create_dir_all(folder.join("files")).unwrap();
        ObsReport {
            manifest: folder.join("manifest.json"),
            _dir: dir,
            folder,
        }
    }

    /// Writes a data file; returns its manifest entry text (percent-encoded key, a trailing
    /// comma as OBS writes it).
    fn data(&self, name: &str, bytes: &[u8], records: u64) -> String {
        std::fs::write(self.folder.join("files").join(name), bytes).unwrap();
        format!(
            r#"{{"key":"BucketInventory%2Fsrc-bucket%2Finv1%2F2024-03-06T12-28Z%2Ffiles%2F{name}","size":{},"inventoriedRecord":{records},}}"#,
            bytes.len()
        )
    }

    fn manifest(&self, schema: &str, files: &[String]) {
        let text = format!(
            "{{\n\"sourceBucket\":\"src-bucket\",\n\"destinationBucket\":\"dest-bucket\",\n\"version\":\"2019-01-03\",\n\"fileFormat\":\"CSV\",\n\"fileSchema\":\"{schema}\",\n\"files\":[\n{}\n]\n}}",
            files.join(",\n")
        );
        std::fs::write(&self.manifest, text).unwrap();
    }

    fn url(&self) -> String {
        self.manifest.display().to_string()
    }
}

#[test]
fn obs_report_exact_values() {
    let r = ObsReport::new();
    let csv = concat!(
        "src-bucket,a%2Fb+c%C3%A9,12,2024-03-05T10:20:30.000Z,abc,STANDARD,false,COMPLETED,SSE-KMS\n",
        "src-bucket,top,0,2024-03-05T10:20:30.000Z,,,,,\n",
    );
    let f1 = r.data("0000016813AF58E6_1.csv", csv.as_bytes(), 2);
    let f2 = r.data(
        "0000016813AF58E6_2.csv",
        b"src-bucket,z,1,2024-03-05T10:20:30.000Z,,,,,\n",
        1,
    );
    r.manifest(
        "Bucket,Key,Size,LastModifiedDate,ETag,StorageClass,IsMultipartUploaded,ReplicationStatus,EncryptionStatus",
        &[f1, f2],
    );
    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    assert_eq!(report.info.provider, Provider::Obs);
    // No creationTimestamp: dated by the manifest's folder.
    assert_eq!(report.info.created_ms, 1_709_728_080_000);
    assert_eq!(report.info.files, 2);
    let rows = rows_of(report).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(col(&rows[0], "key"), s("a/b cé"));
    assert_eq!(col(&rows[0], "prefix"), s("a/"));
    assert_eq!(col(&rows[0], "size"), Value::Int64(12));
    assert_eq!(col(&rows[0], "etag"), s("abc"));
    assert_eq!(col(&rows[0], "replication_status"), s("COMPLETED"));
    assert_eq!(col(&rows[0], "encryption_status"), s("SSE-KMS"));
    assert_eq!(col(&rows[0], "version_id"), s(""));
    assert_eq!(col(&rows[1], "storage_class"), Value::Null);
    assert_eq!(col(&rows[2], "key"), s("z"));
}

#[test]
fn obs_record_counts_and_strictness() {
    let r = ObsReport::new();
    let f = r.data("u_1.csv", b"src-bucket,a\nsrc-bucket,b\n", 3);
    r.manifest("Bucket,Key", &[f]);
    let msg = err_text(rows_of(open_report(&r.url(), None, &table()).unwrap()));
    assert!(
        msg.ends_with("files/u_1.csv: inventoriedRecord: expected 3 rows (manifest), found 2"),
        "{msg}"
    );

    // A missing inventoriedRecord is an error for OBS.
    let r = ObsReport::new();
    r.data("u_1.csv", b"src-bucket,a\n", 1);
    r.manifest(
        "Bucket,Key",
        &[r#"{"key":"BucketInventory%2Fsrc-bucket%2Finv1%2F2024-03-06T12-28Z%2Ffiles%2Fu_1.csv","size":13}"#.to_string()],
    );
    let msg = err_text(open_report(&r.url(), Some(Provider::Obs), &table()));
    assert!(
        msg.ends_with("files[0].inventoriedRecord: missing (required field)"),
        "{msg}"
    );

    // A size mismatch names the decoded file URL; an MD5, when OBS gives one, is checked.
    let r = ObsReport::new();
    let f = r
        .data("u_1.csv", b"src-bucket,a\n", 1)
        .replace("\"size\":13", "\"size\":14");
    r.manifest("Bucket,Key", &[f]);
    let msg = err_text(rows_of(open_report(&r.url(), None, &table()).unwrap()));
    assert!(
        msg.ends_with(
            "/2024-03-06T12-28Z/files/u_1.csv: size: expected 14 bytes (manifest), found 13"
        ),
        "{msg}"
    );
    let f = r.data("u_1.csv", b"src-bucket,a\n", 1).replace(
        "\"size\"",
        "\"MD5checksum\":\"00000000000000000000000000000000\",\"size\"",
    );
    r.manifest("Bucket,Key", &[f]);
    let msg = err_text(rows_of(open_report(&r.url(), None, &table()).unwrap()));
    assert!(
        msg.contains("files/u_1.csv: MD5: expected 00000000000000000000000000000000"),
        "{msg}"
    );

    // A manifest folder that is no timestamp cannot date a report without creationTimestamp.
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("some-folder/manifest.json");
    std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
    std::fs::write(
        &odd,
        r#"{"sourceBucket":"src-bucket","version":"2019-01-03","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[],}"#,
    )
    .unwrap();
    let msg = err_text(open_report(&odd.display().to_string(), None, &table()));
    assert!(
        msg.contains("creationTimestamp: missing, and the manifest's folder \"some-folder\""),
        "{msg}"
    );
}

#[test]
fn obs_report_in_a_store() {
    use object_store::memory::InMemory;
    use object_store::PutPayload;
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let csv = b"src,k%2B1+2\n".to_vec();
    let manifest = format!(
        r#"{{"sourceBucket":"src","destinationBucket":"dest","version":"2019-01-03","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[{{"key":"inv%2Fsrc%2Fid%2F2024-01-02T03-04Z%2Ffiles%2Fu_1.csv","size":{},"inventoriedRecord":1,}}]}}"#,
        csv.len()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        store
            .put(
                &Path::from("inv/src/id/2024-01-02T03-04Z/files/u_1.csv"),
                PutPayload::from(csv),
            )
            .await
            .unwrap();
        store
            .put(
                &Path::from("inv/src/id/2024-01-02T03-04Z/manifest.json"),
                PutPayload::from(manifest.into_bytes()),
            )
            .await
            .unwrap();
    });
    let report = open_report_in_store(
        store,
        "obs://dest",
        "inv/src/id/2024-01-02T03-04Z/manifest.json",
        None,
        &table(),
    )
    .unwrap();
    assert_eq!(report.info.provider, Provider::Obs);
    assert_eq!(report.info.created_ms, 1_704_164_640_000);
    assert_eq!(
        report.info.manifest_url,
        "obs://dest/inv/src/id/2024-01-02T03-04Z/manifest.json"
    );
    let rows = rows_of(report).unwrap();
    assert_eq!(col(&rows[0], "key"), s("k+1 2"));
}

// ---------------------------------------------------------------- ORC

/// An ORC file written with orc-rust's ArrowWriter (arrow 59), in stripes of `batch` rows.
fn orc_file(batch: &arrow::record_batch::RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = orc_rust::ArrowWriterBuilder::new(&mut out, batch.schema())
        .try_build()
        .unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    out
}

fn orc_batch(bucket: &str, n: usize) -> arrow::record_batch::RecordBatch {
    use arrow::array::{BooleanArray, Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_latest", DataType::Boolean, true),
        Field::new("size", DataType::Int64, true),
        Field::new(
            "last_modified_date",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("e_tag", DataType::Utf8, true),
    ]);
    let keys: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 {
                "d/a+b %2B.txt".into()
            } else {
                format!("k/{i:06}")
            }
        })
        .collect();
    arrow::record_batch::RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            std::sync::Arc::new(StringArray::from(vec![bucket; n])),
            std::sync::Arc::new(StringArray::from(keys)),
            std::sync::Arc::new(StringArray::from(
                (0..n).map(|i| (i == 0).then_some("v1")).collect::<Vec<_>>(),
            )),
            std::sync::Arc::new(BooleanArray::from(
                (0..n).map(|i| (i == 0).then_some(true)).collect::<Vec<_>>(),
            )),
            std::sync::Arc::new(Int64Array::from_iter_values(0..n as i64)),
            std::sync::Arc::new(TimestampNanosecondArray::from(
                (0..n)
                    .map(|i| (i == 0).then_some(1_709_634_030_123_000_000))
                    .collect::<Vec<_>>(),
            )),
            std::sync::Arc::new(StringArray::from(
                (0..n).map(|i| (i == 0).then_some("e1")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

const ORC_SCHEMA: &str = "struct<bucket:string,key:string,version_id:string,is_latest:boolean,size:bigint,last_modified_date:timestamp,e_tag:string>";

#[test]
fn orc_report_exact_values_over_many_batches() {
    let n = BATCH_ROWS + 5;
    let r = Report::new();
    let f = r.data("o.orc", &orc_file(&orc_batch("src-bucket", n)));
    r.manifest("ORC", ORC_SCHEMA, vec![f]);
    let def = table();
    let report = open_report(&r.url(), None, &def).unwrap();
    assert_eq!(report.info.file_format, "ORC");
    let rows = rows_of(report).unwrap();
    assert_eq!(rows.len(), n);
    // Keys are not decoded; the timestamp arrives in ms.
    assert_eq!(col(&rows[0], "key"), s("d/a+b %2B.txt"));
    assert_eq!(col(&rows[0], "prefix"), s("d/"));
    assert_eq!(col(&rows[0], "version_id"), s("v1"));
    assert_eq!(col(&rows[0], "is_latest"), Value::Bool(true));
    assert_eq!(col(&rows[0], "size"), Value::Int64(0));
    assert_eq!(
        col(&rows[0], "last_modified"),
        Value::TimestampMs(1_709_634_030_123)
    );
    assert_eq!(col(&rows[0], "etag"), s("e1"));
    assert_eq!(col(&rows[0], "storage_class"), Value::Null);
    let last = &rows[n - 1];
    assert_eq!(col(last, "key"), s(&format!("k/{:06}", n - 1)));
    assert_eq!(col(last, "version_id"), s(""));
    assert_eq!(col(last, "size"), Value::Int64(n as i64 - 1));
    assert_eq!(col(last, "last_modified"), Value::Null);
}

#[test]
fn orc_errors_name_file_and_row() {
    let r = Report::new();
    let mut batch = orc_batch("src-bucket", 3);
    let mut cols = batch.columns().to_vec();
    cols[0] = std::sync::Arc::new(arrow::array::StringArray::from(vec![
        "src-bucket",
        "src-bucket",
        "nope",
    ]));
    batch = arrow::record_batch::RecordBatch::try_new(batch.schema(), cols).unwrap();
    let f = r.data("o.orc", &orc_file(&batch));
    r.manifest("ORC", ORC_SCHEMA, vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/o.orc: row 3: Bucket: expected \"src-bucket\" (the manifest's sourceBucket), found \"nope\""),
        "{msg}"
    );

    let r = Report::new();
    let whole = orc_file(&orc_batch("src-bucket", 100));
    let f = r.data("cut.orc", &whole[..whole.len() - 10]);
    let g = r.data("junk.orc", b"ORC but not really an orc file at all");
    r.manifest("ORC", ORC_SCHEMA, vec![f]);
    let msg = err_text(r.read_all());
    assert!(msg.contains("data/cut.orc: "), "{msg}");
    r.manifest("ORC", ORC_SCHEMA, vec![g]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/junk.orc: expected an ORC file, cannot read it"),
        "{msg}"
    );
}
