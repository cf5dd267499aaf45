//! `resilient-relay`: see `resilient-relay --help` and relay/README.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use resilient_relay::cli::{MintArgs, ServeArgs};

/// The WebSocket relay between resilient-transcriber clients and a
/// transcription provider: checks client tokens, adds the provider's
/// credential, forwards close codes, drains with 1012 on SIGTERM.
#[derive(Debug, Parser)]
#[command(
    name = "resilient-relay",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a client token (HS256) signed with RELAY_JWT_SECRET.
    Mint(MintArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Mint(args)) => resilient_relay::cli::mint(args, |k| std::env::var(k).ok()),
        None => resilient_relay::cli::serve(&cli.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resilient-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
