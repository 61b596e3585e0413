//! The sending side of a session: what goes to the client, in what order.
//!
//! For every game the session follows it keeps the next seq to send. An event below it is a
//! repeat and is dropped; an event above it means events were missed, and the gap is read
//! from the log first. A game marked lagging (its events overflowed the outbox) is read from
//! the log up to its durable head. So each game's events reach the client once, in order,
//! from seq `from` on; and the `ok` for a command comes after the events it produced.
//!
//! Reading from the log is paged and lazy: at most a page of frames waits in memory.

use std::sync::Arc;
use std::time::Duration;

use umpire_engine::protocol::{CloseCode, ErrorCode, GameId, ServerMsg};
use umpire_engine::Seq;

use crate::frames::{Frame, Published};
use crate::handle::RoomMsg;
use crate::outbox::Item;
use crate::session::{CatchUp, Outgoing, Session, Stage};

/// Records read from the log per page while catching up.
const PAGE: usize = 64;

/// How long a session that is shutting down waits for the answers it is owed.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// How long after a failed catch-up read (the log failing) the session reads again.
const RETRY_READ: Duration = Duration::from_millis(250);

/// What one step of catching up did.
enum Step {
    /// Read a page, or finished a job.
    Worked,
    /// Nothing to catch up.
    Idle,
    /// The log cannot be read now; nothing behind the job may go out before it.
    Blocked,
    /// A page must be read from the log first (`Session::next` reads it).
    Read,
}

impl Session {
    /// Whether frames are waiting for a page of the log to be read (a client catching up):
    /// a transport about to flush what it has may call [`Session::read_ahead`] first, so that
    /// an answer and the events it leads to go out together.
    pub fn reading(&self) -> bool {
        self.to_read.is_some() && self.page.is_none()
    }

    /// Read the page of the log that frames are waiting for, if any; then
    /// [`Session::try_next`] gives them. Waits for the log and nothing else. Cancel-safe: a
    /// read cancelled is asked for again.
    pub async fn read_ahead(&mut self) {
        if let (Some((game, from, want)), None) = (self.to_read, &self.page) {
            let log = std::sync::Arc::clone(&self.rt().log);
            let page = log.read(game.0, from.0, want).await.map(|page| {
                page.into_iter()
                    .map(|(seq, record)| (Seq(seq), record))
                    .collect()
            });
            self.page = Some(((game, from), page));
        }
    }

    /// The next thing to send. Cancel-safe: everything it has taken is kept in the session.
    pub async fn next(&mut self) -> Outgoing {
        loop {
            if let Some(out) = self.try_next() {
                return out;
            }
            if let Some(front) = self.rematching.front_mut() {
                // Kept in the session while it waits: a cancelled `next` resumes it.
                let sent = (&mut front.pending).await;
                if let Some(done) = self.rematching.pop_front() {
                    self.rematch_sent(done.old, done.creates, done.r, sent);
                }
                continue;
            }
            if let Some(pending) = self.starting() {
                // Kept in the session while it waits: a cancelled `next` resumes it.
                let sent = pending.await;
                self.started(sent);
                continue;
            }
            if self.reading() {
                self.read_ahead().await;
                continue;
            }
            match self.stage {
                Stage::Closed => std::future::pending::<()>().await,
                Stage::Stopping(until) => {
                    tokio::select! {
                        () = self.outbox.ready() => {}
                        () = tokio::time::sleep_until(until) => {
                            // A game that has not answered by now will not: close anyway.
                            self.in_flight = 0;
                        }
                    }
                }
                Stage::Open => match self.retry_at {
                    Some(at) => {
                        tokio::select! {
                            () = self.outbox.ready() => {}
                            () = tokio::time::sleep_until(at) => {}
                        }
                    }
                    None => self.outbox.ready().await,
                },
            }
        }
    }

    /// The next thing to send if one is ready now, without waiting: for a transport that
    /// writes everything ready before it flushes.
    pub fn try_next(&mut self) -> Option<Outgoing> {
        self.note();
        loop {
            if let Some(out) = self.ready.pop_front() {
                return Some(out);
            }
            match self.catch_up() {
                Step::Worked => continue,
                Step::Blocked | Step::Read => return None,
                Step::Idle => {}
            }
            if let Some(item) = self.items.pop_front() {
                self.process(item);
                continue;
            }
            let taken = self.outbox.take(&mut self.items, &mut self.lagged);
            if self.stage == Stage::Open && taken {
                let reason = "this session was resumed on another connection";
                self.close(CloseCode::Policy, reason);
                continue;
            }
            let lagged = std::mem::take(&mut self.lagged);
            if !lagged.is_empty() && self.behind_since.is_none() {
                self.behind_since = Some(tokio::time::Instant::now());
            }
            for game in &lagged {
                if let Some(link) = self.games.get(game) {
                    let upto = link.handle.head();
                    self.work.push_back(CatchUp {
                        game: *game,
                        upto,
                        then: None,
                    });
                }
            }
            self.lagged = lagged;
            self.lagged.clear();
            if !self.items.is_empty() || !self.work.is_empty() {
                continue;
            }
            if self.stage == Stage::Open && self.hub.sessions.stopping() {
                self.stage = Stage::Stopping(tokio::time::Instant::now() + ANSWER_GRACE);
            }
            if matches!(self.stage, Stage::Stopping(_)) && self.in_flight == 0 {
                let reason = "the server is shutting down";
                self.say(ServerMsg::Closing {
                    reason: reason.into(),
                });
                self.close(CloseCode::GoingAway, reason);
                continue;
            }
            return None;
        }
    }

    fn process(&mut self, item: Item) {
        match item {
            Item::Event(event) => self.deliver(event),
            Item::Answer(answer) => {
                let (r, answer) = *answer;
                self.in_flight = self.in_flight.saturating_sub(1);
                self.answer(r, answer);
            }
            Item::Notice(notice) => {
                let (ServerMsg::Audience { game, .. } | ServerMsg::Rematch { game, .. }) = &*notice
                else {
                    return;
                };
                if self.games.get(game).is_some_and(|l| l.next.is_some()) {
                    self.say((*notice).clone());
                }
            }
        }
    }

    /// A live event: send it, after the gap before it if there is one; drop it if it was
    /// already sent or its game is not followed.
    fn deliver(&mut self, event: Arc<Published>) {
        let Some(link) = self.games.get_mut(&event.game) else {
            return;
        };
        let viewer = link.viewer();
        let Some(next) = link.next.as_mut() else {
            return;
        };
        let event = event.for_viewer(viewer);
        if event.seq < *next {
            return;
        }
        // Items are only looked at once the catch-up work is done, so nothing is pending
        // before this event but the gap, if any.
        if event.seq == *next {
            *next += 1;
            self.ready.push_back(Outgoing::Frame(Frame::Event(event)));
        } else {
            let (game, upto) = (event.game, event.seq - 1);
            let then = Some(Outgoing::Frame(Frame::Event(event)));
            self.work.push_back(CatchUp { game, upto, then });
        }
    }

    /// Tell the finished game `old` that its rematch exists (or could not be created).
    pub(super) fn rematch_ready(&mut self, old: GameId, next: Option<(GameId, String, String)>) {
        if let Some(link) = self.games.get(&old) {
            let _ = link.handle.send(RoomMsg::RematchReady { next });
        }
    }

    /// The link of `game`, one request to enter it answered.
    pub(super) fn entered(&mut self, game: GameId) -> Option<&mut crate::session::Link> {
        let link = self.games.get_mut(&game)?;
        link.entering = link.entering.saturating_sub(1);
        Some(link)
    }

    /// Start sending `game`'s events from `from`: the log up to `head`, live ones after.
    /// A game already followed keeps its place.
    pub(super) fn follow(&mut self, game: GameId, from: Seq, head: Seq) {
        let Some(link) = self.games.get_mut(&game) else {
            return;
        };
        if link.next.is_none() {
            link.next = Some(from.max(Seq(1)));
            self.work.push_back(CatchUp {
                game,
                upto: head,
                then: None,
            });
        }
    }

    /// Send what waited for a catch-up. An event moves its game's place past it, or is
    /// dropped if the game is no longer followed.
    fn release(&mut self, then: Outgoing) {
        if let Outgoing::Frame(Frame::Event(event)) = &then {
            match self
                .games
                .get_mut(&event.game)
                .and_then(|l| l.next.as_mut())
            {
                Some(next) if *next <= event.seq => *next = event.seq + 1,
                _ => return,
            }
        }
        self.ready.push_back(then);
    }

    /// One step of the first catch-up job: a page from the log, or the job's end.
    fn catch_up(&mut self) -> Step {
        let Some(job) = self.work.front() else {
            self.behind_since = None;
            return Step::Idle;
        };
        let max_behind = self.rt().config.max_behind;
        if self
            .behind_since
            .is_some_and(|since| since.elapsed() > max_behind)
        {
            tracing::info!(session = %self.id, "closed: too far behind for too long");
            let reason = format!(
                "too far behind for over {} s: resume to catch up",
                max_behind.as_secs()
            );
            self.close(CloseCode::Policy, &reason);
            return Step::Worked;
        }
        if let Some(at) = self.retry_at {
            if tokio::time::Instant::now() < at {
                return Step::Blocked;
            }
            self.retry_at = None;
        }
        let (game, upto) = (job.game, job.upto);
        let next = self.games.get(&game).and_then(|l| l.next);
        let next = match next {
            Some(next) if next <= upto => next,
            _ => {
                // Caught up (or the game was left meanwhile): what waited on it goes out.
                if let Some(then) = self.work.pop_front().and_then(|job| job.then) {
                    self.release(then);
                }
                return Step::Worked;
            }
        };
        let want = usize::try_from(upto - next + 1).map_or(PAGE, |n| n.min(PAGE));
        let page = match self.page.take() {
            Some((at, page)) if at == (game, next) => page,
            _ => {
                self.to_read = Some((game, next, want));
                return Step::Read;
            }
        };
        self.to_read = None;
        match page {
            Ok(page) if !page.is_empty() => {
                let mut last = next;
                let Some(link) = self.games.get(&game) else {
                    return Step::Worked;
                };
                let (handle, viewer) = (link.handle.clone(), link.viewer());
                for (seq, record) in page {
                    let event = handle.published(seq, record).for_viewer(viewer);
                    self.ready.push_back(Outgoing::Frame(Frame::Event(event)));
                    last = seq;
                }
                if let Some(link) = self.games.get_mut(&game) {
                    link.next = Some(last + 1);
                }
            }
            Ok(_) => {
                // Everything up to a game's head is durable, so this does not happen; if it
                // did, waiting would not help.
                tracing::error!(%game, %next, %upto, "the log ends before the game's head");
                if let Some(link) = self.games.get_mut(&game) {
                    link.next = Some(upto + 1);
                }
            }
            Err(e) if e.is_io() => {
                // The log is failing and being reopened: read again shortly. Until then this
                // game's later events, and everything after them, wait.
                tracing::warn!(%game, error = %e, "catch-up read failed; trying again");
                self.retry_at = Some(tokio::time::Instant::now() + RETRY_READ);
                return Step::Blocked;
            }
            Err(e) => {
                tracing::error!(%game, error = %e, "catch-up read failed");
                self.refuse(
                    ErrorCode::Internal,
                    "the game's history could not be read".into(),
                    None,
                );
                self.close(CloseCode::Internal, "storage failure");
            }
        }
        Step::Worked
    }
}
