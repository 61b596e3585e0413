//! A matchmaker of your own: Connect Four players are paired by rating, and the window of
//! ratings a player accepts widens the longer they wait, so that nobody waits for ever and
//! close ratings meet first. Clients ask with `{"type": "play", "kind": "connect4", "props":
//! {"rating": 1500}}` and are answered `created` or `joined` once paired; `cancel` stops
//! waiting.
//!
//! `cargo run --example matchmaker [ADDRESS [DATA]]` serves it on http://127.0.0.1:8093/ (log
//! in ./matchmaker-data). With `--redis`-backed nodes the same matchmaker runs on each, and the
//! lobby's version-checked appends make every pairing happen once.

use std::sync::Arc;

use umpire_engine::Millis;
use umpire_hub::{Matchmaker, Waiting};
use umpire_ws::WsConfig;

/// Pairs players whose ratings differ by at most a window that starts at `base` and grows by
/// `per_second` for each second the longer-waiting of the two has waited.
#[derive(Debug, Clone, Copy)]
struct RatingWindow {
    base: f64,
    per_second: f64,
}

/// A player's rating from their props (`{"rating": 1500}`); 1500 if they gave none.
fn rating(w: &Waiting) -> f64 {
    w.props
        .get("rating")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(1500.0)
}

impl RatingWindow {
    /// The widest difference `w` accepts at `now`.
    fn window(&self, w: &Waiting, now: Millis) -> f64 {
        let waited = now.saturating_sub(w.since) as f64 / 1000.0;
        self.base + self.per_second * waited
    }
}

impl Matchmaker for RatingWindow {
    fn matches(&self, waiting: &[Waiting], now: Millis) -> Vec<Vec<u64>> {
        // Longest waiting first; each takes the closest rating its window (or the other's)
        // allows.
        let mut free: Vec<&Waiting> = waiting.iter().collect();
        let mut pairs = Vec::new();
        while let Some(first) = free.first().copied() {
            free.remove(0);
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, o)| o.config == first.config)
                .map(|(i, o)| (i, (rating(o) - rating(first)).abs(), o))
                .filter(|(_, gap, o)| *gap <= self.window(first, now).max(self.window(o, now)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _, _)| i);
            if let Some(i) = best {
                let other = free.remove(i);
                pairs.push(vec![first.ticket, other.ticket]);
            }
        }
        pairs
    }

    fn tick(&self) -> std::time::Duration {
        std::time::Duration::from_millis(250)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8093".into());
    let data = args.next().unwrap_or_else(|| "matchmaker-data".into());
    let log = Arc::new(umpire_store::SledLog::open(data)?);
    let matchmaker = RatingWindow {
        base: 100.0,
        per_second: 100.0,
    };
    let hub = umpire_hub::Hub::builder(log)
        .register(umpire_games::Connect4)
        .matchmaker("connect4", Arc::new(matchmaker))
        .start()
        .await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "Connect Four with a rating matchmaker is served on http://{}/",
        listener.local_addr()?
    );
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), WsConfig::default()));
    tokio::signal::ctrl_c().await?;
    hub.shutdown().await?;
    server.await??;
    Ok(())
}
