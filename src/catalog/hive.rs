//! Hive-dialect DDL: `CREATE EXTERNAL TABLE … STORED AS PARQUET`, `ALTER TABLE … ADD IF NOT
//! EXISTS PARTITION`, `MSCK REPAIR TABLE`.
//!
//! Identifiers are always backtick-quoted (an inner backtick doubled) and strings
//! single-quoted with `\` and `'` escaped by a backslash, which is what Hive and Spark SQL
//! (default `spark.sql.parser.escapedStringLiterals=false`) both parse. Partition columns are
//! `STRING`: their values are the rendered path text (`2024-03-05`, `07`). Statements have no
//! trailing `;`.

use arrow::datatypes::{DataType, TimeUnit};

/// One data column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveColumn {
    /// Column name as in the Parquet files.
    pub name: String,
    /// Hive type, e.g. `BIGINT`, `DECIMAL(10,2)` (see [`hive_type`]).
    pub hive_type: String,
}

/// What the statements need to know of a table.
#[derive(Debug, Clone, Copy)]
pub struct HiveTable<'a> {
    /// Database, or `None` for the session's current one.
    pub database: Option<&'a str>,
    /// Table name.
    pub table: &'a str,
    /// Data columns, in file order.
    pub columns: &'a [HiveColumn],
    /// Partition columns, in path order (all `STRING`).
    pub partition_columns: &'a [String],
    /// Table location: the destination URL joined with the prefix's fixed part.
    pub location: &'a str,
}

impl HiveTable<'_> {
    /// `` `db`.`table` `` or `` `table` ``.
    fn qualified_name(&self) -> String {
        match self.database {
            Some(db) => format!("{}.{}", quote_ident(db), quote_ident(self.table)),
            None => quote_ident(self.table),
        }
    }
}

/// `CREATE EXTERNAL TABLE IF NOT EXISTS` for the table, over Parquet at its location, with
/// `PARTITIONED BY` when it has partition columns.
///
/// ```
/// use lakeport::catalog::{create_table, HiveColumn, HiveTable};
/// let columns = [HiveColumn { name: "key".into(), hive_type: "STRING".into() }];
/// let t = HiveTable {
///     database: Some("lake"),
///     table: "inventory",
///     columns: &columns,
///     partition_columns: &["dt".to_string()],
///     location: "s3://bucket/inventory",
/// };
/// assert_eq!(
///     create_table(&t),
///     "CREATE EXTERNAL TABLE IF NOT EXISTS `lake`.`inventory` (\n  `key` STRING\n)\n\
///      PARTITIONED BY (`dt` STRING)\nSTORED AS PARQUET\nLOCATION 's3://bucket/inventory'"
/// );
/// ```
pub fn create_table(t: &HiveTable<'_>) -> String {
    let columns: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("  {} {}", quote_ident(&c.name), c.hive_type))
        .collect();
    let mut sql = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n{}\n)\n",
        t.qualified_name(),
        columns.join(",\n")
    );
    if !t.partition_columns.is_empty() {
        let parts: Vec<String> = t
            .partition_columns
            .iter()
            .map(|p| format!("{} STRING", quote_ident(p)))
            .collect();
        sql.push_str(&format!("PARTITIONED BY ({})\n", parts.join(", ")));
    }
    sql.push_str(&format!(
        "STORED AS PARQUET\nLOCATION {}",
        quote_string(t.location)
    ));
    sql
}

/// `ALTER TABLE … ADD IF NOT EXISTS PARTITION (…) LOCATION '…'` for one partition; `values`
/// are `(column, value)` pairs in the table's partition-column order.
pub fn add_partition(t: &HiveTable<'_>, values: &[(String, String)], location: &str) -> String {
    let spec: Vec<String> = values
        .iter()
        .map(|(c, v)| format!("{}={}", quote_ident(c), quote_string(v)))
        .collect();
    format!(
        "ALTER TABLE {} ADD IF NOT EXISTS PARTITION ({}) LOCATION {}",
        t.qualified_name(),
        spec.join(", "),
        quote_string(location)
    )
}

/// `MSCK REPAIR TABLE …`: lets the engine discover partitions itself; works only when every
/// partition segment is hive-style (`name=value`) directly under the table location.
pub fn repair_table(t: &HiveTable<'_>) -> String {
    format!("MSCK REPAIR TABLE {}", t.qualified_name())
}

/// An identifier in backticks, inner backticks doubled: ``a`b`` → `` `a``b` ``.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// A string literal in single quotes, `\` and `'` escaped with a backslash.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The Hive type for a column of Arrow (lake) type `dt` as written to Parquet, or `None`
/// when Hive has no faithful type for it: `STRING`, `TINYINT`/`SMALLINT`/`INT`/`BIGINT`,
/// `FLOAT`, `DOUBLE`, `BOOLEAN`, `BINARY`, `DATE`, `TIMESTAMP` (ms or µs, UTC-adjusted),
/// `DECIMAL(p,s)`.
pub fn hive_type(dt: &DataType) -> Option<String> {
    Some(
        match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING",
            DataType::Int8 => "TINYINT",
            DataType::Int16 => "SMALLINT",
            DataType::Int32 => "INT",
            DataType::Int64 => "BIGINT",
            DataType::Float32 => "FLOAT",
            DataType::Float64 => "DOUBLE",
            DataType::Boolean => "BOOLEAN",
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY",
            DataType::Date32 => "DATE",
            DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond, Some(_)) => {
                "TIMESTAMP"
            }
            DataType::Decimal128(p, s) if *s >= 0 && *s as u8 <= *p => {
                return Some(format!("DECIMAL({p},{s})"))
            }
            _ => return None,
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<HiveColumn> {
        vec![
            HiveColumn {
                name: "bucket".into(),
                hive_type: "STRING".into(),
            },
            HiveColumn {
                name: "size".into(),
                hive_type: "BIGINT".into(),
            },
            HiveColumn {
                name: "price".into(),
                hive_type: "DECIMAL(10,2)".into(),
            },
        ]
    }

    #[test]
    fn create_partitioned() {
        let columns = cols();
        let parts = ["year".to_string(), "month".to_string()];
        let t = HiveTable {
            database: Some("lake"),
            table: "inventory",
            columns: &columns,
            partition_columns: &parts,
            location: "file:///var/lake/inv",
        };
        assert_eq!(
            create_table(&t),
            "CREATE EXTERNAL TABLE IF NOT EXISTS `lake`.`inventory` (\n\
             \x20 `bucket` STRING,\n\
             \x20 `size` BIGINT,\n\
             \x20 `price` DECIMAL(10,2)\n\
             )\n\
             PARTITIONED BY (`year` STRING, `month` STRING)\n\
             STORED AS PARQUET\n\
             LOCATION 'file:///var/lake/inv'"
        );
    }

    #[test]
    fn create_unpartitioned_without_database() {
        let columns = cols();
        let t = HiveTable {
            database: None,
            table: "inv",
            columns: &columns[..1],
            partition_columns: &[],
            location: "s3://b/p",
        };
        assert_eq!(
            create_table(&t),
            "CREATE EXTERNAL TABLE IF NOT EXISTS `inv` (\n  `bucket` STRING\n)\n\
             STORED AS PARQUET\nLOCATION 's3://b/p'"
        );
    }

    #[test]
    fn add_partition_text() {
        let columns = cols();
        let parts = ["dt".to_string(), "hh".to_string()];
        let t = HiveTable {
            database: Some("db"),
            table: "t",
            columns: &columns,
            partition_columns: &parts,
            location: "file:///lake",
        };
        let values = [
            ("dt".to_string(), "2024-01-01".to_string()),
            ("hh".to_string(), "07".to_string()),
        ];
        assert_eq!(
            add_partition(&t, &values, "file:///lake/dt=2024-01-01/hh=07"),
            "ALTER TABLE `db`.`t` ADD IF NOT EXISTS PARTITION (`dt`='2024-01-01', `hh`='07') \
             LOCATION 'file:///lake/dt=2024-01-01/hh=07'"
        );
        assert_eq!(repair_table(&t), "MSCK REPAIR TABLE `db`.`t`");
    }

    #[test]
    fn odd_names_and_values_are_quoted() {
        assert_eq!(quote_ident("plain"), "`plain`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("``"), "``````");
        assert_eq!(quote_ident("with space-and.dot"), "`with space-and.dot`");
        assert_eq!(quote_string("plain"), "'plain'");
        assert_eq!(quote_string("it's"), r"'it\'s'");
        assert_eq!(quote_string(r"C:\lake"), r"'C:\\lake'");
        assert_eq!(quote_string(r"\'"), r"'\\\''");
        assert_eq!(quote_string("\"dq\""), "'\"dq\"'");

        let columns = vec![HiveColumn {
            name: "we`ird col".into(),
            hive_type: "STRING".into(),
        }];
        let parts = ["d`t".to_string()];
        let t = HiveTable {
            database: Some("my db"),
            table: "t`1",
            columns: &columns,
            partition_columns: &parts,
            location: "file:///o'neil/lake",
        };
        let sql = create_table(&t);
        assert!(
            sql.starts_with(
                "CREATE EXTERNAL TABLE IF NOT EXISTS `my db`.`t``1` (\n  `we``ird col` STRING\n)"
            ),
            "{sql}"
        );
        assert!(sql.contains("PARTITIONED BY (`d``t` STRING)"), "{sql}");
        assert!(sql.ends_with(r"LOCATION 'file:///o\'neil/lake'"), "{sql}");
        let add = add_partition(&t, &[("d`t".into(), "x'y".into())], "file:///o'neil/lake/x");
        assert_eq!(
            add,
            r"ALTER TABLE `my db`.`t``1` ADD IF NOT EXISTS PARTITION (`d``t`='x\'y') LOCATION 'file:///o\'neil/lake/x'"
        );
    }

    #[test]
    fn no_trailing_semicolons() {
        let columns = cols();
        let t = HiveTable {
            database: None,
            table: "t",
            columns: &columns,
            partition_columns: &[],
            location: "l",
        };
        assert!(!create_table(&t).ends_with(';'));
        assert!(!add_partition(&t, &[], "l").ends_with(';'));
    }

    #[test]
    fn hive_types() {
        use std::sync::Arc;
        let tz: Option<Arc<str>> = Some("UTC".into());
        assert_eq!(hive_type(&DataType::Utf8).as_deref(), Some("STRING"));
        assert_eq!(hive_type(&DataType::Int32).as_deref(), Some("INT"));
        assert_eq!(hive_type(&DataType::Int64).as_deref(), Some("BIGINT"));
        assert_eq!(hive_type(&DataType::Float32).as_deref(), Some("FLOAT"));
        assert_eq!(hive_type(&DataType::Float64).as_deref(), Some("DOUBLE"));
        assert_eq!(hive_type(&DataType::Boolean).as_deref(), Some("BOOLEAN"));
        assert_eq!(hive_type(&DataType::Binary).as_deref(), Some("BINARY"));
        assert_eq!(hive_type(&DataType::Date32).as_deref(), Some("DATE"));
        assert_eq!(
            hive_type(&DataType::Timestamp(TimeUnit::Millisecond, tz.clone())).as_deref(),
            Some("TIMESTAMP")
        );
        assert_eq!(
            hive_type(&DataType::Timestamp(TimeUnit::Microsecond, tz)).as_deref(),
            Some("TIMESTAMP")
        );
        assert_eq!(
            hive_type(&DataType::Decimal128(38, 9)).as_deref(),
            Some("DECIMAL(38,9)")
        );
        assert_eq!(
            hive_type(&DataType::Timestamp(TimeUnit::Millisecond, None)),
            None
        );
        assert_eq!(hive_type(&DataType::UInt64), None);
        assert_eq!(hive_type(&DataType::Decimal128(5, -1)), None);
    }
}
