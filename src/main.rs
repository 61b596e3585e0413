//! The `umpire` binary: `umpire serve` (the default) runs the server.

use std::io::IsTerminal as _;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files and journals.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    umpire::run(umpire::Cli::parse())
}
