//! The `flowd` binary.
//!
//! `flowd serve` runs the server on an embedded SQLite store in the data dir, or on PostgreSQL
//! with `--store postgres://…` (see `store.rs`). Settings come from,
//! in order of precedence: command-line flags, `FLOWD_*` environment variables, an optional TOML
//! file (`--config`), and built-in defaults (see `config.rs` and the README).

mod config;
mod queue;
mod run;
mod serve;
mod store;
mod token;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flowd",
    version,
    about = "A self-hosted workflow engine serving Losant's REST API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Run a workflow file once, without a server; exit 1 if the run fails.
    Run(run::RunArgs),
    /// Make, list and revoke user-level API tokens on a data dir or a PostgreSQL store.
    Token {
        /// Directory holding the database.
        #[arg(long, env = "FLOWD_DATA_DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// The store: `sqlite` (in the data dir; the default) or a PostgreSQL URL
        /// (postgres://user@host:port/database).
        #[arg(long, env = "FLOWD_STORE", global = true)]
        store: Option<String>,
        /// A TOML file with settings (only `data-dir` and `store` are used here).
        #[arg(long, env = "FLOWD_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// `flowd token` subcommands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a user token (it reaches every application) and print its value once.
    Create {
        /// A name for the token.
        #[arg(long)]
        name: String,
        /// A scope, e.g. all.User.read or all.User.bounded; repeat for several.
        #[arg(long = "scope", required = true)]
        scope: Vec<String>,
        /// What the token is for.
        #[arg(long)]
        description: Option<String>,
        /// When it stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List user tokens: id, name, status, scope, expiration.
    List,
    /// Delete a user token by id.
    Revoke {
        /// The token's id (from `flowd token list`).
        id: String,
    },
}

/// Flags of `flowd serve`; each is also read from its environment variable.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FLOWD_LISTEN")]
    pub listen: Option<String>,
    /// Directory holding the database and the owner token.
    #[arg(long, env = "FLOWD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store: `sqlite` (flowd.db in the data dir; the default) or a PostgreSQL URL
    /// (postgres://user@host:port/database; ?options=-c%20search_path%3DNAME picks a schema).
    #[arg(long, env = "FLOWD_STORE")]
    pub store: Option<String>,
    /// The run queue: `local` (in this process; the default) or a NATS JetStream URL shared by
    /// several nodes (nats://host:port, ?cluster=NAME to keep clusters apart; needs --store
    /// postgres://…).
    #[arg(long, env = "FLOWD_QUEUE")]
    pub queue: Option<String>,
    /// A TOML file with settings (flags and environment variables override it).
    #[arg(long, env = "FLOWD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: `pretty` for people, `json` for log collectors.
    #[arg(long, env = "FLOWD_LOG_FORMAT", value_parser = ["pretty", "json"])]
    pub log_format: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("flowd: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// mimalloc: a run allocates and frees many small JSON values; glibc's malloc spent a quarter of
/// the request/reply benchmark's CPU in allocation (see BENCHMARKS.md). Built without
/// transparent huge pages (`no_thp`), its idle footprint is glibc's (31 MB, not 41).
/// The `system-alloc` feature leaves it out, for heap profilers that hook `malloc` (heaptrack).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let runtime = match runtime() {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            match runtime.block_on(run::run(args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("flowd: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Token {
            data_dir,
            store,
            config,
            command,
        } => {
            let (data_dir, store) = match config::store_only(data_dir, store, config) {
                Ok(found) => found,
                Err(e) => {
                    eprintln!("flowd: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match runtime() {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            match runtime.block_on(token::run(&data_dir, &store, command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flowd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let settings = match config::Settings::resolve(args) {
                Ok(settings) => settings,
                Err(e) => {
                    eprintln!("flowd: {e}");
                    return ExitCode::from(2);
                }
            };
            serve::init_logging(&settings.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("flowd: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "flowd stopped");
                    eprintln!("flowd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
