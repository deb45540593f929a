//! The service configuration: one TOML file, every setting overridable by a
//! flag or an environment variable, with defaults that run on a laptop.
//!
//! Precedence, lowest first: built-in defaults, the TOML file
//! (`--config` / `ECOS_CONFIG`), generic overrides (`ECOS__SECTION__KEY=value`
//! in the environment, then `--set section.key=value`), and the named flags
//! (each also read from its `ECOS_*` variable). Everything lands in one TOML
//! table that is deserialised once with `deny_unknown_fields`, so a misspelt
//! key is refused with its name wherever it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use ecos_party::PartyConfig;
use serde::{Deserialize, Serialize};

/// Why the configuration could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid (syntax, unknown key, wrong type).
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key's name and position.
        message: String,
    },
    /// An override (flag, `--set` or environment variable) is not valid.
    #[error("configuration override {origin}: {message}")]
    Override {
        /// Where the override came from (`--set a.b`, `ECOS__A__B`, a flag).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value that is well typed but not acceptable.
    #[error("configuration setting {key}: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// Why the value is refused.
        message: String,
    },
    /// A key file could not be read.
    #[error("cannot read key file {path} ({key}): {source}")]
    KeyFileUnreadable {
        /// The setting that names it.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file is readable by its group or by others.
    #[error(
        "key file {path} ({key}) has mode {mode:03o}: it must not be readable or writable by group or others \
         (chmod 600 {path}, or set keys.allow_insecure_permissions / --allow-insecure-key-permissions to override)"
    )]
    KeyFilePermissions {
        /// The setting that names it.
        key: String,
        /// The file.
        path: PathBuf,
        /// The permission bits found.
        mode: u32,
    },
    /// A key file does not hold a usable P-256 PKCS#8 private key.
    #[error("key file {path} ({key}) is not a P-256 PKCS#8 private key: {message}")]
    KeyFileContent {
        /// The setting that names it.
        key: String,
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the service keeps its state (database, generated material).
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://FILE` or `postgres://...`. Default: the SQLite
    /// file `<data_dir>/ecos.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// The HTTP listener.
    pub http: HttpConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
    /// Private keys (PKCS#8 files).
    pub keys: KeysConfig,
    /// Asynchronous delivery of DUIS responses and alerts to service users.
    pub delivery: DeliveryConfig,
    /// Policy of the 6.23 pipeline.
    pub party: PartyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./ecos-data"),
            database_url: None,
            http: HttpConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            keys: KeysConfig::default(),
            delivery: DeliveryConfig::default(),
            party: PartyConfig::default(),
        }
    }
}

/// The HTTP listener and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Time allowed to receive a request and answer it, in seconds. Work
    /// that is already running goes on after the answer times out.
    pub request_timeout_secs: u64,
    /// DUIS requests processed at the same time.
    pub max_in_flight: usize,
    /// DUIS requests allowed to wait for a processing slot; beyond that the
    /// service answers 503 with `Retry-After`.
    pub max_queued: usize,
    /// The `Retry-After` value sent with a 503, in seconds.
    pub retry_after_secs: u64,
    /// Connections open at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time allowed to receive a request's headers, in seconds.
    pub header_read_timeout_secs: u64,
    /// Time allowed on shutdown for in-flight work to finish, in seconds.
    pub shutdown_grace_secs: u64,
    /// TLS (rustls): both a certificate chain and a key, or neither.
    pub tls: TlsConfig,
    /// DUIS response codes for refusals made by the HTTP layer itself.
    pub error_codes: TransportErrorCodes,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            max_in_flight: 64,
            max_queued: 256,
            retry_after_secs: 1,
            max_connections: 1024,
            header_read_timeout_secs: 10,
            shutdown_grace_secs: 30,
            tls: TlsConfig::default(),
            error_codes: TransportErrorCodes::default(),
        }
    }
}

/// TLS certificate chain and key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key (permissions are checked like the other keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// DUIS response codes the HTTP layer uses when it refuses a request before
/// the pipeline sees it. DUIS does not publish codes for these transport
/// refusals, so they are settings (a project interpretation, [P]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportErrorCodes {
    /// The body is larger than `http.body_limit_bytes`.
    pub body_too_large: String,
    /// The content type is not XML.
    pub unsupported_media_type: String,
    /// The body could not be received (client error or read timeout).
    pub bad_body: String,
    /// The service is shedding load or not ready.
    pub overloaded: String,
    /// The answer did not come within `http.request_timeout_secs`.
    pub timeout: String,
}

impl Default for TransportErrorCodes {
    fn default() -> Self {
        TransportErrorCodes {
            body_too_large: "E100".into(),
            unsupported_media_type: "E13".into(),
            bad_body: "E100".into(),
            overloaded: "E100".into(),
            timeout: "E100".into(),
        }
    }
}

/// The admin API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token of the admin API; without one the admin API is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Largest CSV body the admin API's imports accept, in bytes (413 beyond).
    pub import_body_limit_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            import_body_limit_bytes: 256 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| MASK))
            .field("import_body_limit_bytes", &self.import_body_limit_bytes)
            .finish()
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing env-filter directive, e.g. `info` or `ecos=debug,info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Private keys, each a PKCS#8 file (PEM or DER) that must be readable by its
/// owner only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Transitional CoS party signing key (signs CS02b before migration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcos_signing: Option<PathBuf>,
    /// Enduring CoS party signing key (signs CS02b after migration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecos_signing: Option<PathBuf>,
    /// Access Control Broker key-agreement key (the ACB MAC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acb_key_agreement: Option<PathBuf>,
    /// DSP XML-sign key (signs DUIS responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsp_xml_sign: Option<PathBuf>,
    /// Accept key files that group or others may read (not for production).
    pub allow_insecure_permissions: bool,
    /// Signing keys held in a PKCS#11 token (an HSM) instead of files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Config>,
}

/// Signing keys in a PKCS#11 token: the module, the token, the user PIN and
/// the label (`CKA_LABEL`) of each key held there. A key named here must not
/// also be given as a file. The key-agreement (ACB) key is a file only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN (masked by `ecos config show`); or `pin_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// A file holding the user PIN (checked like a key file: owner only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// Label of the transitional CoS signing key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcos_signing: Option<String>,
    /// Label of the enduring CoS signing key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecos_signing: Option<String>,
    /// Label of the DSP XML-sign key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsp_xml_sign: Option<String>,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("pin", &self.pin.as_ref().map(|_| MASK))
            .field("pin_file", &self.pin_file)
            .field("tcos_signing", &self.tcos_signing)
            .field("ecos_signing", &self.ecos_signing)
            .field("dsp_xml_sign", &self.dsp_xml_sign)
            .finish()
    }
}

impl Pkcs11Config {
    /// The user PIN: `pin`, or the first line of `pin_file` after its
    /// permissions are checked.
    pub fn read_pin(&self, allow_insecure: bool) -> Result<String, ConfigError> {
        if let Some(p) = &self.pin {
            return Ok(p.clone());
        }
        let Some(path) = &self.pin_file else {
            return Err(ConfigError::Invalid {
                key: "keys.pkcs11.pin".into(),
                message: "missing: set keys.pkcs11.pin or keys.pkcs11.pin_file".into(),
            });
        };
        let key = "keys.pkcs11.pin_file";
        check_key_file(key, path, allow_insecure)?;
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::KeyFileUnreadable {
                key: key.into(),
                path: path.clone(),
                source,
            })?;
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    }
}

/// Asynchronous delivery of DUIS responses and alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Responses waiting for delivery at most; beyond that producers are told
    /// the queue is full.
    pub queue_capacity: usize,
    /// Responses kept readable by `GET /api/v1/responses` (oldest dropped first).
    pub poll_retention: usize,
    /// Attempts per response before it is parked as undeliverable.
    pub max_attempts: u32,
    /// Wait before the first retry, in milliseconds; doubled each retry.
    pub initial_backoff_ms: u64,
    /// Longest wait between retries, in milliseconds.
    pub max_backoff_ms: u64,
    /// Timeout of one delivery POST, in seconds.
    pub post_timeout_secs: u64,
    /// Service user EUI-64 (16 hex digits) → URL their responses are POSTed to.
    /// A service user without an endpoint reads its responses by polling.
    pub endpoints: BTreeMap<String, String>,
    /// Service user EUI-64 → bearer token for `GET /api/v1/responses`. When
    /// any is set, polling needs a token and shows only that user's
    /// messages; when none is, polling is open (for a laptop, not production).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub poll_tokens: BTreeMap<String, String>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: 10_000,
            poll_retention: 10_000,
            max_attempts: 8,
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            post_timeout_secs: 10,
            endpoints: BTreeMap::new(),
            poll_tokens: BTreeMap::new(),
        }
    }
}

const MASK: &str = "********";

impl Config {
    /// The database URL in force: the configured one, or the SQLite file
    /// `<data_dir>/ecos.db`.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("ecos.db").display()),
        }
    }

    /// A copy with derived defaults filled in and secrets masked: what
    /// `ecos config show` prints.
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        c.database_url = Some(mask_url_password(&self.effective_database_url()));
        if c.admin.token.is_some() {
            c.admin.token = Some(MASK.into());
        }
        if let Some(p) = c.keys.pkcs11.as_mut()
            && p.pin.is_some()
        {
            p.pin = Some(MASK.into());
        }
        for t in c.delivery.poll_tokens.values_mut() {
            *t = MASK.into();
        }
        c
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid {
            key: "(whole configuration)".into(),
            message: format!("cannot be written as TOML: {e}"),
        })
    }

    /// Check what serde cannot: ranges, pairs of settings, URL schemes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        let h = &self.http;
        for (key, v) in [
            ("http.body_limit_bytes", h.body_limit_bytes),
            ("http.max_in_flight", h.max_in_flight),
            ("http.max_connections", h.max_connections),
            ("delivery.queue_capacity", self.delivery.queue_capacity),
            (
                "admin.import_body_limit_bytes",
                self.admin.import_body_limit_bytes,
            ),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if h.header_read_timeout_secs == 0 {
            return Err(invalid(
                "http.header_read_timeout_secs",
                "must be greater than 0".into(),
            ));
        }
        if h.request_timeout_secs == 0 {
            return Err(invalid(
                "http.request_timeout_secs",
                "must be greater than 0".into(),
            ));
        }
        if self.delivery.max_attempts == 0 {
            return Err(invalid(
                "delivery.max_attempts",
                "must be greater than 0".into(),
            ));
        }
        if self.delivery.initial_backoff_ms > self.delivery.max_backoff_ms {
            return Err(invalid(
                "delivery.initial_backoff_ms",
                format!(
                    "{} is above delivery.max_backoff_ms ({})",
                    self.delivery.initial_backoff_ms, self.delivery.max_backoff_ms
                ),
            ));
        }
        match (&h.tls.cert, &h.tls.key) {
            (Some(_), None) => {
                return Err(invalid(
                    "http.tls.key",
                    "missing: http.tls.cert is set, TLS needs both".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "http.tls.cert",
                    "missing: http.tls.key is set, TLS needs both".into(),
                ));
            }
            _ => {}
        }
        if let Some(t) = &self.admin.token
            && t.len() < 16
        {
            return Err(invalid(
                "admin.token",
                format!("is {} characters long; use at least 16", t.len()),
            ));
        }
        let url = self.effective_database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                format!(
                    "{}: use sqlite://FILE or postgres://...",
                    mask_url_password(&url)
                ),
            ));
        }
        for (field, code) in [
            ("body_too_large", &h.error_codes.body_too_large),
            (
                "unsupported_media_type",
                &h.error_codes.unsupported_media_type,
            ),
            ("bad_body", &h.error_codes.bad_body),
            ("overloaded", &h.error_codes.overloaded),
            ("timeout", &h.error_codes.timeout),
        ] {
            if !is_error_code(code) {
                return Err(invalid(
                    &format!("http.error_codes.{field}"),
                    format!("{code:?} is not a DUIS error code (E followed by digits)"),
                ));
            }
        }
        for (eui, url) in &self.delivery.endpoints {
            if eui.len() != 16 || !eui.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    &format!("delivery.endpoints.{eui}"),
                    "the key must be a service user EUI-64 as 16 hex digits".into(),
                ));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    &format!("delivery.endpoints.{eui}"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (eui, token) in &self.delivery.poll_tokens {
            let key = format!("delivery.poll_tokens.{eui}");
            if eui.len() != 16 || !eui.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    &key,
                    "the key must be a service user EUI-64 as 16 hex digits".into(),
                ));
            }
            if token.len() < 16 {
                return Err(invalid(
                    &key,
                    format!(
                        "the token is {} characters long; use at least 16",
                        token.len()
                    ),
                ));
            }
            if !seen.insert(token) {
                return Err(invalid(
                    &key,
                    "the same token is given to two service users".into(),
                ));
            }
        }
        if let Some(p) = &self.keys.pkcs11 {
            if p.module.as_os_str().is_empty() {
                return Err(invalid(
                    "keys.pkcs11.module",
                    "missing: the PKCS#11 module (shared library) to load".into(),
                ));
            }
            if p.token.is_empty() {
                return Err(invalid(
                    "keys.pkcs11.token",
                    "missing: the label of the token holding the keys".into(),
                ));
            }
            match (&p.pin, &p.pin_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "keys.pkcs11.pin",
                        "set either keys.pkcs11.pin or keys.pkcs11.pin_file, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        "keys.pkcs11.pin",
                        "missing: set keys.pkcs11.pin or keys.pkcs11.pin_file".into(),
                    ));
                }
                _ => {}
            }
            for (name, label, file) in [
                ("tcos_signing", &p.tcos_signing, &self.keys.tcos_signing),
                ("ecos_signing", &p.ecos_signing, &self.keys.ecos_signing),
                ("dsp_xml_sign", &p.dsp_xml_sign, &self.keys.dsp_xml_sign),
            ] {
                if label.is_some() && file.is_some() {
                    return Err(invalid(
                        &format!("keys.pkcs11.{name}"),
                        format!("the key is also given as a file (keys.{name}); name it once"),
                    ));
                }
            }
        }
        self.party.validate().map_err(|m| invalid("party", m))?;
        Ok(())
    }

    /// Every key file named in the configuration, with its setting name.
    pub fn key_files(&self) -> Vec<(&'static str, &Path)> {
        let k = &self.keys;
        [
            ("keys.tcos_signing", k.tcos_signing.as_deref()),
            ("keys.ecos_signing", k.ecos_signing.as_deref()),
            ("keys.acb_key_agreement", k.acb_key_agreement.as_deref()),
            ("keys.dsp_xml_sign", k.dsp_xml_sign.as_deref()),
            ("http.tls.key", self.http.tls.key.as_deref()),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
        .collect()
    }

    /// Check the permissions of every key file (see [`check_key_file`]),
    /// the TLS key included.
    pub fn check_key_files(&self) -> Result<(), ConfigError> {
        for (key, path) in self.key_files() {
            check_key_file(key, path, self.keys.allow_insecure_permissions)?;
        }
        Ok(())
    }

    /// Load the PKCS#8 keys after checking their permissions.
    pub fn load_keys(&self) -> Result<LoadedKeys, ConfigError> {
        let allow = self.keys.allow_insecure_permissions;
        let read = |key: &str, path: &Path| -> Result<Vec<u8>, ConfigError> {
            check_key_file(key, path, allow)?;
            std::fs::read(path).map_err(|source| ConfigError::KeyFileUnreadable {
                key: key.into(),
                path: path.into(),
                source,
            })
        };
        let content =
            |key: &str, path: &Path, e: ecos_smki::KeyError| ConfigError::KeyFileContent {
                key: key.into(),
                path: path.into(),
                message: e.to_string(),
            };
        let signer = |key: &str,
                      p: &Option<PathBuf>|
         -> Result<Option<ecos_smki::SoftwareSigner>, ConfigError> {
            match p {
                None => Ok(None),
                Some(path) => {
                    let bytes = read(key, path)?;
                    ecos_smki::SoftwareSigner::from_bytes(&bytes)
                        .map(Some)
                        .map_err(|e| content(key, path, e))
                }
            }
        };
        let k = &self.keys;
        let acb_key_agreement = match &k.acb_key_agreement {
            None => None,
            Some(path) => {
                let key = "keys.acb_key_agreement";
                let bytes = read(key, path)?;
                Some(
                    ecos_smki::SoftwareKeyAgreement::from_bytes(&bytes)
                        .map_err(|e| content(key, path, e))?,
                )
            }
        };
        Ok(LoadedKeys {
            tcos_signing: signer("keys.tcos_signing", &k.tcos_signing)?,
            ecos_signing: signer("keys.ecos_signing", &k.ecos_signing)?,
            acb_key_agreement,
            dsp_xml_sign: signer("keys.dsp_xml_sign", &k.dsp_xml_sign)?,
        })
    }
}

/// The private keys named in the configuration, loaded.
#[derive(Debug)]
pub struct LoadedKeys {
    /// Transitional CoS signing key.
    pub tcos_signing: Option<ecos_smki::SoftwareSigner>,
    /// Enduring CoS signing key.
    pub ecos_signing: Option<ecos_smki::SoftwareSigner>,
    /// ACB key-agreement key.
    pub acb_key_agreement: Option<ecos_smki::SoftwareKeyAgreement>,
    /// DSP XML-sign key.
    pub dsp_xml_sign: Option<ecos_smki::SoftwareSigner>,
}

fn is_error_code(code: &str) -> bool {
    code.len() > 1 && code.starts_with('E') && code[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Replace the password of a URL (`scheme://user:password@host`) by a mask.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:{MASK}{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// Refuse a key file that its group or others may read or write, unless
/// `allow_insecure` is set (then only a warning is logged).
pub fn check_key_file(key: &str, path: &Path, allow_insecure: bool) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::KeyFileUnreadable {
        key: key.into(),
        path: path.into(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            if !allow_insecure {
                return Err(ConfigError::KeyFilePermissions {
                    key: key.into(),
                    path: path.into(),
                    mode,
                });
            }
            tracing::warn!(key, path = %path.display(), mode = format!("{mode:03o}"),
                "key file is readable by group or others; accepted because insecure permissions are allowed");
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, allow_insecure);
    Ok(())
}

/// Configuration flags shared by every command that reads the configuration.
/// Each flag can also be given as the environment variable shown.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// The TOML configuration file.
    #[arg(long, env = "ECOS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set any setting by its dotted key, e.g. `--set party.fd_min_lead_secs=3600`
    /// (the value is read as TOML, else as a string). Environment:
    /// `ECOS__PARTY__FD_MIN_LEAD_SECS=3600`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Data directory.
    #[arg(long, env = "ECOS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (`sqlite://FILE` or `postgres://...`).
    #[arg(
        long,
        env = "ECOS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Listen address.
    #[arg(long, env = "ECOS_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Largest request body, in bytes.
    #[arg(long, env = "ECOS_BODY_LIMIT_BYTES", value_name = "BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// Request timeout, in seconds.
    #[arg(long, env = "ECOS_REQUEST_TIMEOUT_SECS", value_name = "SECS")]
    pub request_timeout_secs: Option<u64>,
    /// DUIS requests processed at the same time.
    #[arg(long, env = "ECOS_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// DUIS requests allowed to wait before the service answers 503.
    #[arg(long, env = "ECOS_MAX_QUEUED", value_name = "N")]
    pub max_queued: Option<usize>,
    /// Admin API bearer token (no token: no admin API).
    #[arg(
        long,
        env = "ECOS_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "ECOS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "ECOS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "ECOS_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "ECOS_LOG", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Transitional CoS signing key (PKCS#8).
    #[arg(long, env = "ECOS_TCOS_KEY", value_name = "FILE")]
    pub tcos_key: Option<PathBuf>,
    /// Enduring CoS signing key (PKCS#8).
    #[arg(long, env = "ECOS_ECOS_KEY", value_name = "FILE")]
    pub ecos_key: Option<PathBuf>,
    /// ACB key-agreement key (PKCS#8).
    #[arg(long, env = "ECOS_ACB_KA_KEY", value_name = "FILE")]
    pub acb_ka_key: Option<PathBuf>,
    /// DSP XML-sign key (PKCS#8).
    #[arg(long, env = "ECOS_DSP_XML_SIGN_KEY", value_name = "FILE")]
    pub dsp_xml_sign_key: Option<PathBuf>,
    /// Accept key files readable by group or others.
    #[arg(long, env = "ECOS_ALLOW_INSECURE_KEY_PERMISSIONS")]
    pub allow_insecure_key_permissions: bool,
}

impl ConfigArgs {
    /// Load the configuration: file, then environment (`ECOS__*`), then
    /// `--set`, then the named flags; then validate it.
    pub fn load(&self) -> Result<Config, ConfigError> {
        self.load_with_env(std::env::vars())
    }

    /// [`ConfigArgs::load`] with the environment given explicitly (tests).
    pub fn load_with_env(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut overrides: Vec<(String, String, toml::Value)> = Vec::new();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ECOS__"))
            .collect();
        env.sort();
        for (k, v) in env {
            let dotted = k["ECOS__".len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            overrides.push((k.clone(), dotted, parse_value(&v)));
        }
        for s in &self.set {
            let Some((k, v)) = s.split_once('=') else {
                return Err(ConfigError::Override {
                    origin: format!("--set {s}"),
                    message: "expected KEY=VALUE".into(),
                });
            };
            overrides.push((
                format!("--set {}", k.trim()),
                k.trim().into(),
                parse_value(v.trim()),
            ));
        }
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| toml::Value::String(p.display().to_string()))
        };
        let int = |n: Option<u64>| n.map(|n| toml::Value::Integer(n.min(i64::MAX as u64) as i64));
        let flags: Vec<(&str, &str, Option<toml::Value>)> = vec![
            ("--data-dir", "data_dir", path(&self.data_dir)),
            (
                "--database-url",
                "database_url",
                self.database_url.clone().map(toml::Value::String),
            ),
            (
                "--listen",
                "http.listen",
                self.listen.map(|a| toml::Value::String(a.to_string())),
            ),
            (
                "--body-limit-bytes",
                "http.body_limit_bytes",
                int(self.body_limit_bytes.map(|n| n as u64)),
            ),
            (
                "--request-timeout-secs",
                "http.request_timeout_secs",
                int(self.request_timeout_secs),
            ),
            (
                "--max-in-flight",
                "http.max_in_flight",
                int(self.max_in_flight.map(|n| n as u64)),
            ),
            (
                "--max-queued",
                "http.max_queued",
                int(self.max_queued.map(|n| n as u64)),
            ),
            (
                "--admin-token",
                "admin.token",
                self.admin_token.clone().map(toml::Value::String),
            ),
            ("--tls-cert", "http.tls.cert", path(&self.tls_cert)),
            ("--tls-key", "http.tls.key", path(&self.tls_key)),
            (
                "--log-format",
                "log.format",
                self.log_format.map(|f| {
                    toml::Value::String(match f {
                        LogFormat::Text => "text".into(),
                        LogFormat::Json => "json".into(),
                    })
                }),
            ),
            (
                "--log-filter",
                "log.filter",
                self.log_filter.clone().map(toml::Value::String),
            ),
            ("--tcos-key", "keys.tcos_signing", path(&self.tcos_key)),
            ("--ecos-key", "keys.ecos_signing", path(&self.ecos_key)),
            (
                "--acb-ka-key",
                "keys.acb_key_agreement",
                path(&self.acb_ka_key),
            ),
            (
                "--dsp-xml-sign-key",
                "keys.dsp_xml_sign",
                path(&self.dsp_xml_sign_key),
            ),
            (
                "--allow-insecure-key-permissions",
                "keys.allow_insecure_permissions",
                self.allow_insecure_key_permissions
                    .then_some(toml::Value::Boolean(true)),
            ),
        ];
        for (origin, key, v) in flags {
            if let Some(v) = v {
                overrides.push((origin.into(), key.into(), v));
            }
        }
        load_layers(self.config.as_deref(), &overrides)
    }
}

/// Read an override value as TOML (`3600`, `true`, `[1, 2]`), else as a string.
fn parse_value(s: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {s}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(s.into())),
        Err(_) => toml::Value::String(s.into()),
    }
}

/// Build the configuration from an optional file and overrides given as
/// `(origin, dotted key, value)`, in increasing precedence.
pub fn load_layers(
    file: Option<&Path>,
    overrides: &[(String, String, toml::Value)],
) -> Result<Config, ConfigError> {
    let mut table = toml::Table::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        // Deserialise the file alone first so that its errors carry its own
        // line and column and the offending key's name.
        toml::from_str::<Config>(&text).map_err(|e| ConfigError::File {
            path: path.into(),
            message: e.to_string().trim_end().to_string(),
        })?;
        table = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.into(),
            message: e.to_string(),
        })?;
    }
    for (origin, key, value) in overrides {
        set_dotted(&mut table, key, value.clone()).map_err(|message| ConfigError::Override {
            origin: origin.clone(),
            message,
        })?;
        // Deserialise after each override so an error names its origin.
        Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
            ConfigError::Override {
                origin: origin.clone(),
                message: format!("{key}: {}", e.to_string().trim_end()),
            }
        })?;
    }
    let config =
        Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
            key: "(whole configuration)".into(),
            message: e.to_string(),
        })?;
    config.validate()?;
    Ok(config)
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{key:?} is not a dotted key"));
    }
    let (last, parents) = parts.split_last().ok_or_else(|| "empty key".to_string())?;
    let mut t = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{} is not a table", parts[..=i].join("."))),
        };
    }
    t.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs11_keys_are_checked_and_the_pin_masked() {
        let base = || {
            let mut c = Config::default();
            c.keys.pkcs11 = Some(Pkcs11Config {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token: "ecos".into(),
                pin: Some("87654321".into()),
                tcos_signing: Some("tcos-ds".into()),
                ..Default::default()
            });
            c
        };
        base().validate().expect("valid");
        let shown = base().masked().to_toml().expect("TOML");
        assert!(
            !shown.contains("87654321") && shown.contains("tcos-ds"),
            "{shown}"
        );
        assert!(!format!("{:?}", base()).contains("87654321"));
        let mut c = base();
        c.keys.tcos_signing = Some("/keys/tcos.pem".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("keys.pkcs11.tcos_signing") && e.contains("keys.tcos_signing"),
            "{e}"
        );
        let mut c = base();
        if let Some(p) = c.keys.pkcs11.as_mut() {
            p.pin_file = Some("/keys/pin".into());
        }
        assert!(c.validate().unwrap_err().to_string().contains("not both"));
        let mut c = base();
        if let Some(p) = c.keys.pkcs11.as_mut() {
            p.pin = None;
        }
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("keys.pkcs11.pin")
        );
        let mut c = base();
        if let Some(p) = c.keys.pkcs11.as_mut() {
            p.token = String::new();
        }
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("keys.pkcs11.token")
        );
    }

    fn args() -> ConfigArgs {
        ConfigArgs::default()
    }

    #[test]
    fn defaults_are_sane() {
        let c = args().load_with_env([]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.http.body_limit_bytes, 1 << 20);
        assert_eq!(c.effective_database_url(), "sqlite://./ecos-data/ecos.db");
        assert!(c.admin.token.is_none());
    }

    #[test]
    fn file_env_set_and_flags_layer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ecos.toml");
        std::fs::write(
            &f,
            "data_dir = \"/srv/ecos\"\n[http]\nmax_in_flight = 3\nmax_queued = 4\n[party]\nfd_min_lead_secs = 10\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(f);
        a.set = vec![
            "party.fd_min_lead_secs=20".into(),
            "party.on_pending_fd=supersede".into(),
        ];
        a.max_queued = Some(9);
        let env = [
            ("ECOS__HTTP__MAX_IN_FLIGHT".to_string(), "5".to_string()),
            (
                "ECOS__PARTY__FD_MIN_LEAD_SECS".to_string(),
                "15".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = a.load_with_env(env).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/ecos"));
        assert_eq!(c.http.max_in_flight, 5);
        assert_eq!(c.http.max_queued, 9);
        assert_eq!(c.party.fd_min_lead_secs, 20);
        assert_eq!(c.party.on_pending_fd, ecos_party::OnPendingFd::Supersede);
        assert_eq!(c.effective_database_url(), "sqlite:///srv/ecos/ecos.db");
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ecos.toml");
        std::fs::write(&f, "[http]\nbody_limit = 5\n").unwrap();
        let mut a = args();
        a.config = Some(f.clone());
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("body_limit") && e.contains("ecos.toml"), "{e}");

        std::fs::write(&f, "[party]\nfd_min_lead = 5\n").unwrap();
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("fd_min_lead"), "{e}");

        let e = args()
            .load_with_env([("ECOS__HTTP__NO_SUCH_KNOB".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no_such_knob") && e.contains("ECOS__HTTP__NO_SUCH_KNOB"),
            "{e}"
        );

        let mut a = args();
        a.set = vec!["admin.tokn=abc".into()];
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("tokn"), "{e}");
    }

    #[test]
    fn invalid_values_are_refused_with_the_key() {
        let mut a = args();
        a.tls_cert = Some("/x/cert.pem".into());
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("http.tls.key"), "{e}");

        let mut a = args();
        a.set = vec!["delivery.endpoints.90B3D51F3003000=\"http://x\"".into()];
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("delivery.endpoints.90B3D51F3003000"), "{e}");

        let mut a = args();
        a.database_url = Some("mysql://a".into());
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("database_url"), "{e}");

        let mut a = args();
        a.set = vec!["http.error_codes.timeout=\"X1\"".into()];
        let e = a.load_with_env([]).unwrap_err().to_string();
        assert!(e.contains("http.error_codes.timeout"), "{e}");
    }

    #[test]
    fn show_masks_secrets() {
        let mut a = args();
        a.admin_token = Some("s3cret-admin-token-0123".into());
        a.database_url = Some("postgres://ecos:hunter2@db.example:5432/ecos".into());
        a.set = vec!["delivery.poll_tokens.90B3D51F30030000=\"supplier2-poll-token-xyz\"".into()];
        let c = a.load_with_env([]).unwrap();
        assert_eq!(c.delivery.poll_tokens.len(), 1);
        let shown = c.masked().to_toml().unwrap();
        assert!(
            !shown.contains("s3cret")
                && !shown.contains("hunter2")
                && !shown.contains("supplier2-poll"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://ecos:********@db.example:5432/ecos"),
            "{shown}"
        );
        // What is shown loads back (masked values aside) into the same settings.
        let back: Config = toml::from_str(&shown).unwrap();
        assert_eq!(back.http, c.http);
        assert_eq!(back.party, c.party);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn masking_urls() {
        assert_eq!(mask_url_password("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(mask_url_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            mask_url_password("postgres://u:p@h/db"),
            "postgres://u:********@h/db"
        );
        assert_eq!(
            mask_url_password("postgres://u:p@ss@h"),
            "postgres://u:********@h"
        );
    }
}
