// umpire-client (umpire.js): umpire's native protocol, for the built-in pages and for npm. One
// WebSocket, JSON frames, requests matched to answers by `ref`, events handed to listeners in
// order, each once. Types: umpire.d.ts.
//
// When the connection drops (a network blip, the server restarting) the client reconnects by
// itself with backoff and resumes its session: the server sends exactly the events missed, so
// the page carries on with its state intact. If the session cannot be resumed (the server lost
// it, or it expired) the client takes its seats back with their tokens and watches again from
// the last seq it saw, which gives the same events.

// The WebSocket URL of `path`, taken beside this module (by default `ws`: a page loading
// umpire.js from `/umpire.js` connects to `/ws`, one that an application serves under
// `/play/` to `/play/ws`, wherever the page itself is).
export function serverUrl(path = "ws") {
  const url = new URL(path, import.meta.url);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

const closedError = (why) => Object.assign(new Error(why), { code: "closed" });

export class Umpire {
  // `url`: the server's `/ws` (by default the one beside this module, for pages the server
  // serves). `options.WebSocket`: the WebSocket class to use where there is no global one
  // (Node before 22: the `ws` package's).
  constructor(url = serverUrl(), options = {}) {
    this.url = url;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new Error("no WebSocket here: pass one as options.WebSocket (the ws package)");
    this.nextRef = 1;
    this.pending = new Map();
    this.listeners = new Set();
    this.closeListeners = new Set();
    this.statusListeners = new Set();
    this.audienceListeners = new Set();
    this.rematchListeners = new Set();
    this.session = null;     // the token to resume with
    this.signedIn = null;    // the `hello` token, said again after a reconnect
    this.closedWhy = null;   // why this client closed for good, if it did
    this.seen = new Map();   // game -> last seq received
    this.entries = new Map(); // game -> how it was entered: {join: token}, {watch: key}, {channel}
    this.skew = 0;           // server clock minus ours, from the last answer that said
    this.status = "connecting";
    this.attempt = 0;
    this.stopped = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.#open(() => resolve(this), () => reject(new Error("cannot reach the server")));
    });
  }

  // fn(game, envelope) for every event, in order, once.
  onEvent(fn) { this.listeners.add(fn); }
  // fn(closeEvent) when the connection is closed for good (not when it reconnects).
  onClose(fn) { this.closeListeners.add(fn); }
  // fn(status, detail): "connected" (after a reconnect, detail says whether the session was
  // "resumed" or its games "entered again"), "reconnecting", "closed" (detail: why).
  onStatus(fn) { this.statusListeners.add(fn); }
  // fn(game, spectators) when the server says how many watch.
  onAudience(fn) { this.audienceListeners.add(fn); }

  // fn(game, next, watch) when a player of `game` started its rematch, `next`.
  onRematch(fn) { this.rematchListeners.add(fn); }

  // The server's clock now, in ms since the epoch: for countdowns.
  serverNow() { return Date.now() + this.skew; }

  #setStatus(status, detail = "") {
    this.status = status;
    for (const fn of this.statusListeners) fn(status, detail);
  }

  #open(onOpen, onFail) {
    const ws = new this.WebSocket(this.url, ["umpire.json"]);
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => { opened = true; onOpen(); });
    ws.addEventListener("message", ({ data }) => this.#receive(JSON.parse(data)));
    ws.addEventListener("close", (e) => {
      for (const { reject } of this.pending.values()) reject(closedError(e.reason || "connection lost"));
      this.pending.clear();
      if (!opened && onFail && this.attempt === 0) { onFail(); return; }
      // A bad token will not get better by trying again; anything else may.
      if (this.stopped || (e.code === 1008 && e.reason === "bad token")) {
        this.#setStatus("closed", this.closedWhy ?? e.reason);
        for (const fn of this.closeListeners) fn(e);
        return;
      }
      this.#retry(e.reason);
    });
  }

  #retry(reason) {
    this.attempt += 1;
    const delay = Math.min(10000, 250 * 2 ** Math.min(this.attempt, 6)) * (0.5 + Math.random() / 2);
    this.#setStatus("reconnecting", reason);
    setTimeout(() => this.#open(() => this.#recover(), null), delay);
  }

  // Connected again: take the session back, or else each game by its key.
  async #recover() {
    try {
      if (this.signedIn) await this.request({ type: "hello", token: this.signedIn });
      let resumed = false;
      if (this.session && this.entries.size > 0) {
        const seen = Object.fromEntries([...this.seen].map(([g, s]) => [String(g), s]));
        try {
          const answer = await this.request({ type: "resume", session: this.session, seen });
          for (const g of answer.lost ?? []) this.entries.delete(g);
          resumed = true;
        } catch (e) {
          if (e.code === "closed") throw e;
        }
      }
      const lost = [];
      if (!resumed) {
        for (const [game, entry] of this.entries) {
          try {
            await this.#enterAgain(game, entry);
          } catch (e) {
            if (e.code === "closed") throw e;
            // Refused (the game is gone from this server, say): trying again will not help.
            this.entries.delete(game);
            lost.push(`game ${game}: ${e.message}`);
          }
        }
      }
      this.attempt = 0;
      if (lost.length > 0) {
        // The page cannot go on without its game: say so, and stop.
        this.closedWhy = `the server no longer has this game (${lost.join("; ")})`;
        this.close();
        return;
      }
      this.#setStatus("connected", resumed ? "resumed" : "entered again");
    } catch (e) {
      // The socket closed again: its close handler retries.
      if (e.code !== "closed") this.#setStatus("reconnecting", e.message);
    }
  }

  #enterAgain(game, entry) {
    const from = (this.seen.get(game) ?? 0) + 1;
    if (entry.join) return this.request({ type: "join", key: entry.join });
    if (entry.channel) return this.request({ type: "subscribe", channel: entry.channel, from });
    return this.request({ type: "watch", key: entry.watch, from });
  }

  #receive(msg) {
    if (msg.session) this.session = msg.session;
    if (typeof msg.now === "number") this.skew = msg.now - Date.now();
    if (msg.type === "event") {
      const seq = msg.env.seq;
      if (seq <= (this.seen.get(msg.game) ?? 0)) return; // sent again after a reconnect
      this.seen.set(msg.game, seq);
      for (const fn of this.listeners) fn(msg.game, msg.env);
      return;
    }
    if (msg.type === "audience") {
      for (const fn of this.audienceListeners) fn(msg.game, msg.spectators);
      return;
    }
    if (msg.type === "rematch") {
      for (const fn of this.rematchListeners) fn(msg.game, msg.next, msg.watch);
      return;
    }
    const waiter = msg.ref !== undefined && this.pending.get(msg.ref);
    if (!waiter) return;
    this.pending.delete(msg.ref);
    if (msg.type === "error") {
      // `code` for programs; `reason`, for a command the rules refused, the game's rejection
      // as data ({"overflow": 1}): branch on these, not on the message.
      waiter.reject(Object.assign(new Error(msg.message), { code: msg.code, reason: msg.reason }));
    } else {
      waiter.resolve(msg);
    }
  }

  // Sign in with `token` (what the server's authenticator takes); said again after a reconnect.
  async hello(token) {
    const answer = await this.request({ type: "hello", token });
    this.signedIn = token;
    return answer;
  }

  request(msg) {
    // A closed WebSocket drops what it is given without a word: say so instead of waiting.
    if (this.ws.readyState !== 1) { // OPEN
      const why = this.status === "reconnecting" ? "reconnecting to the server: try again in a moment"
                                                 : "not connected to the server: reload the page";
      return Promise.reject(closedError(why));
    }
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify({ ...msg, ref }));
    });
  }

  // Remember how a game was entered, to enter it again if a resume fails.
  #entered(answer, entry) {
    this.entries.set(answer.game, entry);
    return answer;
  }

  async create(kind, config = null) {
    const answer = await this.request({ type: "create", kind, config });
    return this.#entered(answer, { join: answer.token });
  }
  // A game listed among its kind's open games while it has a free seat.
  async createOpen(kind, config = null) {
    const answer = await this.request({ type: "create", kind, config, open: true });
    return this.#entered(answer, { join: answer.token });
  }
  // Quick play: a seat in the open game of `kind` and `config` that has waited longest
  // (answered `joined`) or in a new one where this player waits (`created`). With a
  // matchmaker on the server, resolves once it puts this player in a game (by `props`).
  async play(kind, config = null, props = null) {
    const answer = await this.request({ type: "play", kind, config, props });
    return this.#entered(answer, { join: answer.token });
  }
  // Stop waiting to play (of `kind`, or every kind): the waiting plays reject with
  // `cancelled`.
  cancel(kind = null) { return this.request({ type: "cancel", kind }); }
  // Follow the open games of `kind`: `fn(games)` with the whole list now and at every change.
  async openGames(kind, fn) {
    let version = -1;
    let stream = null;
    this.onEvent((g, env) => {
      const data = g === stream ? env.body.notice?.data : null;
      if (data?.type !== "open_games" || data.version < version) return;
      version = data.version;
      fn(data.games);
    });
    const answer = await this.request({ type: "subscribe", channel: `lobby:${kind}`, last: 1 });
    stream = answer.game;
    return this.#entered(answer, { channel: answer.channel });
  }
  async join(key) {
    const answer = await this.request({ type: "join", key });
    return this.#entered(answer, { join: answer.token });
  }
  async watch(key, from = 1) {
    const answer = await this.request({ type: "watch", key, from });
    return this.#entered(answer, { watch: key });
  }
  // Follow a channel (broadcast, user:<id>, group:<name>, session); its notices arrive as
  // events of the stream `answer.game`.
  async subscribe(channel, from = 1) {
    const answer = await this.request({ type: "subscribe", channel, from });
    return this.#entered(answer, { channel: answer.channel });
  }
  command(game, cmd) { return this.request({ type: "command", game, cmd }); }
  // After `game` ended: start its rematch, or take a seat in the one started (created/joined).
  rematch(game) { return this.request({ type: "rematch", game }); }
  async leave(game) {
    const answer = await this.request({ type: "leave", game });
    this.entries.delete(game);
    return answer;
  }
  // Close for good (no reconnecting).
  close() { this.stopped = true; this.ws.close(1000); }
}

// Create, quick play (?play), join (?join=), reclaim a seat (?token=) or watch (?watch=) as the URL says; afterwards
// the URL carries this tab's seat token, so a reload takes the same seat back.
export async function enter(client, kind, config = null) {
  const params = new URLSearchParams(location.search);
  let answer;
  if (params.has("watch")) answer = await client.watch(params.get("watch"));
  else if (params.has("play")) answer = await client.play(kind, config);
  else if (params.has("token")) {
    try {
      answer = await client.join(params.get("token"));
    } catch (e) {
      // A quick-play seat given up while this page was away (a reload while waiting alone):
      // play again.
      if (!params.has("play") || e.code !== "forbidden") throw e;
      answer = await client.play(kind, config);
    }
  }
  else if (params.has("join")) {
    try {
      answer = await client.join(params.get("join"));
    } catch (e) {
      if (e.code !== "full" && e.code !== "game_over") throw e;
      // A join link to a full or finished game: watch it instead (a join key also watches).
      answer = await client.watch(params.get("join"));
      answer.notice = e.code === "full" ? "Every seat is taken: you are watching."
                                        : "This game is over: you are watching it.";
    }
  }
  else answer = await client.create(kind, config);
  if (answer.token) {
    const play = params.has("play") ? "&play" : "";
    history.replaceState(null, "", `?token=${encodeURIComponent(answer.token)}${play}`);
  }
  return answer;
}

// Show the connection's state in `element`: "Reconnecting…" while it is away, nothing once
// it is back, why when it is gone for good. Sets `data-connection` on the body for tests.
export function showConnection(client, element) {
  client.onStatus((status, detail) => {
    document.body.dataset.connection = status;
    if (status === "connected") document.body.dataset.recovered = detail;
    if (status === "connected") element.textContent = "";
    else if (status === "reconnecting") element.textContent = "Reconnecting…";
    else element.textContent = `Disconnected${detail ? `: ${detail}` : ""}. Reload to start again.`;
  });
  document.body.dataset.connection = "connected";
}

export function link(page, key, value) {
  const url = new URL(page, location.href);
  url.search = `?${key}=${encodeURIComponent(value)}`;
  return url.href;
}
