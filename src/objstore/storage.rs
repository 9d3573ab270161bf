//! Object-store options: where an `s3://`, `gs://` or `az://` store is and how to sign in to
//! it, given by a task or watcher file's `storage:` section or by the inventory commands'
//! flags (`--endpoint`, `--region`, `--path-style`, `--allow-http`), and never a secret
//! itself: credentials are named by the environment variables that hold them, read when the
//! store is opened.
//!
//! | option | `s3://` | `gs://` | `az://` |
//! |---|---|---|---|
//! | `endpoint` (http or https URL) | `aws_endpoint` | `google_base_url` | `azure_storage_endpoint` |
//! | `region` | `aws_region` | – | – |
//! | `path_style` (bool) | `aws_virtual_hosted_style_request` = not it | – | – |
//! | `allow_http` (bool) | `allow_http` | `allow_http` | `allow_http` |
//! | `use_emulator` (bool) | – | – | `azure_storage_use_emulator` |
//! | `account_name` | – | – | `azure_storage_account_name` |
//! | `access_key_id_env`, `secret_access_key_env` (both or neither), `session_token_env` | `aws_access_key_id`, `aws_secret_access_key`, `aws_token` | – | – |
//! | `service_account_key_env` (the JSON key) | – | `google_service_account_key` | – |
//! | `account_key_env`, `sas_token_env` | – | – | `azure_storage_account_key`, `azure_storage_sas_token` |
//!
//! (The right-hand names are object_store's configuration keys.) An option that does not
//! apply to the URL's store is refused when the file is checked, not ignored. object_store
//! reads no AWS profile files, so there is no `profile` option; a credential process or SSO
//! profile has to export `AWS_*` variables first.
//!
//! **The environment** configures what the options leave open, as the object_store builders'
//! `from_env` read it (`AWS_*`, `GOOGLE_*` and `SERVICE_ACCOUNT`, `AZURE_*` and
//! `IDENTITY_ENDPOINT`); an option given here wins over the same setting from the
//! environment. Credentials are one unit: when the options name any credential variable of
//! a store, that store's credentials from the standard variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, …) are not used, so a session token of one
//! account never meets the keys of another.

use std::collections::BTreeMap;

use url::Url;

use crate::error::{Error, Result};

/// The kinds of object store that take options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Amazon S3 and S3-compatible stores (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage and ADLS Gen2 (`az://`, `abfs://`, `abfss://`, `adl://`, `azure://`).
    Azure,
}

impl StoreKind {
    /// The store a URL names; `None` for a path, `file://`, `memory://` or anything else.
    pub fn of_url(url: &str) -> Option<StoreKind> {
        let (scheme, _) = url.trim().split_once("://")?;
        match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => Some(StoreKind::S3),
            "gs" => Some(StoreKind::Gcs),
            "az" | "abfs" | "abfss" | "adl" | "azure" => Some(StoreKind::Azure),
            _ => None,
        }
    }

    /// `s3://`, `gs://` or `az://`, for messages.
    pub fn scheme(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3://",
            StoreKind::Gcs => "gs://",
            StoreKind::Azure => "az://",
        }
    }

    /// The prefix of this store's object_store configuration keys.
    pub(crate) fn key_prefix(self) -> &'static str {
        match self {
            StoreKind::S3 => "aws_",
            StoreKind::Gcs => "google_",
            StoreKind::Azure => "azure_",
        }
    }

    /// object_store keys (as [`env_options`](super::destination) spells them) that carry
    /// credentials of this store: dropped from the environment's options when the storage
    /// options name credential variables.
    fn credential_keys(self) -> &'static [&'static str] {
        match self {
            StoreKind::S3 => &[
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token",
                "aws_token",
            ],
            StoreKind::Gcs => &[
                "google_service_account",
                "google_service_account_path",
                "google_service_account_key",
                "google_application_credentials",
            ],
            StoreKind::Azure => &[
                "azure_storage_account_key",
                "azure_storage_access_key",
                "azure_storage_master_key",
                "azure_storage_sas_key",
                "azure_storage_sas_token",
                "azure_storage_token",
                "azure_storage_client_secret",
                "azure_client_secret",
            ],
        }
    }
}

/// A credential named by an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Credential {
    /// S3 access key id.
    AccessKeyId,
    /// S3 secret access key.
    SecretAccessKey,
    /// S3 session token (temporary credentials).
    SessionToken,
    /// A Google service account key (the JSON document).
    ServiceAccountKey,
    /// An Azure storage account key.
    AccountKey,
    /// An Azure shared access signature.
    SasToken,
}

impl Credential {
    /// Every credential, in key order.
    pub const ALL: [Credential; 6] = [
        Credential::AccessKeyId,
        Credential::SecretAccessKey,
        Credential::SessionToken,
        Credential::ServiceAccountKey,
        Credential::AccountKey,
        Credential::SasToken,
    ];

    /// The credential written literally (refused: secrets stay out of files).
    pub fn literal_key(self) -> &'static str {
        match self {
            Credential::AccessKeyId => "access_key_id",
            Credential::SecretAccessKey => "secret_access_key",
            Credential::SessionToken => "session_token",
            Credential::ServiceAccountKey => "service_account_key",
            Credential::AccountKey => "account_key",
            Credential::SasToken => "sas_token",
        }
    }

    /// The key that names its environment variable (`access_key_id_env`, …).
    pub fn env_key(self) -> &'static str {
        match self {
            Credential::AccessKeyId => "access_key_id_env",
            Credential::SecretAccessKey => "secret_access_key_env",
            Credential::SessionToken => "session_token_env",
            Credential::ServiceAccountKey => "service_account_key_env",
            Credential::AccountKey => "account_key_env",
            Credential::SasToken => "sas_token_env",
        }
    }

    /// The store it signs in to.
    pub fn store(self) -> StoreKind {
        match self {
            Credential::AccessKeyId | Credential::SecretAccessKey | Credential::SessionToken => {
                StoreKind::S3
            }
            Credential::ServiceAccountKey => StoreKind::Gcs,
            Credential::AccountKey | Credential::SasToken => StoreKind::Azure,
        }
    }

    /// object_store's configuration key.
    fn option_key(self) -> &'static str {
        match self {
            Credential::AccessKeyId => "aws_access_key_id",
            Credential::SecretAccessKey => "aws_secret_access_key",
            Credential::SessionToken => "aws_token",
            Credential::ServiceAccountKey => "google_service_account_key",
            Credential::AccountKey => "azure_storage_account_key",
            Credential::SasToken => "azure_storage_sas_token",
        }
    }
}

/// Object-store options, as a task file's `storage:` section or the command line gives them
/// (see the module documentation for what applies to which store). The default is no option:
/// the environment alone configures the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    /// The store's URL (an S3-compatible server, a GCS emulator, an Azure endpoint).
    pub endpoint: Option<String>,
    /// The S3 region.
    pub region: Option<String>,
    /// S3: address buckets in the path (`https://host/bucket/key`) rather than the host name.
    pub path_style: Option<bool>,
    /// Allow `http://` endpoints (a local test server); object_store refuses them otherwise.
    pub allow_http: Option<bool>,
    /// Azure: use the Azurite emulator's well-known account and endpoint.
    pub use_emulator: Option<bool>,
    /// Azure: the storage account name (not a secret).
    pub account_name: Option<String>,
    /// Credentials by the environment variables that hold them.
    pub credentials: BTreeMap<Credential, String>,
}

impl StorageOptions {
    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self == &StorageOptions::default()
    }

    /// The stores an option applies to (`None`: every store).
    fn applies_to(key: &str) -> Option<&'static [StoreKind]> {
        match key {
            "region" | "path_style" => Some(&[StoreKind::S3]),
            "use_emulator" | "account_name" => Some(&[StoreKind::Azure]),
            _ => Credential::ALL
                .iter()
                .find(|c| c.env_key() == key)
                .map(|c| match c.store() {
                    StoreKind::S3 => &[StoreKind::S3][..],
                    StoreKind::Gcs => &[StoreKind::Gcs][..],
                    StoreKind::Azure => &[StoreKind::Azure][..],
                }),
        }
    }

    /// The keys that are set, as a `storage:` section spells them.
    fn keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        for (key, set) in [
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("path_style", self.path_style.is_some()),
            ("allow_http", self.allow_http.is_some()),
            ("use_emulator", self.use_emulator.is_some()),
            ("account_name", self.account_name.is_some()),
        ] {
            if set {
                keys.push(key);
            }
        }
        keys.extend(self.credentials.keys().map(|c| c.env_key()));
        keys
    }

    /// Every problem of these options for the store `url` names, as `(key, message)` with
    /// keys spelled as in a `storage:` section (the command line maps them to its flags).
    /// `url` is `None` when it is itself wrong (then only what does not depend on it is
    /// checked).
    pub fn problems(&self, url: Option<&str>) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let kind = url.map(StoreKind::of_url);
        if let Some(None) = kind {
            if let Some(&first) = self.keys_set().first() {
                out.push((
                    first,
                    "store options apply to s3://, gs:// and az:// URLs; this one is a local \
                     folder"
                        .to_string(),
                ));
                return out;
            }
        }
        if let Some(Some(kind)) = kind {
            for key in self.keys_set() {
                if let Some(stores) = StorageOptions::applies_to(key) {
                    if !stores.contains(&kind) {
                        let names: Vec<&str> = stores.iter().map(|s| s.scheme()).collect();
                        out.push((
                            key,
                            format!(
                                "applies to {} only; this store is {}",
                                names.join(", "),
                                kind.scheme()
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let expected = "expected an http:// or https:// URL such as https://host:9000";
            match Url::parse(endpoint.trim()) {
                Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                    out.push(("endpoint", format!("{endpoint:?}: {expected}")))
                }
                Ok(u) if u.host_str().is_none_or(str::is_empty) => out.push((
                    "endpoint",
                    format!("{endpoint:?}: {expected} (it names no host)"),
                )),
                Ok(u) if u.scheme() == "http" && self.allow_http != Some(true) => out.push((
                    "endpoint",
                    format!(
                        "{endpoint:?} is plain http: allow it explicitly (allow_http: true in \
                         a file, --allow-http on the command line); requests and credentials \
                         then travel unencrypted"
                    ),
                )),
                Ok(_) => {}
                Err(e) => out.push(("endpoint", format!("{endpoint:?}: {expected} ({e})"))),
            }
        }
        if let Some(region) = &self.region {
            if region.trim().is_empty() || region.contains(char::is_whitespace) {
                out.push((
                    "region",
                    format!("{region:?}: expected a region name such as us-east-1"),
                ));
            }
        }
        if let Some(name) = &self.account_name {
            if name.trim().is_empty() {
                out.push(("account_name", "expected the storage account's name".into()));
            }
        }
        for (credential, var) in &self.credentials {
            if !is_env_name(var) {
                out.push((
                    credential.env_key(),
                    "expected the name of an environment variable (letters, digits and _, not \
                     starting with a digit); the value is not shown in case it is the secret \
                     itself, which belongs in that variable"
                        .to_string(),
                ));
            }
        }
        let has = |c: Credential| self.credentials.contains_key(&c);
        match (
            has(Credential::AccessKeyId),
            has(Credential::SecretAccessKey),
        ) {
            (true, false) => out.push((
                "access_key_id_env",
                "needs secret_access_key_env too (an access key is a pair)".into(),
            )),
            (false, true) => out.push((
                "secret_access_key_env",
                "needs access_key_id_env too (an access key is a pair)".into(),
            )),
            (false, false) if has(Credential::SessionToken) => out.push((
                "session_token_env",
                "needs access_key_id_env and secret_access_key_env (a session token comes \
                 with temporary keys)"
                    .into(),
            )),
            _ => {}
        }
        out
    }

    /// The object_store configuration these options give for a store of `kind`, with the
    /// named environment variables read now. An unset (or non-UTF-8) variable is an
    /// [`Error::Permanent`] naming it: a run cannot sign in without it.
    pub fn store_options(&self, kind: StoreKind) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |key: &str, value: String| out.push((key.to_string(), value));
        if let Some(endpoint) = &self.endpoint {
            let key = match kind {
                StoreKind::S3 => "aws_endpoint",
                StoreKind::Gcs => "google_base_url",
                StoreKind::Azure => "azure_storage_endpoint",
            };
            put(key, endpoint.trim().trim_end_matches('/').to_string());
        }
        if let Some(allow) = self.allow_http {
            put(
                &format!("{}allow_http", kind.key_prefix()),
                allow.to_string(),
            );
        }
        if kind == StoreKind::S3 {
            if let Some(region) = &self.region {
                put("aws_region", region.trim().to_string());
            }
            if let Some(path_style) = self.path_style {
                put(
                    "aws_virtual_hosted_style_request",
                    (!path_style).to_string(),
                );
            }
        }
        if kind == StoreKind::Azure {
            if let Some(emulator) = self.use_emulator {
                put("azure_storage_use_emulator", emulator.to_string());
            }
            if let Some(name) = &self.account_name {
                put("azure_storage_account_name", name.trim().to_string());
            }
        }
        for (credential, var) in &self.credentials {
            if credential.store() != kind {
                continue;
            }
            let value = std::env::var(var).map_err(|e| {
                let why = match e {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                };
                Error::permanent(format!(
                    "storage.{}: the environment variable {var} {why}; set it in lakeport's \
                     environment (for the service: its environment file) to the {} to use",
                    credential.env_key(),
                    credential.literal_key().replace('_', " ")
                ))
            })?;
            put(credential.option_key(), value);
        }
        Ok(out)
    }

    /// Whether these options name credential variables for a store of `kind` (then the
    /// environment's standard credentials of that store are not used).
    pub(crate) fn names_credentials(&self, kind: StoreKind) -> bool {
        self.credentials.keys().any(|c| c.store() == kind)
    }

    /// Whether an option from the environment is overridden by these options for a store of
    /// `kind` and must be dropped before they are applied: credentials (a unit), and the
    /// service-specific S3 endpoint, which would otherwise win over `endpoint`.
    pub(crate) fn overrides_env(&self, kind: StoreKind, key: &str) -> bool {
        (self.names_credentials(kind) && kind.credential_keys().contains(&key))
            || (kind == StoreKind::S3
                && self.endpoint.is_some()
                && matches!(key, "aws_endpoint_url_s3"))
    }
}

/// Whether `name` can be an environment variable's name (POSIX portable: letters, digits and
/// `_`, not starting with a digit).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_options() -> StorageOptions {
        StorageOptions {
            endpoint: Some("http://127.0.0.1:9000/".into()),
            region: Some("us-east-1".into()),
            path_style: Some(true),
            allow_http: Some(true),
            credentials: [
                (Credential::AccessKeyId, "LAKEPORT_TEST_STORAGE_KEY".into()),
                (
                    Credential::SecretAccessKey,
                    "LAKEPORT_TEST_STORAGE_SECRET".into(),
                ),
            ]
            .into(),
            ..StorageOptions::default()
        }
    }

    #[test]
    fn store_kinds_of_urls() {
        assert_eq!(StoreKind::of_url("s3://b/p"), Some(StoreKind::S3));
        assert_eq!(StoreKind::of_url("gs://b"), Some(StoreKind::Gcs));
        assert_eq!(
            StoreKind::of_url("abfss://fs@acct.dfs.core.windows.net/p"),
            Some(StoreKind::Azure)
        );
        assert_eq!(StoreKind::of_url("file:///tmp/x"), None);
        assert_eq!(StoreKind::of_url("/tmp/x"), None);
    }

    #[test]
    fn good_s3_options_map_onto_object_store_keys() {
        let o = s3_options();
        assert_eq!(o.problems(Some("s3://bucket/lake")), []);
        std::env::set_var("LAKEPORT_TEST_STORAGE_KEY", "AKIDTEST");
        std::env::set_var("LAKEPORT_TEST_STORAGE_SECRET", "s3cr3t");
        let got: BTreeMap<String, String> = o
            .store_options(StoreKind::S3)
            .unwrap()
            .into_iter()
            .collect();
        let want: BTreeMap<String, String> = [
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_virtual_hosted_style_request", "false"),
            ("aws_access_key_id", "AKIDTEST"),
            ("aws_secret_access_key", "s3cr3t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert!(o.overrides_env(StoreKind::S3, "aws_session_token"));
        assert!(o.overrides_env(StoreKind::S3, "aws_endpoint_url_s3"));
        assert!(!o.overrides_env(StoreKind::S3, "aws_region"));
        assert!(!o.overrides_env(StoreKind::Gcs, "google_service_account"));
    }

    #[test]
    fn an_unset_variable_is_a_permanent_error_naming_it() {
        let mut o = StorageOptions::default();
        o.credentials.insert(
            Credential::SessionToken,
            "LAKEPORT_TEST_SURELY_UNSET_VAR".into(),
        );
        match o.store_options(StoreKind::S3) {
            Err(Error::Permanent { context: m, .. }) => {
                assert!(m.contains("LAKEPORT_TEST_SURELY_UNSET_VAR"), "{m}");
                assert!(m.contains("storage.session_token_env"), "{m}");
                assert!(m.contains("is not set"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        // A credential of another store is not read.
        assert_eq!(o.store_options(StoreKind::Gcs).unwrap(), []);
    }

    #[test]
    fn problems_name_the_key() {
        let keys = |o: &StorageOptions, url| -> Vec<&str> {
            o.problems(url).into_iter().map(|(k, _)| k).collect()
        };
        let o = s3_options();
        assert_eq!(
            keys(&o, Some("gs://b")),
            [
                "region",
                "path_style",
                "access_key_id_env",
                "secret_access_key_env"
            ]
        );
        assert_eq!(keys(&o, Some("/var/lake")), ["endpoint"]);
        assert_eq!(keys(&o, None), Vec::<&str>::new());

        let plain_http = StorageOptions {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..StorageOptions::default()
        };
        let p = plain_http.problems(Some("s3://b"));
        assert_eq!(p.len(), 1);
        assert!(p[0].1.contains("allow_http: true"), "{p:?}");
        assert!(p[0].1.contains("--allow-http"), "{p:?}");
        for bad in ["127.0.0.1:9000", "ftp://host", "http://", "not a url"] {
            let o = StorageOptions {
                endpoint: Some(bad.into()),
                allow_http: Some(true),
                ..StorageOptions::default()
            };
            assert_eq!(keys(&o, Some("s3://b")), ["endpoint"], "{bad}");
        }

        let mut half = StorageOptions::default();
        half.credentials
            .insert(Credential::AccessKeyId, "KEY_VAR".into());
        assert_eq!(keys(&half, Some("s3://b")), ["access_key_id_env"]);
        let mut secret_as_name = StorageOptions::default();
        secret_as_name
            .credentials
            .insert(Credential::AccountKey, "c2VjcmV0/a2V5+==".into());
        let p = secret_as_name.problems(Some("az://c"));
        assert_eq!(p.len(), 1);
        assert!(
            !p[0].1.contains("c2VjcmV0"),
            "the value is not echoed: {p:?}"
        );
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("AWS_SECRET_ACCESS_KEY"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name("wJalrXUtnFEMI/K7MDENG"));
    }
}
