//! The `kring` binary: parse the configuration, set up logging, and run.

use std::process::ExitCode;

use clap::Parser;
use kring::clock::{Clock, SystemClock};
use kring::config::{AdminCommand, Cli, Command};
use kring::store::Store;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// mimalloc returns freed memory to the system within moments; glibc's
/// malloc kept the 19 MiB blocks of a burst of password hashes for good.
/// Its arenas are committed on demand (`.cargo/config.toml`), so an idle
/// server stays small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3, the version
/// libmimalloc-sys builds); the crate names no constant for it. The test
/// below checks the number against the option's default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc gives freed memory back to the system `purge_delay` after it
/// was freed (1 s), but only checks when the thread that freed it next
/// allocates: a thread that idles after start-up or after a burst keeps it
/// for good. An idle server kept 13 MiB of start-up's freed memory that
/// way (40.1 MiB instead of 26.9 MiB in the benchmark). Purging at once
/// gives it back at the free; the API benchmark shows no cost in
/// throughput. `MIMALLOC_PURGE_DELAY` in the environment still decides if
/// it is set.
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set stores a number in mimalloc's table of
    // options, which mimalloc reads atomically wherever it uses them; it
    // takes no pointer and may be called at any time from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    init_tracing(&cli.config.log_format);
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kring: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> Result<(), String> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = TcpListener::bind(config.bind)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
            // The bound address: with port 0 the system picked one.
            let address = listener.local_addr().unwrap_or(config.bind);
            tracing::info!(
                address = %address,
                database = %kring::store::redact_url(&config.database_url()),
                "kring is serving"
            );
            kring::run(config, listener, shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("kring stopped");
            Ok(())
        }
        Command::Migrate => {
            let store = connect(&config.database_url()).await?;
            kring::migrate(&store).await.map_err(|e| e.to_string())?;
            out("migrations applied\n")
        }
        Command::Openapi => out(&kring::app::spec_json()),
        Command::PushPayloadSchema => out(&kring::push::payload::json_schema()),
        Command::InstrumentSchema => out(&kring::outcomes::schema::json_schema()),
        Command::VapidKeys => {
            let (private, public) = kring::push::webpush::generate_vapid_keys()?;
            out(&format!(
                "KRING_VAPID_PRIVATE_KEY={private}\n# The public key, for the PWA's \
                 pushManager.subscribe({{applicationServerKey}}):\n# {public}\n"
            ))
        }
        Command::Admin(AdminCommand::CreateOrganisation(cmd)) => {
            let store = connect(&config.database_url()).await?;
            kring::migrate(&store).await.map_err(|e| e.to_string())?;
            let made = kring::organisations::bootstrap(&store, SystemClock.now_ms(), &cmd)
                .await
                .map_err(|e| match e {
                    kring::error::ApiError::Validation(errors) => errors
                        .iter()
                        .map(|f| format!("--{} {}", f.field.replace('_', "-"), f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                })?;
            out(&format!(
                "organisation_id: {}\ncoordinator_id:  {}\nsetup_code:      {}\n\nThe coordinator \
                 sets a password with this code (valid 7 days) at POST /v1/auth/setup.\n",
                made.organisation_id, made.coordinator_id, made.setup_code
            ))
        }
        Command::Admin(AdminCommand::ImportInstrument(cmd)) => {
            let json = std::fs::read_to_string(&cmd.file)
                .map_err(|e| format!("cannot read {}: {e}", cmd.file.display()))?;
            let store = connect(&config.database_url()).await?;
            kring::migrate(&store).await.map_err(|e| e.to_string())?;
            let result = kring::outcomes::instruments_api::import(
                &store,
                SystemClock.now_ms(),
                &cmd.organisation,
                &json,
            )
            .await;
            store.close().await;
            let instrument = result?;
            out(&format!(
                "imported {} version {} for organisation {}\n",
                instrument.key, instrument.version, cmd.organisation
            ))
        }
        Command::Admin(AdminCommand::VerifyAccessLog) => {
            let store = connect(&config.database_url()).await?;
            kring::migrate(&store).await.map_err(|e| e.to_string())?;
            let result = verify_access_log(&store).await;
            store.close().await;
            result
        }
    }
}

/// `kring admin verify-access-log`: an error naming the first broken entry.
async fn verify_access_log(store: &Store) -> Result<(), String> {
    let verified = kring::access_log::verify::verify(store)
        .await
        .map_err(|e| format!("cannot read the access log: {e}"))?
        .map_err(|broken| format!("the access log is broken at {broken}"))?;
    let mut text = String::new();
    for chain in &verified.chains {
        text.push_str(&format!(
            "organisation {}: {} entries kept, last entry {} with hash {}\n",
            chain.organisation_id, chain.entries, chain.seq, chain.hash
        ));
    }
    text.push_str(&format!(
        "access log verified: {} organisation(s)\n",
        verified.chains.len()
    ));
    out(&text)
}

/// Writes command output. A reader that went away (`kring openapi | head`)
/// is not an error.
fn out(text: &str) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write output: {e}"))
        }
        _ => Ok(()),
    }
}

async fn connect(url: &str) -> Result<Store, String> {
    Store::connect(url).await.map_err(|e| e.to_string())
}

fn init_tracing(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; draining");
}

#[cfg(test)]
mod tests {
    /// Option 15 is the purge delay: its default (1000 ms) is the only
    /// option default of that value, and setting it reads back.
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_is_option_15_and_set_to_zero() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: as in `purge_freed_memory_at_once`: options are plain
        // numbers, read and written atomically.
        let before = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(before, 1000, "mimalloc's purge delay default");
        super::purge_freed_memory_at_once();
        let after = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(after, 0);
    }
}
