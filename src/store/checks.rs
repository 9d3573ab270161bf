//! Checks every backend makes the same way: a row's values against its table's declared
//! columns, and a stored table definition against a declared one.

use std::fmt;

use crate::error::{Error, Result};
use crate::model::schema::{is_identifier, parent_folder, DerivedFolder};
use crate::model::{ColumnType, TableDef};
use crate::store::{Change, ImportRecord, Value, WorkerRecord};

/// Checks an upsert's values against the declared columns (`is_key[i]`: column i is part of
/// the primary key, so it cannot be NULL; `derived`: the table's
/// [`TableDef::derived_folder`], whose value must be exactly the key's folder).
pub(crate) fn check_row(
    def: &TableDef,
    is_key: &[bool],
    derived: Option<DerivedFolder>,
    values: &[Value],
) -> Result<()> {
    let cols = &def.columns;
    for (i, c) in cols.iter().enumerate() {
        match values.get(i) {
            Some(v) => check_value(&c.name, c.ty, is_key[i], v)?,
            None => {
                return Err(Error::InvalidInput(format!(
                    "column {}: expected {}, found no value (the upsert has {} values, table {} has {} columns)",
                    c.name,
                    c.ty,
                    values.len(),
                    def.table,
                    cols.len()
                )))
            }
        }
    }
    if values.len() > cols.len() {
        return Err(Error::InvalidInput(format!(
            "expected {} values (the columns of table {}), found {}",
            cols.len(),
            def.table,
            values.len()
        )));
    }
    if let Some(d) = derived {
        check_derived_folder(def, d, values)?;
    }
    Ok(())
}

/// Checks that the derived column holds the key's folder (see [`TableDef::derived_folder`]).
fn check_derived_folder(def: &TableDef, d: DerivedFolder, values: &[Value]) -> Result<()> {
    match derived_folder_problem(def, d, values) {
        None => Ok(()),
        Some(problem) => Err(Error::InvalidInput(format!("column {problem}"))),
    }
}

/// What is wrong with a row's derived column (see [`TableDef::derived_folder`]), as
/// `<column>: expected …, found …`; `None` when it holds the key's folder (or the key is not
/// text, which the type check reports).
pub(crate) fn derived_folder_problem(
    def: &TableDef,
    d: DerivedFolder,
    values: &[Value],
) -> Option<String> {
    let Value::String(key) = &values[d.key] else {
        return None;
    };
    let folder = parent_folder(key);
    match &values[d.column] {
        Value::String(given) if given == folder => None,
        given => Some(format!(
            "{}: expected {folder:?}, the folder of {} {key:?} (table {} derives it), found {}",
            def.columns[d.column].name,
            def.columns[d.key].name,
            def.table,
            Described(given)
        )),
    }
}

/// Checks a delete's key values against the declared key columns (`key_idx`: their column
/// indexes in key order).
pub(crate) fn check_key(def: &TableDef, key_idx: &[usize], key: &[Value]) -> Result<()> {
    for (j, &i) in key_idx.iter().enumerate() {
        let c = &def.columns[i];
        match key.get(j) {
            Some(v) => check_value(&c.name, c.ty, true, v)?,
            None => {
                return Err(Error::InvalidInput(format!(
                    "column {}: expected {}, found no value (the delete has {} key values, table {} has {} key columns)",
                    c.name,
                    c.ty,
                    key.len(),
                    def.table,
                    key_idx.len()
                )))
            }
        }
    }
    if key.len() > key_idx.len() {
        return Err(Error::InvalidInput(format!(
            "expected {} key values (primary key of table {}), found {}",
            key_idx.len(),
            def.table,
            key.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(name: &str, ty: ColumnType, key: bool, v: &Value) -> Result<()> {
    let ok = match (ty, v) {
        (_, Value::Null) => !key,
        (ColumnType::Double, Value::Double(d)) => !d.is_nan(),
        (ColumnType::String, Value::String(_))
        | (ColumnType::Int64, Value::Int64(_))
        | (ColumnType::Bool, Value::Bool(_))
        | (ColumnType::Binary, Value::Binary(_))
        | (ColumnType::TimestampMs, Value::TimestampMs(_)) => true,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let why = match v {
        Value::Null => " (key columns cannot be NULL)",
        Value::Double(d) if d.is_nan() => {
            " (NaN is not stored: it equals no value, so a change to or from it could not be told)"
        }
        _ => "",
    };
    Err(Error::InvalidInput(format!(
        "column {name}: expected {ty}, found {}{why}",
        Described(v)
    )))
}

/// A value as an error message shows it: its type and a short rendering.
pub(crate) struct Described<'a>(&'a Value);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("null"),
            Value::String(s) => {
                let short: String = s.chars().take(40).collect();
                let more = if short.len() < s.len() { "…" } else { "" };
                write!(f, "string {short:?}{more}")
            }
            Value::Int64(v) => write!(f, "int64 {v}"),
            Value::Double(v) => write!(f, "double {v}"),
            Value::Bool(v) => write!(f, "bool {v}"),
            Value::Binary(b) => write!(f, "binary ({} bytes)", b.len()),
            Value::TimestampMs(v) => write!(f, "timestamp_ms {v}"),
        }
    }
}

/// What differs between the stored and the declared definition of one table.
pub(crate) fn differences(stored: &TableDef, declared: &TableDef) -> Vec<String> {
    let mut out = Vec::new();
    if stored.primary_key != declared.primary_key {
        out.push(format!(
            "primary key: stored [{}], declared [{}]",
            stored.primary_key.join(", "),
            declared.primary_key.join(", ")
        ));
    }
    for c in &stored.columns {
        match declared.column(&c.name) {
            None => out.push(format!(
                "column {}: stored as {}, not declared",
                c.name, c.ty
            )),
            Some(d) if d.ty != c.ty => out.push(format!(
                "column {}: stored as {}, declared as {}",
                c.name, c.ty, d.ty
            )),
            Some(_) => {}
        }
    }
    for d in &declared.columns {
        if stored.column(&d.name).is_none() {
            out.push(format!(
                "column {}: declared as {}, not in the store",
                d.name, d.ty
            ));
        }
    }
    if out.is_empty() && stored.columns != declared.columns {
        let names = |t: &TableDef| {
            t.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "column order: stored [{}], declared [{}]",
            names(stored),
            names(declared)
        ));
    }
    out
}

/// Basic checks on a definition that did not come through `TableDef::from_yaml`.
pub(crate) fn check_def(def: &TableDef) -> Result<()> {
    let bad_name = !is_identifier(&def.table)
        || def
            .columns
            .iter()
            .any(|c| !is_identifier(&c.name) || c.name.starts_with('_'));
    let bad_key = def.primary_key.is_empty() || def.key_indexes().len() != def.primary_key.len();
    if bad_name || bad_key || def.columns.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "table {:?}: not a valid declaration (names, columns or primary key)",
            def.table
        )));
    }
    Ok(())
}

/// The table's first two key columns must be strings: the bucket and the key of a scope.
pub(crate) fn check_scope_columns(def: &TableDef, key_idx: &[usize]) -> Result<()> {
    let string_key = |j: usize| {
        key_idx
            .get(j)
            .is_some_and(|&i| def.columns[i].ty == ColumnType::String)
    };
    if string_key(0) && string_key(1) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "table {}: a snapshot import needs a primary key that starts with two string \
             columns (bucket, key), found [{}]",
            def.table,
            def.primary_key.join(", ")
        )))
    }
}

/// The values of one change of a snapshot import into `draft`'s scope, checked: an upsert (a
/// snapshot holds no deletes), inside the scope, of the table's types.
pub(crate) fn snapshot_row(
    draft: &ImportRecord,
    def: &TableDef,
    key_idx: &[usize],
    is_key: &[bool],
    derived: Option<DerivedFolder>,
    change: Change,
) -> Result<Vec<Value>> {
    let values = match change {
        Change::Upsert(values) => values,
        Change::Delete(_) => {
            return Err(Error::InvalidInput(format!(
                "{}: a snapshot holds rows, not deletes",
                draft.manifest_url
            )))
        }
    };
    check_in_scope(key_idx, draft, &values)?;
    check_row(def, is_key, derived, &values)?;
    Ok(values)
}

/// Checks that an upsert of a snapshot import lies inside the draft's scope (its first key
/// column is the bucket, its second starts with the prefix).
pub(crate) fn check_in_scope(
    key_idx: &[usize],
    draft: &ImportRecord,
    values: &[Value],
) -> Result<()> {
    let bucket = values.get(key_idx[0]);
    let key = values.get(key_idx[1]);
    let inside = matches!(bucket, Some(Value::String(b)) if *b == draft.scope_bucket)
        && matches!(key, Some(Value::String(k)) if k.starts_with(&draft.scope_prefix));
    if inside {
        return Ok(());
    }
    let show = |v: Option<&Value>| match v {
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => format!("{other:?}"),
        None => "nothing".into(),
    };
    Err(Error::InvalidInput(format!(
        "{}: row with bucket {} and key {} is outside the snapshot's scope (bucket {:?}, prefix {:?})",
        draft.manifest_url,
        show(bucket),
        show(key),
        draft.scope_bucket,
        draft.scope_prefix
    )))
}

/// Refuses a snapshot (`draft`) created before `newest`, the newest one applied to its scope:
/// reports apply in creation order.
/// A checkpoint (`after_seq`) must not be above the store's newest `_seq`: one that is came
/// from another store ([`Error::Conflict`]).
pub(crate) fn checkpoint_within(table: &str, after_seq: u64, seq: u64) -> Result<()> {
    if after_seq > seq {
        return Err(Error::Conflict(format!(
            "changes of table {table}: the checkpoint _seq {after_seq} is above the store's \
             newest _seq {seq}; was the store replaced by an older one?"
        )));
    }
    Ok(())
}

pub(crate) fn older_than_newest(draft: &ImportRecord, newest: &ImportRecord) -> Result<()> {
    if draft.created_ms >= newest.created_ms {
        return Ok(());
    }
    let scope = if draft.scope_prefix.is_empty() {
        format!("bucket {}", draft.scope_bucket)
    } else {
        format!(
            "bucket {} prefix {:?}",
            draft.scope_bucket, draft.scope_prefix
        )
    };
    Err(Error::Conflict(format!(
        "{}: refused: this snapshot was created at {}, before the newest one applied to {scope} \
         (created at {}, {}, import {}); reports apply in creation order",
        draft.manifest_url,
        show_ms(draft.created_ms),
        show_ms(newest.created_ms),
        newest.manifest_url,
        newest.import_id
    )))
}

/// An epoch-ms time as RFC 3339 UTC (the number itself when out of range).
pub(crate) fn show_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// A worker's record as stored: the time of this report (now, ms since epoch UTC) and the
/// record with `heartbeat_ms` set to it, as JSON.
pub(crate) fn worker_json(worker: &WorkerRecord) -> Result<(i64, String)> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut record = worker.clone();
    record.heartbeat_ms = now;
    let json = serde_json::to_string(&record)
        .map_err(|e| Error::store_caused(format!("encoding worker {}", worker.worker_id), e))?;
    Ok((now, json))
}

/// Stored worker records, oldest first.
pub(crate) fn decode_workers(records: &[String]) -> Result<Vec<WorkerRecord>> {
    let mut out = records
        .iter()
        .map(|json| {
            serde_json::from_str::<WorkerRecord>(json)
                .map_err(|e| Error::store_caused("a stored worker record is not valid", e))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| (a.started_ms, &a.worker_id).cmp(&(b.started_ms, &b.worker_id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::OBJECT_INVENTORY_YAML;

    #[test]
    fn a_derived_folder_must_be_the_keys() {
        let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "builtin").unwrap();
        let derived = def.derived_folder();
        let is_key: Vec<bool> = def.columns.iter().map(|c| def.is_key(&c.name)).collect();
        let row = |prefix: Value| {
            def.columns
                .iter()
                .map(|c| match c.name.as_str() {
                    "bucket" => Value::String("b".into()),
                    "key" => Value::String("a/b/c".into()),
                    "version_id" => Value::String(String::new()),
                    "prefix" => prefix.clone(),
                    _ => Value::Null,
                })
                .collect::<Vec<_>>()
        };
        assert!(check_row(&def, &is_key, derived, &row(Value::String("a/b/".into()))).is_ok());
        for (given, shown) in [
            (Value::String("a/".into()), "string \"a/\""),
            (Value::Null, "null"),
        ] {
            let e = check_row(&def, &is_key, derived, &row(given)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "column prefix: expected \"a/b/\", the folder of key \
                     \"a/b/c\" (table object_inventory derives it), found {shown}"
                )
            );
        }
        // A table without a derived column takes any value there.
        assert!(check_row(&def, &is_key, None, &row(Value::Null)).is_ok());
    }
}
