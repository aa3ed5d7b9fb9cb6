//! The `segcast` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "segcast",
    version,
    about = "Live HLS from browser recordings, and a library of videos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(segcast::Config),
    /// Import media files into the library (no server needed; a running
    /// server on the same --data lists them as they finish).
    // The server's own settings (listening, upload limits, the inbox) mean
    // nothing here: accepted, so one environment serves both, but not shown.
    #[command(mut_arg("listen", |a| a.hide(true)))]
    #[command(mut_arg("metrics_listen", |a| a.hide(true)))]
    #[command(mut_arg("store", |a| a.hide(true)))]
    #[command(mut_arg("publish_key", |a| a.hide(true)))]
    #[command(mut_arg("max_chunk_bytes", |a| a.hide(true)))]
    #[command(mut_arg("max_recording_bytes", |a| a.hide(true)))]
    #[command(mut_arg("max_chunks", |a| a.hide(true)))]
    #[command(mut_arg("max_live_recordings", |a| a.hide(true)))]
    #[command(mut_arg("idle_timeout_s", |a| a.hide(true)))]
    #[command(mut_arg("body_timeout_s", |a| a.hide(true)))]
    #[command(mut_arg("player_dir", |a| a.hide(true)))]
    #[command(mut_arg("ffmpeg_attempts", |a| a.hide(true)))]
    #[command(mut_arg("max_import_bytes", |a| a.hide(true)))]
    #[command(mut_arg("inbox_settle_ms", |a| a.hide(true)))]
    #[command(mut_arg("header_timeout_s", |a| a.hide(true)))]
    #[command(mut_arg("keep_alive_timeout_s", |a| a.hide(true)))]
    #[command(mut_arg("max_connections", |a| a.hide(true)))]
    #[command(mut_arg("max_connections_per_client", |a| a.hide(true)))]
    #[command(mut_arg("max_waiting_per_client", |a| a.hide(true)))]
    #[command(mut_arg("trusted_proxies", |a| a.hide(true)))]
    #[command(mut_arg("media_cache_mb", |a| a.hide(true)))]
    Import {
        #[command(flatten)]
        config: segcast::Config,
        /// Files to import (any container ffmpeg reads).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The import command draws progress bars: only warnings interrupt them.
    let default_log = match cli.command {
        Command::Serve(_) => "info",
        Command::Import { .. } => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("SEGCAST_LOG").unwrap_or_else(|_| EnvFilter::new(default_log)),
        )
        .init();
    let result = match cli.command {
        Command::Serve(config) => serve(config).await.map(|()| ExitCode::SUCCESS),
        Command::Import { config, files } => import(config, files).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("segcast: {e}");
        ExitCode::FAILURE
    })
}

/// Imports, prints a summary table, and names each failed file on stderr
/// (exit status 1 when any failed).
async fn import(
    config: segcast::Config,
    files: Vec<std::path::PathBuf>,
) -> std::io::Result<ExitCode> {
    let reports = segcast::batch::run(config, files).await?;
    println!("{}", segcast::batch::summary_table(&reports));
    let failed: Vec<_> = reports.iter().filter(|r| r.outcome.is_err()).collect();
    for report in &failed {
        if let Err(reason) = &report.outcome {
            eprintln!("segcast import: {} failed: {reason}", report.file.display());
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "segcast import: {} of {} files failed",
            failed.len(),
            reports.len()
        );
        ExitCode::FAILURE
    })
}

async fn serve(config: segcast::Config) -> std::io::Result<()> {
    let listener = segcast::http::server::bind(config.listen).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
    })?;
    segcast::serve(listener, config, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
