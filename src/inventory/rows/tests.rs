//! Unit tests of row files: values of every type, errors that name `file:line: column:`.

use super::*;
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
    let changes = read_changes(f.path(), format, &table, action)?.collect();
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
    let mut it = read_changes(f.path(), RowFormat::Ndjson, &table, RowAction::Upsert).unwrap();
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}
