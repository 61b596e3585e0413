//! A server for a game of your own, with pages of its own: Nim, defined right here. A pile of
//! 21 stones; players take 1, 2 or 3 in turn; whoever takes the last one wins.
//! `cargo run --example nim [ADDRESS [DATA]]` serves it on http://127.0.0.1:8090/ (log in ./nim-data).

use serde::{Deserialize, Serialize};
use umpire_engine::{Actor, Ctx, Game, Outcome, Seat};
use umpire_ws::WsConfig;

#[derive(Debug, Default, Clone, Copy)]
struct Nim;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Take {
    Take(u32), // on the wire: {"take": 2}
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Taken {
    seat: Seat,
    stones: u32,
    left: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
enum Illegal {
    #[error("take 1, 2 or 3 stones, and no more than are left")]
    Amount,
    #[error("it is the other player's turn")]
    NotYourTurn,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Pile(u32, Option<Seat>); // stones left, who took last

impl Game for Nim {
    const KIND: &'static str = "nim";
    type Config = ();
    type State = Pile;
    type Command = Take;
    type Event = Taken;
    type Rejection = Illegal;

    fn seats(&self, (): &()) -> u16 {
        2
    }
    fn setup(&self, (): &()) -> Pile {
        Pile(21, None)
    }
    fn decide(
        &self,
        pile: &Pile,
        by: Actor,
        take: &Take,
        _: &mut Ctx<'_, Take>,
    ) -> Result<Vec<Taken>, Illegal> {
        let seat = by.seat().ok_or(Illegal::NotYourTurn)?;
        if pile.1.map_or(seat != Seat(0), |last| last == seat) {
            return Err(Illegal::NotYourTurn);
        }
        let Take::Take(stones) = *take;
        if !(1..=3).contains(&stones) || stones > pile.0 {
            return Err(Illegal::Amount);
        }
        Ok(vec![Taken {
            seat,
            stones,
            left: pile.0 - stones,
        }])
    }
    fn apply(&self, pile: &mut Pile, t: &Taken) {
        *pile = Pile(t.left, Some(t.seat));
    }
    fn outcome(&self, pile: &Pile) -> Option<Outcome> {
        (pile.0 == 0).then(|| Outcome::Win(pile.1.unwrap_or(Seat(0))))
    }
}

const PAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nim-pages");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let data = args.next().unwrap_or_else(|| "nim-data".into());
    let log = std::sync::Arc::new(umpire_store::SledLog::open(data)?);
    let hub = umpire_hub::Hub::builder(log).register(Nim).start().await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let config = WsConfig {
        web_dir: Some(PAGES.into()), // its own page; umpire.js from the built-in client
        ..WsConfig::default()
    };
    println!("Nim is served on http://{}/", listener.local_addr()?);
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), config));
    tokio::signal::ctrl_c().await?;
    hub.shutdown().await?; // answers what is in flight, closes sockets with 1001, flushes
    server.await??;
    Ok(())
}
