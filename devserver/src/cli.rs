//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Development backend for resilient-transcriber: serves the demo and the
/// wasm package, speaks the Deepgram, Omi and generic streaming protocols,
/// records sessions and injects network faults on command.
#[derive(Debug, Parser)]
#[command(name = "devserver", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dev server (static files, /v1/listen, /v4/web/listen, /v1/stream, /control).
    Serve(ServeArgs),
    /// Run the production relay (the `resilient-relay` binary, same options):
    /// client tokens required unless --insecure-no-auth, the provider
    /// credential from RELAY_AUTH_HEADER or DEEPGRAM_API_KEY, close codes
    /// forwarded, 1012 drain on SIGTERM. See relay/README.md.
    Relay(resilient_relay::cli::ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TCP port (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Interface to bind. Keep the default unless you know why: the server
    /// has no authentication on /control.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Default speech engine: pocketsphinx (offline recognition, when built
    /// with libpocketsphinx), meter (speech activity only) or counter
    /// (names the stream positions of self-describing test audio).
    /// Connections may override it with ?engine=.
    #[arg(long)]
    pub engine: Option<String>,
    /// Directory served at / (index.html at /).
    #[arg(long, default_value = "www")]
    pub www: PathBuf,
    /// Directory served at /pkg/ (the wasm-pack output).
    #[arg(long, default_value = "pkg")]
    pub pkg: PathBuf,
    /// Also write each session's received audio to DIR/<session>.wav when it ends.
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
    /// Accept only this token (else any token is accepted, except ones
    /// starting with "bad", which are always rejected).
    #[arg(long)]
    pub token: Option<String>,
    /// JSGF grammar file for the pocketsphinx engine (connections may pick
    /// the built-in fixture grammar with ?grammar=hello).
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
}
