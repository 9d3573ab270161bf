//! Checks every backend makes the same way: a row's values against its table's declared
//! columns, and a stored table definition against a declared one.

use std::fmt;

use crate::error::{Error, Result};
use crate::store::schema::is_identifier;
use crate::store::{ColumnType, TableDef, Value};

/// Checks an upsert's values against the declared columns (`is_key[i]`: column i is part of
/// the primary key, so it cannot be NULL).
pub(crate) fn check_row(def: &TableDef, is_key: &[bool], values: &[Value]) -> Result<()> {
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
    Ok(())
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
        Value::Double(d) if d.is_nan() => " (NaN is not stored: it equals no value, so a change to or from it could not be told)",
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

