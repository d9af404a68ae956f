//! The `bullet-train` binary. `serve` runs the server; `migrate` applies database migrations; every
//! other command manages flags through a server's admin API (see `admin`).
//! Configuration comes from flags or their environment variables, read here and nowhere else.

use std::time::Duration;

use anyhow::Context;
use bullet_train_server::{Config, Limits, Server};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[macro_use]
mod output;
mod admin;
mod allocator;
mod client;

#[derive(Debug, Parser)]
#[command(
    name = "bullet-train",
    version,
    about = "Self-hosted feature flags and remote config"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: admin::Connection,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Copy a whole installation (every organisation, project, environment, identity, trait,
    /// override, key, webhook and the audit log) into an empty database, for example from SQLite to
    /// PostgreSQL. Both databases are migrated first; the copy is one transaction on the target.
    Copy(CopyArgs),
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// Database URL: `sqlite://path` (created if missing) or `postgres://user:password@host/db`.
    #[arg(
        long,
        env = "BULLET_TRAIN_DATABASE_URL",
        default_value = "sqlite://bullet-train.db"
    )]
    database_url: String,
}

#[derive(Debug, Args)]
struct CopyArgs {
    /// The database to copy from (`sqlite://path` or `postgres://...`).
    #[arg(long)]
    from: String,
    /// The database to copy into; it must hold no data yet.
    #[arg(long)]
    to: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "BULLET_TRAIN_BIND", default_value = "127.0.0.1:8000")]
    bind: String,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Admin API token. Without one, the first start generates one, prints it once and stores its hash.
    #[arg(long, env = "BULLET_TRAIN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Do not apply pending migrations on start (run `bullet-train migrate` separately).
    #[arg(long, env = "BULLET_TRAIN_NO_MIGRATE")]
    no_migrate: bool,
    /// Seconds between keep-alive comments on event streams.
    #[arg(long, env = "BULLET_TRAIN_SSE_KEEP_ALIVE_SECONDS", default_value_t = 5)]
    sse_keep_alive_seconds: u64,
    /// Seconds between a replica's checks of every environment's revision with the database
    /// (PostgreSQL), in case a change notification was lost.
    #[arg(long, env = "BULLET_TRAIN_SYNC_INTERVAL_SECONDS", default_value_t = 5)]
    sync_interval_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs sent to a file or a collector stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Admin(command) => {
            if let Err(e) = admin::run(command, &cli.connection).await {
                eprintln!("error: {e}");
                std::process::exit(e.exit_code());
            }
            Ok(())
        }
        Command::Serve(args) => serve(args).await,
        Command::Copy(args) => copy(args).await,
        Command::Migrate(args) => {
            let store = bullet_train_server::open_store(&args.database_url).await?;
            store.migrate().await.context("applying migrations")?;
            // Closed, not dropped: on PostgreSQL this replica's heartbeat goes at once.
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config {
        database_url: args.database.database_url,
        migrate: !args.no_migrate,
        admin_token: args.admin_token,
        limits: Limits {
            sse_keep_alive: Duration::from_secs(args.sse_keep_alive_seconds.max(1)),
            sync_interval: Duration::from_secs(args.sync_interval_seconds.max(1)),
            ..Limits::default()
        },
    };
    let server = Server::start(config).await?;
    allocator::release_free_memory();
    let listener = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    if let Some(token) = server.generated_admin_token() {
        println!("Generated admin token (shown once; keep it safe): {token}");
    }
    println!("listening on http://{}", listener.local_addr()?);
    server.serve(listener, shutdown_signal()).await
}

async fn copy(args: CopyArgs) -> anyhow::Result<()> {
    let from = bullet_train_server::open_store(&args.from).await?;
    let to = bullet_train_server::open_store(&args.to).await?;
    from.migrate().await.context("migrating the source")?;
    to.migrate().await.context("migrating the target")?;
    let report = bullet_train_store::transfer::copy(from.as_ref(), to.as_ref())
        .await
        .context("copying")?;
    for (table, rows) in &report.tables {
        println!("{table:<24} {rows:>10}");
    }
    from.close().await;
    to.close().await;
    println!("copied");
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
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
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
