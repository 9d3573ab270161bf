use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use md5::{Digest, Md5};

use super::*;
use crate::store::schema::OBJECT_INVENTORY_YAML;
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
        let mut report = read_s3_report(&self.url(), &def)?;
        report
            .changes()
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
    let mut report = read_s3_report(&r.url(), &def).unwrap();
    assert_eq!(report.scope_bucket, "src-bucket");
    assert_eq!(report.manifest.creation_timestamp_ms, 1_709_683_200_000);
    assert_eq!(report.manifest.files.len(), 2);
    assert_eq!(
        report.manifest_md5,
        md5_hex(&std::fs::read(&r.manifest).unwrap())
    );
    let rows: Vec<Vec<Value>> = report
        .changes()
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
    assert_eq!(parent_folder("a/b/c"), "a/b/");
    assert_eq!(parent_folder("a/"), "a/");
    assert_eq!(parent_folder("top"), "");
}

#[test]
fn invalid_utf8_key_names_file_and_line() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"b\",\"ok\"\n\"b\",\"bad%FF\"\n");
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
    let f = r.data("x.csv", b"\"b\",\"k\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let sum_path = r.manifest.with_file_name("manifest.checksum");
    std::fs::write(&sum_path, "0123456789abcdef0123456789abcdef\n").unwrap();
    let actual = md5_hex(&std::fs::read(&r.manifest).unwrap());
    let msg = err_text(read_s3_report(&r.url(), &table()));
    assert_eq!(
        msg,
        format!(
            "{}: manifest.checksum says 0123456789abcdef0123456789abcdef, manifest.json has MD5 {actual}",
            r.url()
        )
    );
    // Upper-case hex with whitespace is the same checksum; no checksum file is fine too.
    std::fs::write(&sum_path, format!("  {}\r\n", actual.to_uppercase())).unwrap();
    read_s3_report(&r.url(), &table()).unwrap();
    std::fs::remove_file(&sum_path).unwrap();
    read_s3_report(&r.url(), &table()).unwrap();
}

#[test]
fn data_file_md5_mismatch_is_refused_before_any_row() {
    let r = Report::new();
    let mut f = r.data("x.csv", b"\"b\",\"k\"\n");
    f["MD5checksum"] = "00000000000000000000000000000000".into();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let def = table();
    let mut report = read_s3_report(&r.url(), &def).unwrap();
    let first = report.changes().next().unwrap();
    let msg = err_text(first);
    assert!(
        msg.contains(
            "data/x.csv: MD5: expected 00000000000000000000000000000000 (manifest), found "
        ) && msg.contains(&md5_hex(b"\"b\",\"k\"\n")),
        "{msg}"
    );
}

#[test]
fn size_mismatch_is_refused() {
    let r = Report::new();
    let mut f = r.data("x.csv", b"\"b\",\"k\"\n");
    f["size"] = 99.into();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("data/x.csv: size: expected 99 bytes (manifest), found 8"),
        "{msg}"
    );
}

#[test]
fn missing_data_file_is_refused() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"b\",\"k\"\n");
    std::fs::remove_file(r.config.join("data/x.csv")).unwrap();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(msg.contains("data/x.csv: data file listed in"), "{msg}");
}

#[test]
fn corrupt_and_truncated_gzip_name_the_file() {
    let r = Report::new();
    let mut bad = gzip(b"\"b\",\"k\"\n\"b\",\"l\"\n");
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
    let whole = gzip("\"b\",\"k\"\n".repeat(1000).as_bytes());
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
    let f = r.data("x.csv", b"\"b\",\"k\",\"1\"\n");
    r.manifest("CSV", "Bucket, Key, Colour", vec![f]);
    let msg = err_text(read_s3_report(&r.url(), &table()));
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
        &gzip(b"\"b\",\"k\",\"1\",\"true\"\n\"b\",\"k2\",\"12x\",\"true\"\n"),
    );
    r.manifest("CSV", "Bucket,Key,Size,IsLatest", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/x.csv.gz:2: Size: expected an integer, found \"12x\""),
        "{msg}"
    );

    let r = Report::new();
    let f = r.data("y.csv", b"\"b\",\"k\",\"yes\"\n");
    r.manifest("CSV", "Bucket,Key,IsLatest", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("y.csv:1: IsLatest: expected true or false, found \"yes\""),
        "{msg}"
    );

    let r = Report::new();
    let f = r.data("z.csv", b"\"b\",\"k\",\"2024-13-01\"\n");
    r.manifest("CSV", "Bucket,Key,LastModifiedDate", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.contains("z.csv:1: LastModifiedDate: expected an ISO 8601 date"),
        "{msg}"
    );

    let r = Report::new();
    let f = r.data("w.csv", b"\"b\",\"k\",\"1\"\n\"b\",\"k\"\n");
    r.manifest("CSV", "Bucket,Key,Size", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("w.csv:2: expected 3 fields (fileSchema), found 2"),
        "{msg}"
    );
}

#[test]
fn parquet_and_orc_are_refused_clearly() {
    for format in ["Parquet", "ORC"] {
        let r = Report::new();
        r.manifest(
            format,
            "message s3.inventory { required binary bucket; }",
            vec![],
        );
        let msg = err_text(read_s3_report(&r.url(), &table()));
        assert!(
            msg.contains(&format!(
                "fileFormat: {format} reports are not supported yet"
            )),
            "{msg}"
        );
    }
}

#[test]
fn manifest_field_errors_name_url_and_field() {
    let r = Report::new();
    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":1709683200000,"fileFormat":"CSV","fileSchema":"Bucket,Key"}"#,
        true,
    );
    let msg = err_text(read_s3_report(&r.url(), &table()));
    assert_eq!(msg, format!("{}: files: missing (required field)", r.url()));

    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":"soon","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[]}"#,
        true,
    );
    let msg = err_text(read_s3_report(&r.url(), &table()));
    assert!(
        msg.contains("creationTimestamp: expected epoch milliseconds"),
        "{msg}"
    );

    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":1,"fileFormat":"CSV","fileSchema":"Bucket,Key","files":[{"key":"a/data/x.csv","size":1,"MD5checksum":"zz"}]}"#,
        true,
    );
    let msg = err_text(read_s3_report(&r.url(), &table()));
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
    let mut report = read_s3_report(&r.url(), &def).unwrap();
    assert_eq!(report.manifest.creation_timestamp_ms, 1_709_683_200_000);
    assert_eq!(report.changes().count(), 0);
}

#[test]
fn trailing_comma_manifest_is_refused_for_now() {
    // S3 never writes one; OBS does (issue 3 says accept it there) — left for OBS support.
    let r = Report::new();
    r.manifest_json(
        r#"{"sourceBucket":"s","destinationBucket":"d","creationTimestamp":"1","fileFormat":"CSV","fileSchema":"Bucket,Key","files":[],}"#,
        true,
    );
    let msg = err_text(read_s3_report(&r.url(), &table()));
    assert!(
        msg.starts_with(&format!("{}: not valid JSON", r.url())),
        "{msg}"
    );
}

#[test]
fn file_url_and_layout_rule() {
    let r = Report::new();
    let f = r.data("x.csv", b"\"b\",\"k\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let url = url::Url::from_file_path(&r.manifest).unwrap().to_string();
    let def = table();
    let mut report = read_s3_report(&url, &def).unwrap();
    assert_eq!(report.changes().count(), 1);

    let root = local_bucket_root(
        FsPath::new("/t/dest/inv/src/cfg/2024-01-01T00-00Z"),
        "inv/src/cfg/data/u.csv.gz",
    );
    assert_eq!(root, Some(PathBuf::from("/t/dest")));
    assert_eq!(
        local_bucket_root(
            FsPath::new("/t/dest/inv/src/cfg/ts"),
            "other/src/cfg/data/u.csv.gz"
        ),
        None
    );

    // A key that does not fit the layout is named.
    let r = Report::new();
    let mut f = r.data("x.csv", b"\"b\",\"k\"\n");
    f["key"] = "elsewhere/cfg9/data/x.csv".into();
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(read_s3_report(&r.url(), &table()));
    assert!(
        msg.contains("key \"elsewhere/cfg9/data/x.csv\" does not fit the report layout"),
        "{msg}"
    );
}

#[test]
fn runs_on_a_given_runtime_handle_from_a_blocking_thread() {
    let r = Report::new();
    let f = r.data("x.csv.gz", &gzip(b"\"b\",\"k\"\n"));
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = r.url();
    let handle = rt.handle().clone();
    let n = rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let def = table();
                let mut report = read_s3_report_on(handle, &url, &def).unwrap();
                report.changes().count()
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
    let mut report = read_s3_report_in_store(
        store.clone(),
        "s3://dest",
        "p/src/c/2023-11-14T22-13Z/manifest.json",
        &def,
    )
    .unwrap();
    let rows: Vec<Change> = report.changes().map(|c| c.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    let Change::Upsert(row) = &rows[0] else {
        panic!()
    };
    assert_eq!(col(row, "key"), s("x/€ 1"));
    assert_eq!(col(row, "prefix"), s("x/"));
    assert_eq!(col(row, "size"), Value::Int64(7));
    assert_eq!(
        report.data_file_url("p/src/c/data/u.csv.gz"),
        "s3://dest/p/src/c/data/u.csv.gz"
    );

    // A wrong checksum next to the manifest in the store is caught there too.
    rt.block_on(store.put(
        &Path::from("p/src/c/2023-11-14T22-13Z/manifest.checksum"),
        PutPayload::from("ffffffffffffffffffffffffffffffff"),
    ))
    .unwrap();
    let msg = err_text(read_s3_report_in_store(
        store,
        "s3://dest",
        "p/src/c/2023-11-14T22-13Z/manifest.json",
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
    let f = r.data("x.csv", b"\"b\",\"k\"\n\"b\",\"\"\n");
    r.manifest("CSV", "Bucket,Key", vec![f]);
    let msg = err_text(r.read_all());
    assert!(
        msg.ends_with("data/x.csv:2: Key: expected a non-empty value, found \"\""),
        "{msg}"
    );

    let missing = r.manifest.with_file_name("nope.json");
    match read_s3_report(&missing.display().to_string(), &table()) {
        Err(e) => assert!(e.to_string().contains("nope.json"), "{e}"),
        Ok(_) => panic!("a missing manifest was read"),
    }
}
