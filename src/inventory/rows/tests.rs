//! Unit tests of row files: values of every type, errors that name `file:line: column:`.

use super::*;
use crate::store::Tables;
use std::io::Write;

fn table() -> TableDef {
    TableDef::from_yaml(
        "table: t\nprimary_key: [id, name]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: name, type: string }\n  - { name: score, type: double }\n  - { name: ok, type: bool }\n  - { name: blob, type: binary }\n  - { name: at, type: timestamp_ms }\n",
        "t.yaml",
    )
    .unwrap()
}

fn file(text: &str, ext: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn changes(text: &str, ext: &str, action: RowAction) -> Result<Vec<Change>> {
    let f = file(text, ext);
    let table = table();
    let format = RowFormat::from_path(f.path()).unwrap();
    let changes = read_rows(f.path(), format, &table, action)?
        .map(|row| row.map(|r| r.change))
        .collect();
    changes
}

#[test]
fn ndjson_every_type() {
    let got = changes(
        "{\"id\": 1, \"name\": \"a\", \"score\": 1.5, \"ok\": true, \"blob\": \"AAE=\", \"at\": \"2024-01-01T01:00:00+01:00\"}\n\n{\"id\": \"2\", \"name\": \"b\", \"score\": \"NaN\", \"at\": 5}\n",
        ".ndjson",
        RowAction::Upsert,
    )
    .unwrap();
    assert_eq!(
        got[0],
        Change::Upsert(vec![
            Value::Int64(1),
            Value::String("a".into()),
            Value::Double(1.5),
            Value::Bool(true),
            Value::Binary(vec![0, 1]),
            Value::TimestampMs(1_704_067_200_000),
        ])
    );
    match &got[1] {
        Change::Upsert(v) => {
            assert_eq!(v[0], Value::Int64(2));
            assert!(matches!(v[2], Value::Double(d) if d.is_nan()));
            assert_eq!(v[3], Value::Null);
            assert_eq!(v[5], Value::TimestampMs(5));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ndjson_errors_name_file_line_and_column() {
    let err = changes(
        "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 1.5, \"name\": \"a\"}\n",
        ".ndjson",
        RowAction::Upsert,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with(":2: id: expected a 64-bit integer, found number 1.5"),
        "{err}"
    );
    let err = changes(
        "{\"id\": 1, \"name\": \"a\", \"at\": \"yesterday\"}\n",
        ".ndjson",
        RowAction::Upsert,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(":1: at: expected an RFC 3339 timestamp"),
        "{err}"
    );
    let err = changes(
        "{\"id\": 1, \"nme\": \"a\"}\n",
        ".ndjson",
        RowAction::Upsert,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(":1: nme: not a column of table t"), "{err}");
    let err = changes("{\"id\": 1,\n", ".ndjson", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":1: expected one JSON object per line"),
        "{err}"
    );
    let err = changes("{\"id\": 1}\n", ".ndjson", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            ":1: name: expected a string value (a key column cannot be null), found no value"
        ),
        "{err}"
    );
}

#[test]
fn csv_rows_and_nulls() {
    let got = changes(
        "id,name,score,ok\n1,,2.5,1\n2,b,,false\n",
        ".csv",
        RowAction::Upsert,
    )
    .unwrap();
    assert_eq!(
        got[0],
        Change::Upsert(vec![
            Value::Int64(1),
            Value::String(String::new()),
            Value::Double(2.5),
            Value::Bool(true),
            Value::Null,
            Value::Null,
        ])
    );
    match &got[1] {
        Change::Upsert(v) => assert_eq!((&v[2], &v[3]), (&Value::Null, &Value::Bool(false))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_errors_name_file_line_and_column() {
    let err = changes("id,name\n1,a\n2,b\nx,c\n", ".csv", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(":4: id: expected a 64-bit integer, found \"x\""),
        "{err}"
    );
    let err = changes("id,score\n1,2\n", ".csv", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(":1: name: key column missing from the header"),
        "{err}"
    );
    let err = changes("id,name\n1,a,3\n", ".csv", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":2: "), "{err}");
}

#[test]
fn delete_keeps_only_the_key() {
    let got = changes(
        "{\"id\": 7, \"name\": \"x\", \"score\": 1}\n",
        ".jsonl",
        RowAction::Delete,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![Change::Delete(vec![
            Value::Int64(7),
            Value::String("x".into())
        ])]
    );
}

#[test]
fn stops_after_first_error() {
    let f = file(
        "{\"id\": \"x\", \"name\": \"a\"}\n{\"id\": 1, \"name\": \"a\"}\n",
        ".ndjson",
    );
    let table = table();
    let mut it = read_rows(f.path(), RowFormat::Ndjson, &table, RowAction::Upsert).unwrap();
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

fn file_bytes(data: &[u8], ext: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(data).unwrap();
    f
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

/// The rows of a file whose format its name implies (lines and changes), or the error.
fn rows_of(f: &tempfile::NamedTempFile) -> Result<Vec<Row>> {
    let table = table();
    let format = RowFormat::from_path(f.path()).unwrap();
    let rows = read_rows(f.path(), format, &table, RowAction::Upsert)?.collect();
    rows
}

fn upsert(id: i64, name: &str, score: Value) -> Change {
    let mut values = vec![Value::Null; 6];
    values[0] = Value::Int64(id);
    values[1] = Value::String(name.into());
    values[2] = score;
    Change::Upsert(values)
}

#[test]
fn format_from_the_name_without_gz() {
    let format = |name: &str| RowFormat::from_path(Path::new(name));
    assert_eq!(format("a/x.ndjson.gz"), Some(RowFormat::Ndjson));
    assert_eq!(format("x.jsonl.GZ"), Some(RowFormat::Ndjson));
    assert_eq!(format("x.json.gz"), Some(RowFormat::Ndjson));
    assert_eq!(format("X.CSV.gz"), Some(RowFormat::Csv));
    assert_eq!(format("x.csv"), Some(RowFormat::Csv));
    assert_eq!(format("x.gz"), None);
    assert_eq!(format("x.txt.gz"), None);
    assert_eq!(format("x.csv.gz.bak"), None);
}

#[test]
fn gzip_files_read_as_their_uncompressed_form() {
    // Two gzip members one after the other (`cat a.gz b.gz`) are one stream.
    let mut two = gzip("{\"id\": 1, \"name\": \"a\"}\n\n");
    two.extend(gzip("{\"id\": 2, \"name\": \"b\", \"score\": \"-inf\"}\n"));
    let got = rows_of(&file_bytes(&two, ".ndjson.gz")).unwrap();
    assert_eq!(
        got,
        vec![
            Row {
                line: 1,
                change: upsert(1, "a", Value::Null)
            },
            Row {
                line: 3,
                change: upsert(2, "b", Value::Double(f64::NEG_INFINITY))
            },
        ]
    );
    let csv = gzip("id,name,score\n1,a,inf\n2,b,2.5\n");
    let got = rows_of(&file_bytes(&csv, ".csv.gz")).unwrap();
    let changes: Vec<Change> = got.into_iter().map(|r| r.change).collect();
    assert_eq!(
        changes,
        vec![
            upsert(1, "a", Value::Double(f64::INFINITY)),
            upsert(2, "b", Value::Double(2.5))
        ]
    );
    // --format with a .gz name: still decompressed.
    let f = file_bytes(&gzip("id,name\n3,c\n"), ".data.gz");
    let table = table();
    let got: Vec<Row> = read_rows(f.path(), RowFormat::Csv, &table, RowAction::Upsert)
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(got.len(), 1);
}

#[test]
fn corrupt_gzip_names_the_file() {
    for (ext, text) in [
        (".csv.gz", format!("id,name\n{}", "1,a\n".repeat(50))),
        (".ndjson.gz", "{\"id\": 1, \"name\": \"a\"}\n".repeat(50)),
    ] {
        let good = gzip(&text);
        let truncated = good[..good.len() / 2].to_vec();
        // The last 8 bytes are the CRC-32 and the length of the data.
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        let cases: [(&str, Vec<u8>); 4] = [
            ("truncated", truncated),
            ("checksum", bad_crc),
            ("not gzip", text.into_bytes()),
            ("0 bytes", Vec::new()),
        ];
        for (what, data) in cases {
            let f = file_bytes(&data, ext);
            let err = rows_of(&f).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{what}: {err:?}");
            let msg = err.to_string();
            let path = f.path().display().to_string();
            assert!(
                msg.starts_with(&format!("{path}:")) && msg.contains("not valid gzip data"),
                "{what} {ext}: {msg}"
            );
        }
    }
}

#[test]
fn repeated_json_field_is_an_error() {
    let err = changes(
        "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"a\", \"name\": \"b\"}\n",
        ".ndjson",
        RowAction::Upsert,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with(":2: name: the object names this field twice; expected each field once"),
        "{err}"
    );
    // The same value twice, and in a delete file: an error all the same.
    let err = changes(
        "{\"id\": 1, \"name\": \"a\", \"score\": 1, \"score\": 1}\n",
        ".ndjson",
        RowAction::Delete,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(":1: score: the object names this field twice"),
        "{err}"
    );
}

#[test]
fn empty_csv_has_no_header() {
    let err = changes("", ".csv", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            ":1: empty file, no header: expected a header line naming the columns (at least the key columns: id, name)"
        ),
        "{err}"
    );
    let err = rows_of(&file_bytes(&gzip(""), ".csv.gz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1: empty file, no header"), "{err}");
    // A header and no rows is a file of no rows; so is an empty NDJSON file.
    assert_eq!(
        changes("id,name\n", ".csv", RowAction::Upsert).unwrap(),
        vec![]
    );
    assert_eq!(changes("", ".ndjson", RowAction::Upsert).unwrap(), vec![]);
}

#[test]
fn rows_carry_the_line_they_start_on() {
    let got = rows_of(&file("id,name\n1,\"two\nlines\"\n\n2,b\n", ".csv")).unwrap();
    let lines: Vec<u64> = got.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 5]);
    let got = rows_of(&file(
        "\n{\"id\": 1, \"name\": \"a\"}\n  \n{\"id\": 2, \"name\": \"b\"}\n",
        ".ndjson",
    ))
    .unwrap();
    let lines: Vec<u64> = got.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 4]);
}

#[test]
fn csv_field_that_is_not_utf8_names_its_column() {
    let f = file_bytes(b"id,name\n1,a\n2,b\xff\n", ".csv");
    let err = rows_of(&f).unwrap_err().to_string();
    assert!(
        err.ends_with(
            ":3: name: expected UTF-8 text, found bytes that are not (at byte 1 of the field)"
        ),
        "{err}"
    );
}

#[test]
fn store_refusals_name_the_file_and_line_of_their_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let table = table();
    store.ensure_table(&table).unwrap();
    let apply = |text: &str, ext: &str| {
        let f = file(text, ext);
        let format = RowFormat::from_path(f.path()).unwrap();
        let path = f.path().display().to_string();
        apply_file(&store, f.path(), format, &table, RowAction::Upsert)
            .map_err(|e| (e.to_string().replacen(&path, "FILE", 1), e))
    };
    let rows = |store: &crate::store::SqliteStore| store.table_stats().unwrap()[0].rows;

    // NaN reaches the store, which refuses it: the error names the row's line, and nothing
    // of the file is applied.
    for (text, ext) in [
        ("id,name,score\n1,a,1\n\n2,\"b\nc\",nan\n3,d,4\n", ".csv"),
        (
            "{\"id\": 1, \"name\": \"a\", \"score\": 1}\n\n\n{\"id\": 2, \"name\": \"b\", \"score\": \"NaN\"}\n",
            ".ndjson",
        ),
    ] {
        let (msg, err) = apply(text, ext).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert!(
            msg.starts_with("FILE:4: column score: expected double, found double NaN (NaN is not stored"),
            "{msg}"
        );
        assert_eq!(rows(&store), 0);
    }
    // The reader's own errors are named once.
    let (msg, _) = apply("id,name\n1,a\nx,b\n", ".csv").unwrap_err();
    assert_eq!(msg, "FILE:3: id: expected a 64-bit integer, found \"x\"");

    // Infinities are stored, and a second load of them changes nothing.
    let inf = "id,name,score\n1,a,inf\n2,b,-Infinity\n";
    let first = apply(inf, ".csv").unwrap();
    assert_eq!((first.inserted, first.unchanged), (2, 0));
    let again = apply(inf, ".csv").unwrap();
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
}

#[test]
fn csv_lines_count_blank_lines_and_crlf() {
    // The csv crate's own positions are one too low here (rust-csv#208, #395).
    for (text, lines) in [
        (
            "id,name\r\n1,a\r\n\r\n2,b\r\n3,\"x\r\ny\"\r\n4,z\r\n",
            vec![2, 4, 5, 7],
        ),
        ("\n\nid,name\n1,a\n\n\n2,b", vec![4, 7]),
        ("id,name\r1,a\r\r2,b\r", vec![2, 4]),
    ] {
        let got = rows_of(&file(text, ".csv")).unwrap();
        let got: Vec<u64> = got.iter().map(|r| r.line).collect();
        assert_eq!(got, lines, "{text:?}");
    }
    let err = changes("\r\nid,nme\r\n", ".csv", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":2: nme: not a column of table t"), "{err}");
    // Far beyond the CSV reader's buffer, CRLF and blank lines: the bad row's own line.
    let mut text = String::from("id,name\r\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},\"n\r\n{i}\"\r\n\r\n"));
    }
    text.push_str("x,bad\r\n");
    let err = changes(&text, ".csv", RowAction::Upsert)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(":60002: id: expected a 64-bit integer, found \"x\""),
        "{err}"
    );
}
