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
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an organisation and its first coordinator; prints a one-time
    /// setup code with which the coordinator chooses a password.
    CreateOrganisation(CreateOrganisation),
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

    /// Log format: `text` or `json`. Filter with RUST_LOG (default `info`).
    #[arg(long, env = "KRING_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
}

impl Config {
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
