//! `devserver` binary: see `devserver --help` and devserver/README.md.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use devserver::cli::{Cli, Command};
use devserver::{EngineKind, ServerConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Relay(args) => resilient_relay::cli::serve(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devserver: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: devserver::cli::ServeArgs) -> Result<(), String> {
    let engine = match &args.engine {
        Some(e) => EngineKind::parse(e)?,
        None => EngineKind::default_kind(),
    };
    let grammar = match &args.grammar {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read grammar {}: {e}", path.display()))?,
        ),
        None => None,
    };
    if let Some(dir) = &args.record_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create record dir {}: {e}", dir.display()))?;
    }
    let cfg = ServerConfig {
        host: args.host,
        port: args.port,
        engine,
        www: args.www,
        pkg: args.pkg,
        record_dir: args.record_dir,
        token: args.token,
        grammar,
        ..Default::default()
    };
    let server = devserver::Server::bind(cfg)
        .await
        .map_err(|e| e.to_string())?;
    announce(server.local_addr());
    eprintln!("devserver: engine {}", engine.name());
    server.run().await;
    Ok(())
}

/// The one stdout line scripts and tests parse.
fn announce(addr: std::net::SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "devserver listening on http://{addr}");
    let _ = out.flush();
}
