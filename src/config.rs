//! The files of the pipelines folder and the checks every kind of file shares. A file's
//! `kind` says what it declares: `delivery` (the default; [`crate::delivery::config`]) or
//! `inventory-watch` ([`crate::inventory::watch`]). Each kind's checker reads its own keys;
//! this module reads the files, tells their kinds apart, and gives the checkers their common
//! pieces: problems collected per file as `FILE: KEY: message`, typed fields, unknown keys,
//! durations, schedules (in a timezone: [`schedule`]), destinations, names. The loaders that
//! run every checker over the folder sit above them, in [`crate::pipelines`].
//!
//! Relative paths in a file are resolved against the project folder: the parent of the
//! pipelines folder, which holds `pipelines/` and `schemas/` side by side.
//!
//! **Object-store options** (`storage:`, in delivery files for the `destination` and in
//! watcher files for the `root`; [`storage_section`]): where an `s3://`, `gs://` or `az://`
//! store is and how to sign in, never a secret itself.
//!
//! ```yaml
//! storage:
//!   endpoint: http://127.0.0.1:9000   # http(s) URL of an S3-compatible server (s3, gs, az)
//!   region: us-east-1                 # s3 only
//!   path_style: true                  # s3 only: https://host/bucket/key addressing
//!   allow_http: true                  # needed for an http:// endpoint (s3, gs, az)
//!   access_key_id_env: LAKE_KEY_ID    # s3: the NAMES of the variables holding the key pair
//!   secret_access_key_env: LAKE_SECRET
//!   session_token_env: LAKE_TOKEN     # s3, optional: temporary credentials
//!   # gs: service_account_key_env; az: account_name, account_key_env, sas_token_env,
//!   # use_emulator
//! ```
//!
//! A key that does not apply to the URL's store, a section on a local folder, a literal
//! secret (`secret_access_key: …`, `access_key_id`, `session_token`, `account_key`,
//! `sas_token`, `service_account_key`, `password`, …) and `profile` (object_store reads no
//! profile files) are refused, each with what to write instead. Without the section the
//! environment configures the store, as the object_store builders read it (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`); with it, its keys win over the environment, and credential
//! variables named here replace the environment's credentials of that store as a whole. A
//! named variable is read when a run or pass opens the store; unset, it fails that run with
//! a message naming it. [`crate::objstore::storage`] says which object_store key each option
//! sets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

use crate::error::{Error, Result};
use crate::model::schema::{yaml_error_text, yaml_files};
use crate::objstore::storage::{Credential, StorageOptions};
use keys::{read_keys, NumberOrText, Section};

pub(crate) mod keys;
pub mod schedule;

/// What a pipelines file declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A delivery task (`kind: delivery`, or no `kind`).
    Delivery,
    /// An inventory watcher (`kind: inventory-watch`).
    InventoryWatch,
}

impl Kind {
    /// The `kind:` values, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["delivery", "inventory-watch"];

    fn parse(name: &str) -> Option<Kind> {
        match name {
            "delivery" => Some(Kind::Delivery),
            "inventory-watch" => Some(Kind::InventoryWatch),
            _ => None,
        }
    }
}

/// One file of the pipelines folder, read as a YAML mapping.
#[derive(Debug)]
pub(crate) struct PipelineFile {
    /// Where it was read from.
    pub(crate) path: PathBuf,
    /// Its keys (`kind` included).
    pub(crate) map: Mapping,
    /// What it declares.
    pub(crate) kind: Kind,
}

/// Every YAML file of `pipelines` as a mapping with its kind, and the problems of the files
/// that could not be read that way (YAML syntax, not a mapping, an unknown `kind`): those are
/// nobody's, so the caller that reports every kind reports them.
pub(crate) fn read_pipeline_files(pipelines: &Path) -> Result<(Vec<PipelineFile>, Vec<String>)> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in yaml_files(pipelines)? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        let map = match serde_yaml::from_str::<Yaml>(&text) {
            Ok(Yaml::Mapping(map)) => map,
            Ok(_) => {
                problems.push(format!(
                    "{}: expected a mapping of task or watcher keys",
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                problems.push(format!("{}: {}", path.display(), yaml_error_text(&e)));
                continue;
            }
        };
        let kind = match map.get("kind") {
            None | Some(Yaml::Null) => Kind::Delivery,
            Some(value) => match value.as_str().and_then(Kind::parse) {
                Some(kind) => kind,
                None => {
                    problems.push(format!(
                        "{}: kind: {}: expected {}",
                        path.display(),
                        serde_yaml::to_string(value).unwrap_or_default().trim_end(),
                        Kind::NAMES.join(" or ")
                    ));
                    continue;
                }
            },
        };
        files.push(PipelineFile { path, map, kind });
    }
    Ok((files, problems))
}

/// The folder relative task paths are resolved against: the pipelines folder's parent.
pub(crate) fn project_dir(pipelines: &Path) -> PathBuf {
    let absolute = std::path::absolute(pipelines).unwrap_or_else(|_| pipelines.to_path_buf());
    absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Problems of one file, each rendered `FILE: KEY: message`.
pub(crate) struct Problems {
    file: String,
    pub(crate) lines: Vec<String>,
}

impl Problems {
    pub(crate) fn new(path: &Path) -> Self {
        Problems {
            file: path.display().to_string(),
            lines: Vec::new(),
        }
    }
    pub(crate) fn push(&mut self, key: &str, message: impl std::fmt::Display) {
        self.lines.push(format!("{}: {key}: {message}", self.file));
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Keys that would hold a secret outright, and the key to use instead.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("token", "session_token_env (s3) or sas_token_env (az)"),
    ("secret", "secret_access_key_env"),
    ("secret_key", "secret_access_key_env"),
    (
        "access_key",
        "access_key_id_env (s3) or account_key_env (az)",
    ),
    (
        "password",
        "secret_access_key_env (s3) or account_key_env (az)",
    ),
    ("credentials", "access_key_id_env and secret_access_key_env"),
];

/// The keys of a `storage:` section (see the module docs), in the order messages list them;
/// turned into [`StorageOptions`] by [`storage_section`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageKeys {
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    allow_http: Option<bool>,
    use_emulator: Option<bool>,
    account_name: Option<String>,
    access_key_id_env: Option<String>,
    secret_access_key_env: Option<String>,
    session_token_env: Option<String>,
    service_account_key_env: Option<String>,
    account_key_env: Option<String>,
    sas_token_env: Option<String>,
}

/// The `storage:` section of a task or watcher file: the object-store options of the store
/// `url` names (`None` when the URL is itself wrong: then what depends on it is not
/// checked). A secret written outright and `profile` are refused with what to write instead;
/// every problem is pushed as `storage.KEY: message`; see the module docs.
pub(crate) fn storage_section(
    section: &Section<StorageKeys>,
    url: Option<&str>,
    problems: &mut Problems,
) -> StorageOptions {
    // Keys that would hold a secret, or name a profile, get their own advice and are not read.
    let mut written = section.value().clone();
    if let Yaml::Mapping(map) = &mut written {
        map.retain(|key, _| match key.as_str() {
            Some(name) => match refused_storage_key(name) {
                Some(advice) => {
                    problems.push(&format!("storage.{name}"), advice);
                    false
                }
                None => true,
            },
            None => true,
        });
    }
    let keys: StorageKeys = read_keys(&written, "storage", problems);
    let mut options = StorageOptions {
        endpoint: keys.endpoint,
        region: keys.region,
        path_style: keys.path_style,
        allow_http: keys.allow_http,
        use_emulator: keys.use_emulator,
        account_name: keys.account_name,
        ..StorageOptions::default()
    };
    for (credential, variable) in [
        (Credential::AccessKeyId, keys.access_key_id_env),
        (Credential::SecretAccessKey, keys.secret_access_key_env),
        (Credential::SessionToken, keys.session_token_env),
        (Credential::ServiceAccountKey, keys.service_account_key_env),
        (Credential::AccountKey, keys.account_key_env),
        (Credential::SasToken, keys.sas_token_env),
    ] {
        if let Some(variable) = variable {
            options.credentials.insert(credential, variable);
        }
    }
    for (key, message) in options.problems(url) {
        problems.push(&format!("storage.{key}"), message);
    }
    options
}

/// What to write instead of a `storage:` key that would hold a secret or name a profile.
fn refused_storage_key(name: &str) -> Option<String> {
    let instead = Credential::ALL
        .iter()
        .find(|c| c.literal_key() == name)
        .map(|c| c.env_key())
        .or_else(|| {
            SECRET_KEYS
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, instead)| *instead)
        });
    if let Some(instead) = instead {
        Some(format!(
            "secrets are never written in pipeline files: put it in an environment variable \
             of lakeport's and name that variable with {instead}: VARIABLE"
        ))
    } else if name == "profile" {
        Some(
            "object_store reads no AWS profile files: export the profile's credentials as \
             AWS_* variables (aws configure export-credentials --format env), or name \
             variables with access_key_id_env and secret_access_key_env"
                .to_string(),
        )
    } else {
        None
    }
}

/// The `name` key of a task or watcher: required, 3–16 characters of lowercase letters,
/// digits and hyphens (it names objects, files and metrics).
pub(crate) fn checked_name(name: Option<String>, problems: &mut Problems) -> Option<String> {
    match &name {
        None => problems.push("name", "required"),
        Some(n) if !is_name(n) => problems.push(
            "name",
            format!("{n:?}: expected 3–16 characters of lowercase letters, digits and hyphens"),
        ),
        Some(_) => {}
    }
    name
}

/// Whether `name` is a valid task or watcher name.
pub fn is_name(name: &str) -> bool {
    (3..=16).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A duration key (`60s`, `5m`, `500ms`, a number of seconds) of at least `at_least`; `None`
/// when absent or wrong (then a problem at `key` says why).
pub(crate) fn duration(
    value: Option<&NumberOrText>,
    key: &str,
    at_least: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let text = &value?.0;
    match parse_duration(text) {
        Ok(d) if d >= at_least => Some(d),
        Ok(_) => {
            problems.push(key, format!("{text:?}: expected at least {at_least:?}"));
            None
        }
        Err(e) => {
            problems.push(key, e);
            None
        }
    }
}

/// Parses `60s`, `5m`, `1h`, `500ms` or a plain number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 60s, 5m, 1h or 500ms, found {text:?}"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "expected a unit of ms, s, m or h, found {unit:?} in {text:?}"
            ))
        }
    };
    if !(0.01..=86_400.0 * 7.0).contains(&seconds) {
        return Err(format!("expected between 10ms and 7 days, found {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A path relative to the project folder, or as given when absolute.
pub(crate) fn resolve_path(p: &str, project: &Path) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        project.join(path)
    }
}

/// A destination as a URL: object-store URLs and `file://` as given, plain paths made absolute.
pub(crate) fn resolve_destination(d: &str, project: &Path) -> std::result::Result<String, String> {
    let d = d.trim_end_matches('/');
    if d.is_empty() {
        return Err("expected a path or URL".into());
    }
    match d.split_once("://") {
        Some((scheme, _)) => match scheme {
            "file" | "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "adl" | "azure" | "memory" => {
                Ok(d.to_string())
            }
            other => Err(format!(
                "{other}:// is not supported; expected a path, file://, s3://, gs:// or az://"
            )),
        },
        None => Ok(resolve_path(d, project).display().to_string()),
    }
}

/// The 6-field cron expression (seconds first) of a schedule, as the service's scheduler
/// (tokio-cron-scheduler) runs it: `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`,
/// `@yearly`/`@annually` become their cron forms; `None` for `continuous`. An expression the
/// scheduler cannot parse is an error saying what was expected.
pub fn cron_expression(s: &str) -> std::result::Result<Option<String>, String> {
    let expr = match s.trim() {
        "continuous" => return Ok(None),
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * SUN",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        other => other,
    };
    let fields = expr.split_whitespace().count();
    if fields != 6 || parse_cron(expr).is_err() {
        return Err(format!(
            "{s:?}: expected cron with seconds (6 fields: sec min hour day month weekday, e.g. \
             \"0 0 2 * * *\"), @hourly, @daily, @weekly, @monthly, @yearly or continuous"
        ));
    }
    Ok(Some(expr.to_string()))
}

/// A 6-field cron expression (seconds first) parsed the way tokio-cron-scheduler parses it
/// (croner, seconds required, day of month and weekday both to match).
pub fn parse_cron(expr: &str) -> std::result::Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_name("inventory-daily"));
        assert!(is_name("abc"));
        assert!(!is_name("ab"));
        assert!(!is_name("Inventory"));
        assert!(!is_name("a_b_c"));
        assert!(!is_name("seventeen-chars-x"));
    }

    #[test]
    fn every_credential_has_its_storage_key() {
        let keys = serde_aux::serde_introspection::serde_introspect::<StorageKeys>();
        for credential in Credential::ALL {
            assert!(keys.contains(&credential.env_key()), "{credential:?}");
        }
    }

    #[test]
    fn storage_sections_refuse_secrets_and_unknown_keys_and_read_the_rest() {
        let text = "endpoint: http://127.0.0.1:9000\nallow_http: true\nsecret_access_key: x\n\
                    profile: dev\nendpoint_url: y\naccess_key_id_env: KEY\n\
                    secret_access_key_env: SECRET\n";
        let section: Section<StorageKeys> = serde_yaml::from_str(text).unwrap();
        let mut problems = Problems::new(Path::new("t.yaml"));
        let options = storage_section(&section, Some("s3://bucket"), &mut problems);
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(options.allow_http, Some(true));
        assert_eq!(
            options
                .credentials
                .get(&Credential::AccessKeyId)
                .map(String::as_str),
            Some("KEY")
        );
        let keys: Vec<&str> = problems
            .lines
            .iter()
            .map(|l| l.split(": ").nth(1).unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "storage.secret_access_key",
                "storage.profile",
                "storage.endpoint_url"
            ],
            "{:?}",
            problems.lines
        );
        assert!(problems.lines[0].contains("name that variable with secret_access_key_env"));
        assert!(problems.lines[2].ends_with(
            "unknown key; expected one of endpoint, region, \
             path_style, allow_http, use_emulator, account_name, access_key_id_env, \
             secret_access_key_env, session_token_env, service_account_key_env, \
             account_key_env, sas_token_env"
        ));
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        for bad in ["", "s", "1d", "-1s", "8h0", "30 days"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schedules() {
        assert!(cron_expression("0 0 2 * * *").is_ok());
        assert!(cron_expression("*/5 * * * * *").is_ok());
        assert_eq!(cron_expression("@hourly"), Ok(Some("0 0 * * * *".into())));
        assert_eq!(cron_expression("@daily"), Ok(Some("0 0 0 * * *".into())));
        assert_eq!(cron_expression("continuous"), Ok(None));
        for bad in [
            "0 2 * * *",
            "0 0 2 * * * 2030",
            "61 * * * * *",
            "@often",
            "every hour",
        ] {
            assert!(cron_expression(bad).is_err(), "{bad}");
        }
    }
}
