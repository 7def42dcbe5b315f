//! Configuration: every option is a command-line flag and a `KRING_*`
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kring",
    version,
    about = "Backend for small asynchronous support circles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI spec as JSON.
    Openapi,
    /// Print the push payload's JSON Schema.
    PushPayloadSchema,
    /// Print the JSON Schema of instrument (questionnaire) definitions.
    InstrumentSchema,
    /// Generate a VAPID key pair for Web Push.
    VapidKeys,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an organisation and its first coordinator; prints a one-time
    /// setup code with which the coordinator chooses a password.
    CreateOrganisation(CreateOrganisation),
    /// Check every organisation's access log: each entry follows the one
    /// before it and matches its hash. Prints each chain's last entry and
    /// hash; exits non-zero naming the first broken entry.
    VerifyAccessLog,
    /// Import an organisation's own (licensed) instrument definition, in
    /// the format of `kring instrument-schema`. A key and version, once
    /// imported, never change; a shipped instrument's key is refused.
    ImportInstrument(ImportInstrument),
}

#[derive(Debug, Args)]
pub struct ImportInstrument {
    /// The organisation's id.
    #[arg(long)]
    pub organisation: String,
    /// The definition: a JSON file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CreateOrganisation {
    /// The organisation's name.
    #[arg(long)]
    pub name: String,
    /// The first coordinator's e-mail address (their sign-in name).
    #[arg(long)]
    pub coordinator_email: String,
    /// The first coordinator's display name.
    #[arg(long)]
    pub coordinator_name: String,
    /// The coordinator's locale: nl or en.
    #[arg(long, default_value = "nl")]
    pub locale: String,
    /// The coordinator's IANA time zone.
    #[arg(long, default_value = "Europe/Amsterdam")]
    pub time_zone: String,
}

/// Apple's production APNs host, for App Store and TestFlight builds.
pub const APNS_PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's sandbox APNs host, for development builds.
pub const APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the API listens on.
    #[arg(
        long,
        env = "KRING_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: SocketAddr,

    /// Database URL: sqlite://path/to/file.db or postgres://user@host/db.
    /// Default: an SQLite file in KRING_DATA_DIR.
    #[arg(long, env = "KRING_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Folder for the default SQLite database; created on first run.
    #[arg(long, env = "KRING_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Lifetime of an access token, in seconds.
    #[arg(
        long,
        env = "KRING_ACCESS_TOKEN_TTL_SECS",
        default_value_t = 900,
        global = true
    )]
    pub access_token_ttl_secs: u32,

    /// Lifetime of a refresh token, in days; every refresh starts it anew.
    #[arg(
        long,
        env = "KRING_REFRESH_TOKEN_TTL_DAYS",
        default_value_t = 180,
        global = true
    )]
    pub refresh_token_ttl_days: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "KRING_MAX_BODY_BYTES", default_value_t = 64 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Open client connections at most; one more is answered 503 and closed.
    /// Keep it well below the process's open-file limit (`ulimit -n`), which
    /// also covers the database pool and outgoing pushes.
    #[arg(
        long,
        env = "KRING_MAX_CONNECTIONS",
        default_value_t = 512,
        global = true
    )]
    pub max_connections: usize,

    /// Database connections the server keeps open at most (default: 8 for
    /// SQLite, 16 for PostgreSQL). No request ever needs two at once, so
    /// even 1 works (the tests run the whole access log sweep on one).
    #[arg(long, env = "KRING_DATABASE_POOL_SIZE", global = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: Option<u32>,

    /// Seconds a client has to send a request's headers, counted from when
    /// the connection opens or the previous response went out (so it is also
    /// the idle timeout of a kept-alive HTTP/1.1 connection).
    #[arg(
        long,
        env = "KRING_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub header_timeout_secs: u64,

    /// Seconds a request may take from its headers to its last body byte and
    /// its response; a slower one is cut off with 408.
    #[arg(
        long,
        env = "KRING_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,

    /// Failed sign-ins per account name within the throttle window before
    /// further attempts are refused.
    #[arg(
        long,
        env = "KRING_LOGIN_MAX_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub login_max_failures: u32,

    /// The login throttle window, in seconds.
    #[arg(
        long,
        env = "KRING_LOGIN_WINDOW_SECS",
        default_value_t = 900,
        global = true
    )]
    pub login_window_secs: u32,

    /// Failed sign-ins from one client address within the throttle window
    /// (whatever names they try) before further attempts from it are
    /// refused. Behind a reverse proxy set `KRING_CLIENT_ADDRESS_HEADER`,
    /// or every client shares the proxy's address.
    #[arg(
        long,
        env = "KRING_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 30,
        global = true
    )]
    pub login_max_failures_per_address: u32,

    /// A header your reverse proxy sets to the client's address (e.g.
    /// `X-Forwarded-For`; the last address in it is used, the one your
    /// proxy appended). Unset: the connection's peer address. Set it only
    /// behind a proxy that always sets it, or clients can pick their own.
    #[arg(long, env = "KRING_CLIENT_ADDRESS_HEADER", global = true)]
    pub client_address_header: Option<String>,

    /// Password hashes (Argon2id, 19 MiB each) computed at once; 0: one per
    /// CPU core. More sign-ins wait their turn.
    #[arg(
        long,
        env = "KRING_HASH_CONCURRENCY",
        default_value_t = 0,
        global = true
    )]
    pub hash_concurrency: usize,

    /// Sign-ins that may wait for a password hash at once; one more, or one
    /// that waited 10 seconds, is answered 503 `busy` with `Retry-After`.
    #[arg(long, env = "KRING_HASH_QUEUE", default_value_t = 256, global = true)]
    pub hash_queue: usize,

    /// Hosts of push services that Web Push endpoints may point at
    /// (comma-separated; `*.example.com` matches its subdomains).
    #[arg(
        long,
        env = "KRING_WEBPUSH_ALLOWED_HOSTS",
        default_value = "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com",
        global = true
    )]
    pub webpush_allowed_hosts: String,

    /// Also accept http:// Web Push endpoints: local development and tests only.
    #[arg(
        long,
        env = "KRING_WEBPUSH_ALLOW_HTTP",
        default_value_t = false,
        global = true
    )]
    pub webpush_allow_http: bool,

    /// Sends in flight at once, per push provider.
    #[arg(
        long,
        env = "KRING_PUSH_CONCURRENCY",
        default_value_t = 32,
        global = true
    )]
    pub push_concurrency: usize,

    /// How long one push request may take, in milliseconds.
    #[arg(
        long,
        env = "KRING_PUSH_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub push_timeout_ms: u64,

    /// Web Push: the VAPID private key, base64url (make one with `kring vapid-keys`).
    #[arg(
        long,
        env = "KRING_VAPID_PRIVATE_KEY",
        global = true,
        hide_env_values = true
    )]
    pub vapid_private_key: Option<String>,

    /// Web Push: the VAPID subject, a `mailto:` or `https:` contact for push services.
    #[arg(
        long,
        env = "KRING_VAPID_SUBJECT",
        default_value = "mailto:push@kring.invalid",
        global = true
    )]
    pub vapid_subject: String,

    /// APNs: path to the .p8 token-signing key from Apple.
    #[arg(long, env = "KRING_APNS_KEY_FILE", global = true)]
    pub apns_key_file: Option<PathBuf>,

    /// APNs: the key's id (10 characters, shown beside the key at Apple).
    #[arg(long, env = "KRING_APNS_KEY_ID", global = true)]
    pub apns_key_id: Option<String>,

    /// APNs: your Apple developer team id.
    #[arg(long, env = "KRING_APNS_TEAM_ID", global = true)]
    pub apns_team_id: Option<String>,

    /// APNs: the base URL for devices registered with environment
    /// `production` (App Store and TestFlight builds).
    #[arg(
        long,
        env = "KRING_APNS_BASE_URL",
        default_value = APNS_PRODUCTION_URL,
        global = true
    )]
    pub apns_base_url: String,

    /// APNs: the base URL for devices registered with environment `sandbox`
    /// (development builds).
    #[arg(
        long,
        env = "KRING_APNS_SANDBOX_BASE_URL",
        default_value = APNS_SANDBOX_URL,
        global = true
    )]
    pub apns_sandbox_base_url: String,

    /// APNs, testing only: a PEM file with one more CA certificate to trust
    /// (a local APNs stand-in). Apple's hosts never need it.
    #[arg(long, env = "KRING_APNS_EXTRA_CA_FILE", global = true)]
    pub apns_extra_ca_file: Option<PathBuf>,

    /// FCM: path to the Firebase service-account JSON key file.
    #[arg(long, env = "KRING_FCM_SERVICE_ACCOUNT_FILE", global = true)]
    pub fcm_service_account_file: Option<PathBuf>,

    /// FCM: the Firebase project id (default: the key file's `project_id`).
    #[arg(long, env = "KRING_FCM_PROJECT_ID", global = true)]
    pub fcm_project_id: Option<String>,

    /// FCM: the HTTP v1 API's base URL.
    #[arg(
        long,
        env = "KRING_FCM_BASE_URL",
        default_value = "https://fcm.googleapis.com",
        global = true
    )]
    pub fcm_base_url: String,

    /// FCM: the OAuth2 token URL (default: the key file's `token_uri`).
    #[arg(long, env = "KRING_FCM_TOKEN_URL", global = true)]
    pub fcm_token_url: Option<String>,

    /// Run the scheduler and the delivery workers in this instance. Every
    /// instance may (PostgreSQL row locks coordinate them); turn off for an
    /// API-only instance.
    #[arg(long, env = "KRING_RUN_JOBS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub run_jobs: bool,

    /// In-process read caches for the hottest reads (a token's caller, a
    /// caller's access to a circle, a circle's first feed page), forgotten
    /// by the writes that change them. `auto`: on for SQLite, off for
    /// PostgreSQL, where other instances' writes would go unseen. `on` with
    /// PostgreSQL only for a single instance.
    #[arg(long, env = "KRING_READ_CACHE", value_enum, default_value_t = ReadCache::Auto, global = true)]
    pub read_cache: ReadCache,

    /// How long access-log entries are kept, in days (default five years);
    /// older ones are deleted by the upkeep job.
    #[arg(
        long,
        env = "KRING_ACCESS_LOG_RETENTION_DAYS",
        default_value_t = 1825,
        value_parser = clap::value_parser!(u32).range(1..=36_500),
        global = true
    )]
    pub access_log_retention_days: u32,

    /// Days between a member's erasure request and the erasure, during
    /// which it can be cancelled (GDPR art. 17 asks for no undue delay).
    #[arg(
        long,
        env = "KRING_ERASURE_GRACE_DAYS",
        default_value_t = 7,
        value_parser = clap::value_parser!(u32).range(0..=30),
        global = true
    )]
    pub erasure_grace_days: u32,
    /// How long a finished export of a member's data can be downloaded, in
    /// hours (default three days); then the document is deleted.
    #[arg(
        long,
        env = "KRING_EXPORT_TTL_HOURS",
        default_value_t = 72,
        value_parser = clap::value_parser!(u32).range(1..=8_760),
        global = true
    )]
    pub export_ttl_hours: u32,

    /// Outcome reports: a cell (count, mean, percentage) resting on fewer
    /// members than this is suppressed in the organisation's report, with
    /// secondary suppression. 1 shows everything.
    #[arg(
        long,
        env = "KRING_REPORT_MIN_CELL",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000),
        global = true
    )]
    pub report_min_cell: u32,

    /// Testing only: run on a clock that `POST /test/clock` moves, so that
    /// contract tests can let days pass. Never enable in production.
    #[arg(long, env = "KRING_TEST_CLOCK", default_value_t = false, global = true)]
    pub test_clock: bool,

    /// Log format: `text` or `json`. Filter with RUST_LOG (default `info`).
    #[arg(long, env = "KRING_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
}

/// Whether the read caches are on; see [`Config::read_cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadCache {
    Auto,
    On,
    Off,
}

impl ReadCache {
    pub fn enabled_for(self, backend: crate::store::Backend) -> bool {
        match self {
            Self::Auto => backend == crate::store::Backend::Sqlite,
            Self::On => true,
            Self::Off => false,
        }
    }
}

impl Config {
    /// The Web Push allowlist as a list of lower-case host patterns.
    pub fn webpush_host_allowlist(&self) -> Vec<String> {
        self.webpush_allowed_hosts
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    }

    /// The database URL to use: the configured one, or the default SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("kring.db").display()),
        }
    }

    /// A configuration for tests and embedding: defaults, with this database.
    pub fn for_database(url: impl Into<String>) -> Self {
        let cli = Cli::parse_from(["kring"]);
        Self {
            database_url: Some(url.into()),
            ..cli.config
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every environment variable the server reads has a row in the
    /// README's configuration table.
    #[test]
    fn every_setting_is_in_the_readme() {
        let readme = include_str!("../README.md");
        let table = readme
            .split_once("\n## Configuration\n")
            .and_then(|(_, rest)| rest.split("\n## ").next())
            .unwrap_or_default();
        let command = Cli::command();
        let envs: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        assert!(envs.len() > 30, "only {} settings found", envs.len());
        let missing: Vec<&String> = envs
            .iter()
            .filter(|e| !table.contains(&format!("| `{e}` |")))
            .collect();
        assert!(
            missing.is_empty(),
            "not in the README's configuration table: {missing:?}"
        );
    }
}
