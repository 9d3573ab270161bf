//! Finding inventory reports under a report root: the trigger a cloud function gives the
//! managed pipelines, done by listing. The watcher (`lakeport inventory watch`) imports what
//! [`scan`] finds, in creation order; this module only looks.
//!
//! A report is a `manifest.json` anywhere under the root. It is **complete** when:
//! - a `manifest.checksum` sits beside it (S3 and OSS write the checksum after the manifest,
//!   which they write after every data file), or
//! - its folder holds a `files/` folder (the OBS layout, data files inside the report's own
//!   timestamp folder; OBS writes no checksum and writes the manifest last), or
//! - the caller says every manifest is complete (`--format obs`).
//!
//! Anything else is **waiting**: seen, not imported yet, looked at again on the next scan.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::sink::destination::Destination;

/// What one scan of a report root found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// URLs of complete reports' `manifest.json`, sorted by URL (the caller orders them by
    /// creation time once it has read them).
    pub complete: Vec<String>,
    /// URLs of manifests whose report is not complete yet.
    pub waiting: Vec<String>,
}

/// Lists `root` and sorts its manifests into complete and waiting reports; with
/// `all_complete`, every manifest counts as complete.
pub async fn scan(root: &Destination, all_complete: bool) -> Result<Scan> {
    let objects = root.list("").await?;
    let paths: BTreeSet<&str> = objects.iter().map(|(p, _)| p.as_str()).collect();
    let mut found = Scan::default();
    for path in &paths {
        let (folder, name) = match path.rsplit_once('/') {
            Some((folder, name)) => (folder, name),
            None => ("", *path),
        };
        if name != "manifest.json" {
            continue;
        }
        let sibling = |rel: &str| {
            if folder.is_empty() {
                rel.to_string()
            } else {
                format!("{folder}/{rel}")
            }
        };
        let checksum = sibling("manifest.checksum");
        let files_folder = sibling("files/");
        let complete = all_complete
            || paths.contains(checksum.as_str())
            || paths
                .range(files_folder.as_str()..)
                .next()
                .is_some_and(|p| p.starts_with(&files_folder));
        let url = root.object_url(path);
        if complete {
            found.complete.push(url);
        } else {
            found.waiting.push(url);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &std::path::Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[tokio::test]
    async fn complete_reports_have_a_checksum_or_the_obs_layout() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        touch(r, "d/src/cfg/2024-01-01T00-00Z/manifest.json");
        touch(r, "d/src/cfg/2024-01-01T00-00Z/manifest.checksum");
        touch(r, "d/src/cfg/2024-01-02T00-00Z/manifest.json"); // no checksum yet
        touch(r, "d/src/cfg/data/a.csv.gz");
        touch(r, "obs/src/inv/2024-01-01T00-00Z/manifest.json");
        touch(r, "obs/src/inv/2024-01-01T00-00Z/files/u_1.csv");
        touch(r, "manifest.json.bak");
        let root = Destination::parse(&r.display().to_string()).unwrap();
        let found = scan(&root, false).await.unwrap();
        let rel = |urls: &[String]| -> Vec<String> {
            urls.iter()
                .map(|u| u.trim_start_matches(root.url()).to_string())
                .collect()
        };
        assert_eq!(
            rel(&found.complete),
            [
                "/d/src/cfg/2024-01-01T00-00Z/manifest.json",
                "/obs/src/inv/2024-01-01T00-00Z/manifest.json"
            ]
        );
        assert_eq!(
            rel(&found.waiting),
            ["/d/src/cfg/2024-01-02T00-00Z/manifest.json"]
        );
        let all = scan(&root, true).await.unwrap();
        assert_eq!(all.complete.len(), 3);
        assert!(all.waiting.is_empty());
    }
}
