// One load generator for umpire and Colyseus: G games of Connect Four, each with two players
// and S spectators, every move checked at every receiver. `node load.mjs JSON` with
// {"target": "umpire" | "colyseus", "port", "games", "spectators", "warmup", "secs", "pace"}:
// `pace` 0 plays closed loop (the next move goes as soon as its player sees the last one);
// otherwise each game makes `pace` moves a second. Prints `WINDOW start` and `WINDOW end` as
// the measured window opens and closes (the caller reads the server's CPU time then), and at
// the end one JSON line: moves whose every receiver got them inside the window, their
// latency (sent to the last receiver), and what went wrong.
import { Client } from "@colyseus/sdk";

// 42 moves in which nobody ever has four in a row: the longest game, the same for both.
const DRAW = [0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5,
  0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5];
// umpire's native seqs in a game: 1 created, 2 to 5 both players seated and online, the moves,
// then the game's end.
const FIRST_MOVE_SEQ = 6;

const o = JSON.parse(process.argv[2]);
const receivers = 2 + o.spectators;
const start = performance.now() + o.warmup * 1000;
const end = start + o.secs * 1000;
const stats = { moves: 0, games: 0, latencies: [], errors: [] };
setTimeout(() => console.log("WINDOW start"), start - performance.now());
setTimeout(() => console.log("WINDOW end"), end - performance.now());
// What each slot's receivers have seen, for the report of a run that got stuck.
const progress = [];
setTimeout(() => {
  stats.errors.push(`stuck 20 s after the window: each slot's receivers at moves ${JSON.stringify(
    progress.map((seen) => [Math.min(...seen), Math.max(...seen)]))}`);
  report();
}, end - performance.now() + 20000).unref();

const fail = (why) => {
  stats.errors.push(String(why));
  throw new Error(why);
};

// When a slot's next move may go: at once (closed loop), or on a timeline of `pace` moves a
// second that a late move does not shift (the next ones catch up, up to 50 ms behind).
class Pacer {
  constructor() {
    this.due = performance.now();
  }
  async wait() {
    if (o.pace <= 0) return;
    const now = performance.now();
    this.due = Math.max(this.due + 1000 / o.pace, now - 50);
    if (this.due > now) await new Promise((r) => setTimeout(r, this.due - now));
  }
}

// One game's moves: when each was sent and how many receivers have it.
class Track {
  constructor(pacer) {
    this.sent = new Array(DRAW.length).fill(0);
    this.got = new Array(DRAW.length).fill(0);
    this.pacer = pacer;
  }
  wait() {
    return this.pacer.wait();
  }
  sending(m) {
    this.sent[m] = performance.now();
  }
  delivered(m) {
    this.got[m] += 1;
    if (this.got[m] === receivers) {
      const now = performance.now();
      if (this.sent[m] >= start && now < end) {
        stats.moves += 1;
        stats.latencies.push(now - this.sent[m]);
      }
    }
  }
  check() {
    const short = this.got.findIndex((g) => g !== receivers);
    if (short >= 0) fail(`move ${short} reached ${this.got[short]} of ${receivers} receivers`);
    stats.games += 1;
  }
}

// ---- umpire, native JSON protocol on /ws ----

class Conn {
  constructor(ws) {
    this.ws = ws;
    this.replies = new Map();
    this.onEvent = null;
    this.queue = [];
    ws.onmessage = (e) => this.message(JSON.parse(e.data));
    ws.onclose = () => this.onEvent?.("closed");
  }
  static open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Conn(ws));
      ws.onerror = (e) => reject(new Error(`connecting to ${url}: ${e.message ?? e.type}`));
    });
  }
  message(msg) {
    if (msg.type === "event") {
      if (this.onEvent) this.onEvent(msg);
      return;
    }
    if (msg.ref !== undefined && this.replies.has(msg.ref)) {
      const done = this.replies.get(msg.ref);
      this.replies.delete(msg.ref);
      done(msg);
    } else if (msg.type === "error") {
      fail(`umpire: ${JSON.stringify(msg)}`);
    }
  }
  request(msg, want) {
    return new Promise((resolve, reject) => {
      this.replies.set(msg.ref, (reply) =>
        reply.type === want ? resolve(reply) : reject(new Error(`${msg.type}: ${JSON.stringify(reply)}`)));
      this.ws.send(JSON.stringify(msg));
    });
  }
  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }
}

async function umpireSlot() {
  const url = `ws://127.0.0.1:${o.port}/ws`;
  const conns = [];
  for (let k = 0; k < receivers; k++) conns.push(await Conn.open(url));
  let previous = null;
  const pacer = new Pacer();
  while (performance.now() < end) {
    const created = await conns[0].request({ type: "create", kind: "connect4", config: null, ref: 1 }, "created");
    const game = created.game;
    // Everyone has seen the setup (seqs 1 to 5) before the first move.
    const setUp = conns.map((c) => new Promise((resolve) => {
      c.onEvent = (msg) => {
        if (msg !== "closed" && msg.game === game && msg.env.seq === FIRST_MOVE_SEQ - 1) resolve();
      };
    }));
    await conns[1].request({ type: "join", key: created.join, ref: 2 }, "joined");
    for (const w of conns.slice(2)) {
      if (previous !== null) w.send({ type: "leave", game: previous });
      w.send({ type: "watch", key: created.watch, ref: 3 });
    }
    await Promise.all(setUp);
    const track = new Track(pacer);
    const move = (c, m) => {
      track.sending(m);
      c.send({ type: "command", game, cmd: { column: DRAW[m] }, ref: m });
    };
    const done = conns.map((c, k) => new Promise((resolve, reject) => {
      let expected = 0;
      c.onEvent = async (msg) => {
        if (msg === "closed") return reject(new Error("connection closed"));
        if (msg.game !== game) return;
        const m = msg.env.seq - FIRST_MOVE_SEQ;
        if (m === DRAW.length) return resolve();
        if (m !== expected) return reject(new Error(`game ${game}: expected move ${expected}, got seq ${msg.env.seq}`));
        expected += 1;
        track.delivered(m);
        if (k < 2 && (m + 1) % 2 === k && m + 1 < DRAW.length) {
          await track.wait();
          move(c, m + 1);
        }
      };
    }));
    await pacer.wait();
    move(conns[0], 0);
    await Promise.all(done);
    track.check();
    previous = game;
  }
  for (const c of conns) c.ws.close();
}

// ---- Colyseus, its own SDK ----

async function colyseusSlot() {
  const client = new Client(`http://127.0.0.1:${o.port}`);
  const rooms = [await client.create("connect4", { seat: 0 })];
  rooms.push(await client.joinById(rooms[0].roomId, { seat: 1 }));
  for (let k = 0; k < o.spectators; k++) rooms.push(await client.joinById(rooms[0].roomId, {}));
  // The room counts its moves across games: move n is move (n - 1) % 42 of game (n - 1) / 42.
  let finished = null;
  const games = new Map();
  const pacer = new Pacer();
  const trackOf = (g) => {
    if (!games.has(g)) games.set(g, new Track(pacer));
    return games.get(g);
  };
  const move = (room, g, m) => {
    trackOf(g).sending(m);
    room.send("move", DRAW[m]);
  };
  const over = new Promise((resolve, reject) => {
    finished = { resolve, reject };
  });
  // The last game is the one seat 0 finishes after the window, and it decides so in its own
  // handler: the receivers see each move in their own order, so a receiver's clock cannot
  // tell. Done once every receiver has seen that game's last move.
  let lastGame = null;
  const completed = new Array(receivers).fill(-1);
  const seen = new Array(receivers).fill(0);
  progress.push(seen);
  const check = () => {
    if (lastGame !== null && completed.every((g) => g >= lastGame)) finished.resolve();
  };
  rooms.forEach((room, k) => {
    let expected = 1;
    room.onMessage("refused", (column) => finished.reject(new Error(`refused column ${column}`)));
    room.onMessage("played", async ([n, seat]) => {
      if (n !== expected) return finished.reject(new Error(`expected move ${expected}, got ${n}`));
      expected += 1;
      seen[k] = n;
      const g = Math.floor((n - 1) / DRAW.length);
      const m = (n - 1) % DRAW.length;
      const t = trackOf(g);
      t.delivered(m);
      const last = m === DRAW.length - 1;
      if (last) {
        if (t.got[m] === receivers) {
          t.check();
          games.delete(g);
        }
        completed[k] = g;
        if (k === 0 && performance.now() >= end) lastGame = g;
        check();
        if (lastGame !== null) return;
      }
      // Whose turn: the other seat, or seat 0 to open the next game.
      const next = last ? 0 : 1 - seat;
      if (k === next) {
        await trackOf(g).wait();
        move(room, last ? g + 1 : g, last ? 0 : m + 1);
      }
    });
  });
  move(rooms[0], 0, 0);
  await over;
  for (const room of rooms) await room.leave();
}

function report() {
  const sorted = stats.latencies.sort((a, b) => a - b);
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0);
  console.log(JSON.stringify({
    moves: stats.moves,
    games: stats.games,
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    errors: stats.errors.slice(0, 5),
  }));
  process.exit(0);
}

const slot = o.target === "umpire" ? umpireSlot : colyseusSlot;
const slots = [];
for (let g = 0; g < o.games; g++) slots.push(slot().catch((e) => stats.errors.push(String(e.stack ?? e))));
await Promise.all(slots);
report();
