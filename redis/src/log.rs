//! [`RedisLog`]: the log in Redis, shared by every node started with the same URL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use umpire_store::{
    KeyEntry, Log, LogRead, Refused, Result, Role, Seq, SessionEntry, SideWrite, StoreError,
    StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};

use crate::scripts;

/// How a node talks to Redis.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Prefix of every key (default `u`): several umpire deployments may share one Redis
    /// under different prefixes.
    pub prefix: String,
    /// This node's name, written into the leases it holds. Unique per running node; the
    /// default is random.
    pub node: String,
    /// How long a request may wait for Redis's answer before it counts as failed (default
    /// 5 s). A commit that timed out may still have been applied; the game reloads from the
    /// log and finds out.
    pub response_timeout: Duration,
    /// Serve even if Redis's settings could lose acknowledged writes (`appendonly no`,
    /// `appendfsync` other than `always`, an eviction policy that drops keys). For throwaway
    /// setups only.
    pub allow_unsafe: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "u".into(),
            node: format!("node-{}", random_hex(6)),
            response_timeout: Duration::from_secs(5),
            allow_unsafe: false,
        }
    }
}

/// Hex of `n` random bytes.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // Without the OS's randomness the name is still unique enough per process and time.
    if getrandom::fill(&mut bytes).is_err() {
        let seed = std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a node would not start on a Redis.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Redis could not be reached.
    #[error("cannot reach Redis at {url}: {source}")]
    Connect {
        /// The URL given.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// Redis's settings would lose acknowledged writes.
    #[error(
        "Redis at {url} could lose acknowledged moves: {problems}. Start it with \
         `--appendonly yes --appendfsync always --maxmemory-policy noeviction` (or set them \
         with CONFIG SET), or pass --unsafe-redis for a throwaway setup"
    )]
    Unsafe {
        /// The URL given.
        url: String,
        /// What is wrong, in plain words.
        problems: String,
    },
}

/// The log in Redis: every stream a Redis stream, every change one Lua script (atomic, and
/// with `appendfsync always` in the append-only file before Redis answers). Writes check the
/// stream's expected version and that no other node holds its lease, so a node that stalled
/// past its lease is refused ([`Refused::NotOwner`]) and the game is never forked.
///
/// Each node checks at start that the store has the epoch it had ([`LogRead`] calls do not),
/// and every commit returns the store's commit clock, which only grows: a Redis that comes
/// back wiped (a new epoch) or from an older file (a smaller clock) is found at the next
/// commit, and the log fails with [`StoreError::Lost`] instead of serving a shorter log.
#[derive(Clone)]
pub struct RedisLog {
    conn: ConnectionManager,
    opts: Arc<RedisOptions>,
    epoch: Arc<str>,
    clock: Arc<AtomicU64>,
    lost: Arc<std::sync::Mutex<Option<String>>>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    commit: Script,
    create: Script,
    one: Script,
    remove: Script,
    due: Script,
    acquire: Script,
    renew: Script,
    release: Script,
    holder: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{}{body}", scripts::PRELUDE));
        Scripts {
            commit: s(scripts::COMMIT),
            create: s(scripts::CREATE),
            one: s(scripts::ONE),
            remove: s(scripts::REMOVE),
            due: s(scripts::DUE),
            acquire: s(scripts::ACQUIRE),
            renew: s(scripts::RENEW),
            release: s(scripts::RELEASE),
            holder: s(scripts::HOLDER),
        }
    }
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog")
            .field("prefix", &self.opts.prefix)
            .field("node", &self.opts.node)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}

impl RedisLog {
    /// Connect to the Redis at `url`, check its settings (see [`RedisOptions::allow_unsafe`])
    /// and its epoch (set on the first start, so that a wiped Redis is told apart).
    ///
    /// # Errors
    /// Redis cannot be reached, or its settings would lose acknowledged writes.
    pub async fn open(url: &str, opts: RedisOptions) -> Result<Self, OpenError> {
        let connect = |source| OpenError::Connect {
            url: url.to_owned(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(opts.response_timeout))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(connect)?;
        let problems = crate::settings::problems(&mut conn)
            .await
            .map_err(connect)?;
        if !problems.is_empty() {
            if opts.allow_unsafe {
                tracing::warn!(
                    "Redis at {url} could lose acknowledged moves ({}): serving anyway \
                     (--unsafe-redis)",
                    problems.join("; ")
                );
            } else {
                return Err(OpenError::Unsafe {
                    url: url.to_owned(),
                    problems: problems.join("; "),
                });
            }
        }
        let epoch_key = format!("{}:epoch", opts.prefix);
        let fresh = random_hex(16);
        let _: Value = redis::cmd("SET")
            .arg(&epoch_key)
            .arg(&fresh)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(connect)?;
        let epoch: String = redis::cmd("GET")
            .arg(&epoch_key)
            .query_async(&mut conn)
            .await
            .map_err(connect)?;
        let clock: Option<u64> = redis::cmd("GET")
            .arg(format!("{}:clock", opts.prefix))
            .query_async(&mut conn)
            .await
            .map_err(connect)?;
        Ok(RedisLog {
            conn,
            opts: Arc::new(opts),
            epoch: epoch.into(),
            clock: Arc::new(AtomicU64::new(clock.unwrap_or(0))),
            lost: Arc::default(),
            scripts: Arc::new(Scripts::new()),
        })
    }

    /// This node's name, as its leases hold it.
    pub fn node(&self) -> &str {
        &self.opts.node
    }

    /// The options it runs with.
    pub fn options(&self) -> &RedisOptions {
        &self.opts
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.opts.prefix)
    }

    fn game(&self, stream: StreamId, rest: &str) -> String {
        format!("{}:{{g{stream}}}:{rest}", self.opts.prefix)
    }

    /// The loss found earlier, if any: the log stays failed from then on.
    fn check_lost(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(StoreError::Lost(why.clone())),
            None => Ok(()),
        }
    }

    fn mark_lost(&self, why: String) -> StoreError {
        tracing::error!("the Redis log lost acknowledged data: {why}; this node stops writing");
        *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        StoreError::Lost(why)
    }

    /// Turn a script's error into the store's: a lost store, a missing stream, or Redis
    /// being unreachable.
    fn script_error(&self, e: redis::RedisError) -> StoreError {
        match e.code() {
            Some("UMPIRE_LOST") => self.mark_lost(e.detail().unwrap_or("").to_owned()),
            Some("UMPIRE_NOSTREAM") => match e.detail().and_then(|d| d.trim().parse().ok()) {
                Some(id) => StoreError::NoStream(id),
                None => unavailable(e),
            },
            _ => unavailable(e),
        }
    }

    /// A commit sent when this node had seen the store's commit clock at `before` got `now`:
    /// it must be past `before` (answers of commits in flight together may come in any
    /// order, so only what was seen before sending counts).
    fn observe_clock(&self, before: u64, now: u64) -> Result<()> {
        self.clock.fetch_max(now, Ordering::AcqRel);
        if now <= before {
            return Err(self.mark_lost(format!(
                "its commit clock went back from {before} to {now}: it was restored from an \
                 older file"
            )));
        }
        Ok(())
    }

    /// Run one of the lease scripts (ARGV: prefix, node, ms, streams).
    async fn lease<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        ttl: Duration,
        streams: &[StreamId],
    ) -> Result<T> {
        script
            .arg(&self.opts.prefix)
            .arg(&self.opts.node)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(streams)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    /// Take `stream`'s lease for `ttl`, or renew it if this node holds it. `Err(holder)` if
    /// another node holds it.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub async fn acquire(
        &self,
        stream: StreamId,
        ttl: Duration,
    ) -> Result<std::result::Result<(), String>> {
        // A node that found the store lost data takes no game (and renews none below).
        self.check_lost()?;
        let (got, holder): (u8, Option<String>) =
            self.lease(&self.scripts.acquire, ttl, &[stream]).await?;
        Ok(match got {
            1 => Ok(()),
            _ => Err(holder.unwrap_or_default()),
        })
    }

    /// Renew the leases of `streams` this node holds, for `ttl`; says for each whether it
    /// still held it.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub async fn renew(&self, streams: &[StreamId], ttl: Duration) -> Result<Vec<bool>> {
        self.check_lost()?;
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let held: Vec<u8> = self.lease(&self.scripts.renew, ttl, streams).await?;
        Ok(held.into_iter().map(|h| h == 1).collect())
    }

    /// Give up the leases of `streams` this node holds.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub async fn release(&self, streams: &[StreamId]) -> Result<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let _: Value = self
            .lease(&self.scripts.release, Duration::ZERO, streams)
            .await?;
        Ok(())
    }

    /// A connection to the same Redis (shared, multiplexed).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn()
    }

    /// The node holding `stream`'s lease, if any does.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub async fn holder(&self, stream: StreamId) -> Result<Option<String>> {
        self.lease(&self.scripts.holder, Duration::ZERO, &[stream])
            .await
    }

    /// Run `cmd`, an `EVALSHA` of `script`; load the script first if Redis does not know it
    /// (restarted, or flushed its scripts) and run it again.
    async fn eval<T: redis::FromRedisValue>(&self, script: &Script, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn();
        match cmd.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .map_err(|e| self.script_error(e))?;
                cmd.query_async(&mut conn)
                    .await
                    .map_err(|e| self.script_error(e))
            }
            answer => answer.map_err(|e| self.script_error(e)),
        }
    }

    /// An `EVALSHA` of `script` with the key prefix as its first argument; the caller adds
    /// the rest and runs it with [`RedisLog::eval`].
    fn evalsha(&self, script: &Script) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(0).arg(&self.opts.prefix);
        cmd
    }

    /// Run [`scripts::ONE`] with the arguments `args` adds.
    async fn one(&self, args: impl FnOnce(&mut redis::Cmd)) -> Result<Value> {
        self.check_lost()?;
        let mut cmd = self.evalsha(&self.scripts.one);
        args(&mut cmd);
        self.eval(&self.scripts.one, &cmd).await
    }
}

fn role_code(role: Role) -> String {
    match role {
        Role::Join => "j".into(),
        Role::Watch => "w".into(),
        Role::Seat(n) => format!("s{n}"),
    }
}

fn parse_entry(value: &[u8]) -> Result<KeyEntry> {
    let text = std::str::from_utf8(value).map_err(|e| corrupt("key entry", e.to_string()))?;
    let bad = || corrupt("key entry", format!("{text:?}"));
    let (stream, role) = text.split_once(':').ok_or_else(bad)?;
    let stream = stream.parse().map_err(|_| bad())?;
    let role = match role {
        "j" => Role::Join,
        "w" => Role::Watch,
        seat => Role::Seat(
            seat.strip_prefix('s')
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?,
        ),
    };
    Ok(KeyEntry { stream, role })
}

fn status_code(status: StreamStatus) -> &'static str {
    match status {
        StreamStatus::Live => "live",
        StreamStatus::Over => "over",
    }
}

/// A side write's arguments, written straight into the command (each value copied once).
fn side_args(side: SideWrite, out: &mut redis::Cmd) {
    match side {
        SideWrite::Snapshot {
            stream,
            version,
            state,
        } => {
            out.arg("snap");
            out.arg(stream);
            out.arg(version);
            out.arg(state.as_slice());
        }
        SideWrite::Wake { stream, wake } => {
            out.arg("wake");
            out.arg(stream);
            match wake {
                Some(w) => {
                    out.arg(w.due);
                    out.arg(w.timers);
                }
                None => {
                    out.arg("");
                    out.arg("");
                }
            }
        }
        SideWrite::SaveSession { token, session } => {
            out.arg("save");
            out.arg(token);
            out.arg(session.sid);
            out.arg(session.expires);
            out.arg(session.record.as_slice());
        }
        SideWrite::TakeSession { token } => {
            out.arg("take");
            out.arg(token);
        }
    }
}

/// A write's arguments (see [`scripts::COMMIT`]), written straight into the command.
fn write_args(w: Write, out: &mut redis::Cmd) {
    out.arg(w.stream);
    out.arg(w.expected);
    out.arg(w.expected + w.records.len() as u64);
    let mut flags = String::new();
    if w.status.is_some() {
        flags.push('s');
    }
    if w.forget_before.is_some() {
        flags.push('f');
    }
    match w.wake {
        WakeChange::Keep => {}
        WakeChange::Set(_) => flags.push('w'),
        WakeChange::Clear => flags.push('c'),
    }
    if !w.keys.is_empty() {
        flags.push('k');
    }
    out.arg(flags);
    out.arg(w.records.len());
    for r in &w.records {
        out.arg(&r[..]);
    }
    if let Some(status) = w.status {
        out.arg(status_code(status));
        out.arg(w.at);
    }
    if let Some(before) = w.forget_before {
        out.arg(before);
    }
    if let WakeChange::Set(wake) = w.wake {
        out.arg(wake.due);
        out.arg(wake.timers);
    }
    if !w.keys.is_empty() {
        out.arg(w.keys.len());
        for (key, entry) in w.keys {
            out.arg(key);
            out.arg(entry.stream);
            out.arg(role_code(entry.role));
        }
    }
}

/// A score or number as Redis sends it back (integer, or text of one).
fn to_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(b) => {
            let text = std::str::from_utf8(b).ok()?;
            text.parse::<u64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().map(|f| f as u64))
        }
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(f) => Some(*f as u64),
        _ => None,
    }
}

fn bound(t: u64) -> String {
    // Scores are doubles: past 2^53 ms nothing is stored anyway.
    if t >= 1 << 53 {
        "+inf".into()
    } else {
        t.to_string()
    }
}

#[async_trait]
impl Log for RedisLog {
    async fn create_stream(&self, meta: StreamMeta) -> Result<StreamId> {
        self.check_lost()?;
        let (ij, iw) = meta.invite.unwrap_or_default();
        let finished = meta.finished.unwrap_or(meta.created);
        let id: u64 = self
            .scripts
            .create
            .arg(&self.opts.prefix)
            .arg(&*self.epoch)
            .arg(meta.kind)
            .arg(meta.created)
            .arg(meta.creator)
            .arg(ij)
            .arg(iw)
            .arg(status_code(meta.status))
            .arg(finished)
            .arg(&self.opts.node)
            .arg("")
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.script_error(e))?;
        Ok(id)
    }

    async fn commit(&self, writes: Vec<Write>, durable: bool) -> Result<Vec<Result<Seq, Refused>>> {
        self.commit_with(Vec::new(), writes, durable).await
    }

    async fn commit_with(
        &self,
        side: Vec<SideWrite>,
        writes: Vec<Write>,
        _durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>> {
        self.check_lost()?;
        if side.is_empty() && writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.evalsha(&self.scripts.commit);
        cmd.arg(&self.opts.node)
            .arg(&*self.epoch)
            .arg(side.len())
            .arg(writes.len());
        for s in side {
            side_args(s, &mut cmd);
        }
        let mut out: Vec<Result<Seq, Refused>> = writes
            .iter()
            .map(|w| Ok(w.expected + w.records.len() as u64))
            .collect();
        let streams: Vec<(StreamId, Seq)> = writes.iter().map(|w| (w.stream, w.expected)).collect();
        for w in writes {
            write_args(w, &mut cmd);
        }
        let before = self.clock.load(Ordering::Acquire);
        let answer: Vec<Value> = self.eval(&self.scripts.commit, &cmd).await?;
        let bad = || corrupt("commit answer", format!("{answer:?}"));
        let (clock, refused) = answer.split_first().ok_or_else(bad)?;
        self.observe_clock(before, to_u64(clock).ok_or_else(bad)?)?;
        if refused.len() % 3 != 0 {
            return Err(bad());
        }
        for r in refused.chunks(3) {
            let index = to_u64(&r[0])
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| i.checked_sub(1))
                .filter(|&i| i < streams.len())
                .ok_or_else(bad)?;
            let version = to_u64(&r[2]).ok_or_else(bad)?;
            let (stream, expected) = streams[index];
            out[index] = match to_u64(&r[1]) {
                Some(1) => Err(Refused::Stale {
                    expected,
                    actual: version,
                }),
                Some(2) => Err(Refused::NotOwner { stream }),
                _ => return Err(bad()),
            };
        }
        Ok(out)
    }

    async fn set_status(&self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
        self.one(|c| {
            c.arg("status").arg(stream).arg(status_code(status)).arg(at);
        })
        .await
        .map(drop)
    }

    async fn remove_streams(&self, streams: Vec<StreamId>) -> Result<()> {
        self.check_lost()?;
        if streams.is_empty() {
            return Ok(());
        }
        let _: Value = self
            .scripts
            .remove
            .arg(&self.opts.prefix)
            .arg(streams)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.script_error(e))?;
        Ok(())
    }

    async fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        self.one(|c| side_args(SideWrite::Wake { stream, wake }, c))
            .await
            .map(drop)
    }

    async fn put_key(&self, key: String, entry: KeyEntry) -> Result<()> {
        self.one(|c| {
            c.arg("key")
                .arg(key)
                .arg(entry.stream)
                .arg(role_code(entry.role));
        })
        .await
        .map(drop)
    }

    async fn claim_key(&self, key: String, entry: KeyEntry) -> Result<KeyEntry> {
        let held = self
            .one(|c| {
                c.arg("claim")
                    .arg(key)
                    .arg(entry.stream)
                    .arg(role_code(entry.role));
            })
            .await?;
        match held {
            Value::BulkString(bytes) => parse_entry(&bytes),
            other => Err(corrupt("key entry", format!("{other:?}"))),
        }
    }

    async fn save_snapshot(&self, stream: StreamId, version: Seq, state: Vec<u8>) -> Result<()> {
        let snapshot = SideWrite::Snapshot {
            stream,
            version,
            state,
        };
        self.one(|c| side_args(snapshot, c)).await.map(drop)
    }

    async fn save_session(&self, token: String, session: SessionEntry) -> Result<()> {
        self.one(|c| side_args(SideWrite::SaveSession { token, session }, c))
            .await
            .map(drop)
    }

    async fn take_session(&self, token: String) -> Result<Option<SessionEntry>> {
        let value = self
            .one(|c| {
                c.arg("take").arg(token);
            })
            .await?;
        session_from(value)
    }

    async fn sync(&self) -> Result<()> {
        // With `appendfsync always` Redis answered each write after its fsync.
        self.check_lost()
    }

    async fn recover(&self) -> Result<()> {
        self.check_lost()?;
        self.probe().await
    }

    async fn probe(&self) -> Result<()> {
        self.check_lost()?;
        let epoch: Option<String> = redis::cmd("GET")
            .arg(self.key("epoch"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if epoch.as_deref() != Some(&*self.epoch) {
            return Err(self.mark_lost(
                "the epoch key is gone or changed: this Redis was wiped or replaced".into(),
            ));
        }
        let clock: Option<u64> = redis::cmd("GET")
            .arg(self.key("clock"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let seen = self.clock.load(Ordering::Acquire);
        if clock.unwrap_or(0) < seen {
            return Err(self.mark_lost(format!(
                "its commit clock went back from {seen} to {}: it was restored from an older \
                 file",
                clock.unwrap_or(0)
            )));
        }
        Ok(())
    }
}

fn session_from(value: Value) -> Result<Option<SessionEntry>> {
    let fields = match value {
        Value::Nil => return Ok(None),
        Value::Array(fields) if fields.len() == 3 => fields,
        Value::Array(fields) if fields.iter().all(|f| matches!(f, Value::Nil)) => return Ok(None),
        other => return Err(corrupt("session", format!("{other:?}"))),
    };
    let bytes = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        _ => None,
    };
    let (Some(sid), Some(expires), Some(record)) =
        (bytes(&fields[0]), to_u64(&fields[1]), bytes(&fields[2]))
    else {
        if matches!(fields[0], Value::Nil) {
            return Ok(None);
        }
        return Err(corrupt("session", format!("{fields:?}")));
    };
    Ok(Some(SessionEntry {
        sid: String::from_utf8(sid).map_err(|e| corrupt("session", e.to_string()))?,
        expires,
        record,
    }))
}

fn meta_from(mut fields: HashMap<String, Vec<u8>>) -> Result<Option<StreamMeta>> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut text = |k: &str| -> Result<Option<String>> {
        fields
            .remove(k)
            .map(|v| String::from_utf8(v).map_err(|e| corrupt("stream meta", e.to_string())))
            .transpose()
    };
    let number = |v: Option<String>| -> Result<Option<u64>> {
        v.map(|t| {
            t.parse::<u64>()
                .map_err(|_| corrupt("stream meta", format!("not a number: {t:?}")))
        })
        .transpose()
    };
    let kind = text("kind")?.ok_or_else(|| corrupt("stream meta", "no kind"))?;
    let created = number(text("created")?)?.unwrap_or(0);
    let status = match text("status")?.as_deref() {
        Some("over") => StreamStatus::Over,
        _ => StreamStatus::Live,
    };
    let creator = text("creator")?.unwrap_or_default();
    let invite = match text("inv")? {
        Some(_) => Some((
            text("ij")?.unwrap_or_default(),
            text("iw")?.unwrap_or_default(),
        )),
        None => None,
    };
    let finished = match status {
        StreamStatus::Over => number(text("fin")?)?,
        StreamStatus::Live => None,
    };
    Ok(Some(StreamMeta {
        kind,
        created,
        status,
        creator,
        invite,
        finished,
    }))
}

#[async_trait]
impl LogRead for RedisLog {
    async fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let value: Value = redis::cmd("XRANGE")
            .arg(self.game(stream, "log"))
            .arg(format!("{from}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(max.min(i64::MAX as usize))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let Value::Array(entries) = value else {
            return Err(corrupt("stream", format!("{value:?}")));
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let bad = || corrupt("stream entry", "not an id and a record");
            let Value::Array(mut parts) = entry else {
                return Err(bad());
            };
            let (Some(Value::Array(mut fields)), Some(id)) = (parts.pop(), parts.pop()) else {
                return Err(bad());
            };
            let seq = match &id {
                Value::BulkString(b) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|t| t.split_once('-'))
                    .and_then(|(s, _)| s.parse::<u64>().ok()),
                Value::SimpleString(t) => t.split_once('-').and_then(|(s, _)| s.parse().ok()),
                _ => None,
            }
            .ok_or_else(bad)?;
            let Some(Value::BulkString(record)) = fields.pop() else {
                return Err(bad());
            };
            out.push((seq, Bytes::from(record)));
        }
        Ok(out)
    }

    async fn version(&self, stream: StreamId) -> Result<Seq> {
        let v: Option<u64> = redis::cmd("HGET")
            .arg(self.key("ver"))
            .arg(stream)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(v.unwrap_or(0))
    }

    async fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.game(stream, "m"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        meta_from(fields)
    }

    async fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        let (due, timers): (Option<u64>, Option<u32>) = redis::cmd("HMGET")
            .arg(self.game(stream, "m"))
            .arg("wd")
            .arg("wt")
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(due.map(|due| Wake {
            due,
            timers: timers.unwrap_or(0),
        }))
    }

    async fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        let value: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.key("keys"))
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        value.as_deref().map(parse_entry).transpose()
    }

    async fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        let (v, s): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.game(stream, "snap"))
            .arg("v")
            .arg("s")
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(v.zip(s))
    }

    async fn load_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        let value: Value = redis::cmd("HMGET")
            .arg(self.key(&format!("sess:{token}")))
            .arg("sid")
            .arg("exp")
            .arg("rec")
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        session_from(value)
    }

    async fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (adue, astream) = match after {
            Some((d, s)) => (d.to_string(), s.to_string()),
            None => (String::new(), String::new()),
        };
        let flat: Vec<Value> = self
            .scripts
            .due
            .arg(&self.opts.prefix)
            .arg(bound(until))
            .arg(adue)
            .arg(astream)
            .arg(max.min(1 << 20))
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        flat.chunks(3)
            .map(|c| match c {
                [s, d, t] => match (to_u64(s), to_u64(d), to_u64(t)) {
                    (Some(s), Some(due), Some(timers)) => Ok((
                        s,
                        Wake {
                            due,
                            timers: timers as u32,
                        },
                    )),
                    _ => Err(corrupt("wake-up entry", format!("{c:?}"))),
                },
                _ => Err(corrupt("wake-up entry", format!("{c:?}"))),
            })
            .collect()
    }

    async fn live_games(&self, creator: &str, max: usize) -> Result<usize> {
        let n: usize = redis::cmd("SCARD")
            .arg(self.key(&format!("live:{creator}")))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(n.min(max))
    }

    async fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>> {
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("finished"))
            .arg("-inf")
            .arg(format!("({}", bound(before)))
            .arg("LIMIT")
            .arg(0)
            .arg(max.min(i64::MAX as usize))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| corrupt("finished index", s.to_owned()))
            })
            .collect()
    }

    async fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>> {
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("sessexp"))
            .arg("-inf")
            .arg(format!("({}", bound(before)))
            .arg("LIMIT")
            .arg(0)
            .arg(max.min(i64::MAX as usize))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn session_count(&self) -> Result<u64> {
        redis::cmd("ZCARD")
            .arg(self.key("sessexp"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn session_by_sid(&self, sid: &str) -> Result<Option<String>> {
        redis::cmd("HGET")
            .arg(self.key("sids"))
            .arg(sid)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn keys_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<(String, KeyEntry)>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut hi = b"[".to_vec();
        hi.extend_from_slice(prefix.as_bytes());
        hi.push(0xff);
        let keys: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(self.key("keylex"))
            .arg(format!("[{prefix}"))
            .arg(hi)
            .arg("LIMIT")
            .arg(0)
            .arg(max.min(i64::MAX as usize))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.key("keys"))
            .arg(&keys)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, value) in keys.into_iter().zip(values) {
            // A key removed between the two reads is skipped.
            if let Some(v) = value {
                out.push((key, parse_entry(&v)?));
            }
        }
        Ok(out)
    }

    async fn streams(&self) -> Result<Vec<StreamInfo>> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("streams"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id: StreamId = id
                .parse()
                .map_err(|_| corrupt("stream index", id.clone()))?;
            if let Some(meta) = self.meta(id).await? {
                out.push(StreamInfo {
                    id,
                    meta,
                    version: self.version(id).await?,
                });
            }
        }
        Ok(out)
    }

    async fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.due(u64::MAX, after, 1_000).await?;
            let Some((id, w)) = page.last() else {
                break;
            };
            after = Some((w.due, *id));
            all.extend(page);
        }
        all.sort_by_key(|(id, _)| *id);
        Ok(all)
    }

    async fn sessions(&self) -> Result<Vec<(String, SessionEntry)>> {
        let tokens: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("sessexp"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            if let Some(entry) = self.load_session(&token).await? {
                out.push((token, entry));
            }
        }
        Ok(out)
    }
}
