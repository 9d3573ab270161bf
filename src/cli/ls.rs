//! `lakeport ls <bucket>`: one page of a bucket's current objects, answered from the
//! `object_inventory` table (semantics in `store::listing`), printed like `aws s3 ls` or as
//! ListObjectsV2-like JSON.

use serde_json::json;

use crate::cli::{print, to_json, Context};
use crate::error::{Error, Result};
use crate::store::blocking;
use crate::store::listing::{
    ListPage, ListQuery, ObjectEntry, DEFAULT_LIST_LIMIT, FOLDER_DELIMITER, MAX_LIST_LIMIT,
};

/// Arguments of `ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bucket name as in the table's `bucket` column, or a URL such as s3://bucket/prefix
    /// (its path is the prefix).
    bucket: String,
    /// Only keys starting with this (a byte prefix, not necessarily a folder).
    #[arg(long)]
    prefix: Option<String>,
    /// List one level: keys below a further "/" after the prefix show as folders (PRE).
    #[arg(long)]
    non_recursive: bool,
    /// Entries and folders per page.
    #[arg(long, default_value_t = DEFAULT_LIST_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_LIST_LIMIT as u64))]
    limit: usize,
    /// Resume after the page that printed this token.
    #[arg(long)]
    continuation_token: Option<String>,
    /// Print ListObjectsV2-like JSON.
    #[arg(long)]
    json: bool,
}

/// Splits `s3://bucket/prefix` (any scheme) into bucket and prefix; a plain name is a bucket.
fn bucket_and_prefix(arg: &str, prefix: Option<String>) -> Result<(String, String)> {
    let Some((_, rest)) = arg.split_once("://") else {
        return Ok((arg.to_string(), prefix.unwrap_or_default()));
    };
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "bucket: {arg:?} names no bucket; expected NAME or s3://NAME/PREFIX"
        )));
    }
    match prefix {
        Some(p) if !path.is_empty() => Err(Error::InvalidConfig(format!(
            "--prefix {p:?}: the URL {arg:?} already gives the prefix {path:?}; give one of them"
        ))),
        Some(p) => Ok((bucket.to_string(), p)),
        None => Ok((bucket.to_string(), path.to_string())),
    }
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let (bucket, prefix) = bucket_and_prefix(&args.bucket, args.prefix)?;
    let query = ListQuery {
        bucket,
        prefix,
        delimiter: args.non_recursive.then_some(FOLDER_DELIMITER),
        limit: args.limit,
        continuation_token: args.continuation_token,
    };
    let store = ctx.store_to_read().await?;
    let q = query.clone();
    let page = blocking(move || store.list_objects(&q)).await?;
    if args.json {
        return print(&to_json(&page_json(&page))?);
    }
    let text = page_text(&page, &query);
    if !text.is_empty() {
        print(&text)?;
    }
    if let Some(token) = &page.next_continuation_token {
        eprintln!("(more: --continuation-token {token})");
    }
    Ok(())
}

/// RFC 3339 UTC with milliseconds, e.g. `2024-03-05T10:20:30.123Z`.
fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn entry_json(e: &ObjectEntry) -> serde_json::Value {
    json!({
        "key": e.key,
        "size": e.size,
        "last_modified": e.last_modified_ms.and_then(rfc3339),
        "etag": e.etag,
        "storage_class": e.storage_class,
        "version_id": e.version_id,
    })
}

/// `{"objects": […], "common_prefixes": […], "next_continuation_token": …, "is_truncated": …}`.
fn page_json(page: &ListPage) -> serde_json::Value {
    json!({
        "objects": page.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "common_prefixes": page.common_prefixes,
        "next_continuation_token": page.next_continuation_token,
        "is_truncated": page.is_truncated,
    })
}

/// `aws s3 ls` lines in key order: `PRE name/` for folders, `date time size name` for
/// objects (UTC; `-` where the table has no value). Non-recursive listings show names
/// relative to the prefix's folder, as `aws s3 ls` does; recursive ones show whole keys.
fn page_text(page: &ListPage, q: &ListQuery) -> String {
    let base = if q.delimiter.is_some() {
        q.prefix.rfind('/').map_or(0, |i| i + 1)
    } else {
        0
    };
    let name = |s: &str| s.get(base..).unwrap_or(s).to_string();
    let mut lines: Vec<(&str, String)> = page
        .common_prefixes
        .iter()
        .map(|p| (p.as_str(), format!("{:>27}PRE {}", "", name(p))))
        .collect();
    for e in &page.entries {
        let when = e
            .last_modified_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| format!("{:<19}", "-"));
        let size = e.size.map_or_else(|| "-".to_string(), |s| s.to_string());
        lines.push((&e.key, format!("{when} {size:>10} {}", name(&e.key))));
    }
    lines.sort_by(|a, b| a.0.cmp(b.0));
    lines
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, size: Option<i64>, ms: Option<i64>) -> ObjectEntry {
        ObjectEntry {
            key: key.into(),
            version_id: None,
            size,
            last_modified_ms: ms,
            storage_class: Some("STANDARD".into()),
            etag: Some("e".into()),
        }
    }

    #[test]
    fn text_looks_like_aws_s3_ls() {
        let page = ListPage {
            entries: vec![
                entry("photos/a.jpg", Some(1234), Some(1_709_634_030_000)),
                entry("photos/z", None, None),
            ],
            common_prefixes: vec!["photos/2024/".into()],
            next_continuation_token: None,
            is_truncated: false,
        };
        let mut q = ListQuery::new("b");
        q.prefix = "photos/".into();
        q.delimiter = Some('/');
        assert_eq!(
            page_text(&page, &q),
            "                           PRE 2024/\n\
             2024-03-05 10:20:30       1234 a.jpg\n\
             -                            - z"
        );
        q.delimiter = None;
        assert!(page_text(&page, &q).contains(" photos/a.jpg"));
    }

    #[test]
    fn json_has_the_listobjectsv2_shape() {
        let page = ListPage {
            entries: vec![entry("k", Some(1), Some(0))],
            common_prefixes: vec!["p/".into()],
            next_continuation_token: Some("T".into()),
            is_truncated: true,
        };
        assert_eq!(
            page_json(&page),
            json!({
                "objects": [{"key": "k", "size": 1, "last_modified": "1970-01-01T00:00:00.000Z",
                             "etag": "e", "storage_class": "STANDARD", "version_id": null}],
                "common_prefixes": ["p/"],
                "next_continuation_token": "T",
                "is_truncated": true,
            })
        );
    }

    #[test]
    fn bucket_urls() {
        let ok = |a: &str, p: Option<&str>| bucket_and_prefix(a, p.map(String::from)).unwrap();
        assert_eq!(ok("b", None), ("b".into(), String::new()));
        assert_eq!(ok("b", Some("x/")), ("b".into(), "x/".into()));
        assert_eq!(ok("s3://b", None), ("b".into(), String::new()));
        assert_eq!(ok("s3://b/x/y", None), ("b".into(), "x/y".into()));
        assert_eq!(ok("oss://b/", Some("q")), ("b".into(), "q".into()));
        assert!(bucket_and_prefix("s3://b/x", Some("y".into())).is_err());
        assert!(bucket_and_prefix("s3:///x", None).is_err());
    }
}
