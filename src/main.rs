//! The `umpire` binary: `umpire serve` (the default) runs the server.

use std::io::IsTerminal as _;

use clap::Parser as _;

/// jemalloc gives memory back to the system a few seconds after it is freed: games that leave
/// memory shrink the process (glibc's allocator kept nearly all of it; see the `lazy`
/// benchmark in the README). Without the `jemalloc` feature, the system's allocator (to
/// profile with heaptrack).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files and journals.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // The reason and its causes, in words: no backtrace for a port that is taken.
    if let Err(e) = umpire::run(umpire::Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
