// umpire.js: the native protocol for every page. One WebSocket, JSON frames, requests matched
// to answers by `ref`, events handed to listeners in order.

export function serverUrl(path = "/ws") {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class Umpire {
  constructor(url = serverUrl()) {
    this.url = url;
    this.nextRef = 1;
    this.pending = new Map();
    this.listeners = new Set();
    this.closeListeners = new Set();
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(this.url, ["umpire.json"]);
      this.ws.addEventListener("open", () => resolve(this));
      this.ws.addEventListener("error", () => reject(new Error("cannot reach the server")));
      this.ws.addEventListener("message", ({ data }) => this.#receive(JSON.parse(data)));
      this.ws.addEventListener("close", (e) => {
        for (const { reject } of this.pending.values()) reject(new Error(e.reason || "connection closed"));
        this.pending.clear();
        for (const fn of this.closeListeners) fn(e);
      });
    });
  }

  // fn(game, envelope) for every event, in order.
  onEvent(fn) { this.listeners.add(fn); }
  onClose(fn) { this.closeListeners.add(fn); }

  #receive(msg) {
    if (msg.type === "event") {
      for (const fn of this.listeners) fn(msg.game, msg.env);
      return;
    }
    const waiter = msg.ref !== undefined && this.pending.get(msg.ref);
    if (!waiter) return;
    this.pending.delete(msg.ref);
    if (msg.type === "error") waiter.reject(Object.assign(new Error(msg.message), { code: msg.code }));
    else waiter.resolve(msg);
  }

  request(msg) {
    // A closed WebSocket drops what it is given without a word: say so instead of waiting.
    if (this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(Object.assign(new Error("not connected to the server: reload the page"), { code: "closed" }));
    }
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify({ ...msg, ref }));
    });
  }

  create(kind, config = null) { return this.request({ type: "create", kind, config }); }
  join(key) { return this.request({ type: "join", key }); }
  watch(key, from = 1) { return this.request({ type: "watch", key, from }); }
  command(game, cmd) { return this.request({ type: "command", game, cmd }); }
  leave(game) { return this.request({ type: "leave", game }); }
}

// Create, join (?join=), reclaim a seat (?token=) or watch (?watch=) as the URL says; afterwards
// the URL carries this tab's seat token, so a reload takes the same seat back.
export async function enter(client, kind, config = null) {
  const params = new URLSearchParams(location.search);
  let answer;
  if (params.has("watch")) answer = await client.watch(params.get("watch"));
  else if (params.has("token")) answer = await client.join(params.get("token"));
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
  if (answer.token) history.replaceState(null, "", `?token=${encodeURIComponent(answer.token)}`);
  return answer;
}

export function link(page, key, value) {
  const url = new URL(page, location.href);
  url.search = `?${key}=${encodeURIComponent(value)}`;
  return url.href;
}
