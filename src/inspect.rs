//! `umpire inspect --data DIR`: look inside a data folder while no server holds it.

use std::path::Path;

use anyhow::Context as _;
use clap::Subcommand;
use umpire_engine::{Envelope, Game, Match};
use umpire_games::{Colony, Connect4, HighCard, Tally};
use umpire_store::{SledLog, StoreError, StreamId};

/// What to show.
#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// Every stream: id, kind, status, version, when it was created and had its last event.
    Games,
    /// One stream's events, one JSON object a line.
    Events {
        /// The game (or channel stream) id.
        game: StreamId,
    },
    /// Decode and replay every game; exit non-zero if any fails.
    Verify,
    /// How many streams, events and bytes the folder holds.
    Stats,
}

/// Records read per page.
const PAGE: usize = 1024;

/// Run `what` on the folder `data`.
///
/// # Errors
/// The folder cannot be opened (a running server holds it: said so), or `verify` found a game
/// that does not replay.
pub fn run(data: &Path, what: &Inspect) -> anyhow::Result<()> {
    if !data.join("conf").exists() {
        anyhow::bail!(
            "{} is not an umpire data folder (no sled database in it)",
            data.display()
        );
    }
    let log = match SledLog::open_retrying(data, std::time::Duration::ZERO) {
        Ok(log) => log,
        Err(StoreError::Locked(dir)) => anyhow::bail!(
            "the data folder {dir} is held by a running server: stop it first (inspect reads \
             a folder no server holds)"
        ),
        Err(e) => return Err(e).context(format!("opening {}", data.display())),
    };
    let mut out = std::io::stdout().lock();
    let result = match what {
        Inspect::Games => games(&log, &mut out),
        Inspect::Events { game } => events(&log, *game, &mut out),
        Inspect::Verify => verify(&log, &mut out),
        Inspect::Stats => stats(&log, &mut out),
    };
    // Output piped into `head` that stopped reading is not an error.
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Every record of `stream`, decoded as JSON, in order.
fn each_record(
    log: &SledLog,
    stream: StreamId,
    mut f: impl FnMut(u64, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut from = 1;
    loop {
        let page = log.read(stream, from, PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        from = last + 1;
        for (seq, record) in &page {
            f(*seq, record)?;
        }
    }
}

/// When the last event of `stream` happened (its `at`), if it has one.
fn last_at(log: &SledLog, stream: StreamId, version: u64) -> Option<u64> {
    let page = log.read(stream, version, 1).ok()?;
    let (_, record) = page.first()?;
    let env: serde_json::Value = rmp_serde::from_slice(record).ok()?;
    env["at"].as_u64()
}

/// Milliseconds since the epoch as UTC, `2026-12-01 05:47:59`.
fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn games(log: &SledLog, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:>8}  {:<9} {:<6} {:>7}  {:<19}  last event",
        "id", "kind", "status", "version", "created"
    )?;
    for info in log.streams()? {
        let last = last_at(log, info.id, info.version).map_or_else(|| "-".into(), time);
        let status = match info.meta.status {
            umpire_store::StreamStatus::Live => "live",
            umpire_store::StreamStatus::Over => "over",
        };
        writeln!(
            out,
            "{:>8}  {:<9} {:<6} {:>7}  {:<19}  {last}",
            info.id,
            info.meta.kind,
            status,
            info.version,
            time(info.meta.created)
        )?;
    }
    Ok(())
}

fn events(log: &SledLog, game: StreamId, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    if log.meta(game)?.is_none() {
        anyhow::bail!("no stream {game} in this folder (`umpire inspect games` lists them)");
    }
    each_record(log, game, |seq, record| {
        let env: serde_json::Value = rmp_serde::from_slice(record)
            .with_context(|| format!("stream {game}, seq {seq}: the record does not decode"))?;
        writeln!(out, "{env}")?;
        Ok(())
    })
}

/// Replay `stream` as a `G` game from its first record; its version.
fn replay<G: Game>(log: &SledLog, game: &G, stream: StreamId) -> anyhow::Result<u64> {
    let mut m: Option<Match<G>> = None;
    each_record(log, stream, |seq, record| {
        let env: Envelope<G> = rmp_serde::from_slice(record)
            .with_context(|| format!("seq {seq} does not decode as a {} event", G::KIND))?;
        match &mut m {
            None => m = Some(Match::start(game, &env).with_context(|| format!("seq {seq}"))?),
            Some(m) => m
                .replay_one(game, &env)
                .with_context(|| format!("seq {seq}"))?,
        }
        Ok(())
    })?;
    Ok(m.map_or(0, |m| m.version().0))
}

fn verify(log: &SledLog, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let (mut good, mut bad) = (0, 0);
    for info in log.streams()? {
        let replayed = match info.meta.kind.as_str() {
            "connect4" => replay(log, &Connect4, info.id),
            "tally" => replay(log, &Tally, info.id),
            "colony" => replay(log, &Colony, info.id),
            "highcard" => replay(log, &HighCard, info.id),
            // A channel has no rules: each notice must decode.
            "channel" => each_record(log, info.id, |seq, record| {
                rmp_serde::from_slice::<umpire_engine::NoticeEnvelope>(record)
                    .map(|_| ())
                    .with_context(|| format!("seq {seq} does not decode"))
            })
            .map(|()| info.version),
            // A lobby (quick play, open games): each record must decode.
            "lobby" => each_record(log, info.id, |seq, record| {
                umpire_hub::lobby_record_decodes(record)
                    .map_err(|e| anyhow::anyhow!("seq {seq} does not decode: {e}"))
            })
            .map(|()| info.version),
            kind => Err(anyhow::anyhow!("no kind {kind:?} in this build")),
        };
        match replayed {
            Ok(version)
                if version == info.version
                    || matches!(info.meta.kind.as_str(), "channel" | "lobby") =>
            {
                good += 1;
            }
            Ok(version) => {
                bad += 1;
                writeln!(
                    out,
                    "{} {}: replays to version {version}, the log says {}",
                    info.id, info.meta.kind, info.version
                )?;
            }
            Err(e) => {
                bad += 1;
                writeln!(out, "{} {}: {e:#}", info.id, info.meta.kind)?;
            }
        }
    }
    writeln!(out, "{good} streams replay, {bad} do not")?;
    out.flush()?;
    if bad > 0 {
        anyhow::bail!("{bad} streams do not replay");
    }
    Ok(())
}

fn stats(log: &SledLog, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let mut kinds: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let (mut events, mut bytes) = (0u64, 0u64);
    for info in log.streams()? {
        let entry = kinds.entry(info.meta.kind.clone()).or_default();
        entry.0 += 1;
        each_record(log, info.id, |_, record| {
            entry.1 += 1;
            events += 1;
            bytes += record.len() as u64;
            Ok(())
        })?;
    }
    let streams: u64 = kinds.values().map(|k| k.0).sum();
    writeln!(
        out,
        "{streams} streams, {events} events, {bytes} bytes of records"
    )?;
    for (kind, (n, e)) in kinds {
        writeln!(out, "  {kind}: {n} streams, {e} events")?;
    }
    writeln!(out, "{} resumable sessions", log.sessions()?.len())?;
    Ok(())
}
