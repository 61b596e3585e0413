//! The `umpire` command line.

use clap::Parser;

/// umpire: an authoritative, event-sourced game server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "umpire {}: the server arrives with the WebSocket transport (`umpire --help`).",
        env!("CARGO_PKG_VERSION")
    );
}
