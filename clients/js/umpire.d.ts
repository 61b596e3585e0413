// Types for umpire-client (umpire.js): umpire's native protocol over one WebSocket.

/** A game's id (the stream of a channel too). */
export type GameId = number;
/** An event's position in its game, from 1. */
export type Seq = number;
/** Any JSON value: commands, configs, events and reasons are each game's own. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The wire's error codes (docs/PROTOCOL.md, "Error codes"), and `closed` for a request the
 * connection could not carry. */
export type ErrorCode =
  | "bad_message" | "unauthorized" | "not_found" | "forbidden" | "rejected" | "full"
  | "game_over" | "cancelled" | "rate_limited" | "limit_reached" | "too_large" | "overloaded" | "internal"
  | "closed";

/** A refused request: `code` for programs; `reason`, for `rejected`, the game's rejection as
 * data (`{"overflow": 1}`, `"not_your_turn"`): branch on these, never on `message`. */
export interface UmpireError extends Error {
  code: ErrorCode;
  reason?: Json;
}

/** An event as the server sends it. */
export interface Envelope {
  seq: Seq;
  /** Server time, ms since the epoch. */
  at: number;
  cid?: string;
  body: { [key: string]: Json };
}

/** The answer to `create`. */
export interface Created {
  type: "created";
  game: GameId;
  kind: string;
  /** The key that takes the next free seat: send it to the other players. */
  join: string;
  /** The key that watches. */
  watch: string;
  seat: number;
  /** This seat's own token: joining with it takes the seat back. */
  token: string;
  now: number;
}

/** The answer to `join`. */
export interface Joined {
  type: "joined";
  game: GameId;
  kind: string;
  seat: number;
  token: string;
  now: number;
  /** Set by `enter` when a join link led to watching instead. */
  notice?: string;
}

/** A game listed among its kind's open games (`openGames`, `GET /api/games`). */
export interface OpenGame {
  game: GameId;
  kind: string;
  config: Json;
  seats: number;
  /** Seats taken. */
  taken: number;
  players: string[];
  /** When it was opened, ms since the epoch (server time). */
  since: number;
  /** How long it had been open when listed, ms. */
  age_ms: number;
  /** Join with this to take a seat. */
  join: string;
  watch: string;
}

/** The answer to `watch`. */
export interface Watching {
  type: "watching";
  game: GameId;
  kind: string;
  now: number;
  notice?: string;
}

/** The answer to `subscribe`: the channel's notices arrive as events of `game`. */
export interface Subscribed {
  type: "subscribed";
  channel: string;
  game: GameId;
}

/** The answer to a command: `seq` is durable. */
export interface Ok {
  type: "ok";
  game?: GameId;
  seq?: Seq;
}

/** The answer to `hello`. */
export interface Welcome {
  type: "welcome";
  user: string;
  session?: string;
}

/** The connection's state: `reconnecting` while it is away (show "Reconnecting…"),
 * `connected` once it is back (`detail`: `"resumed"` or `"entered again"`), `closed` for good
 * (`detail`: why). */
export type Status = "connecting" | "connected" | "reconnecting" | "closed";

export interface UmpireOptions {
  /** The WebSocket class where there is no global one (Node before 22: `ws`). */
  WebSocket?: unknown;
}

/** One connection to umpire. It reconnects by itself with backoff and resumes its session,
 * so listeners get every event once, in order, across drops. */
export class Umpire {
  /** `url`: the server's `/ws` (`ws://host:8080/ws`); by default the one beside this module. */
  constructor(url?: string, options?: UmpireOptions);
  readonly url: string;
  readonly status: Status;
  /** Open the connection; rejects if the server cannot be reached. */
  connect(): Promise<Umpire>;

  /** Every event of every game and channel this client follows, in order, each once. */
  onEvent(fn: (game: GameId, envelope: Envelope) => void): void;
  /** The connection closed for good (not when it reconnects). */
  onClose(fn: (event: { code: number; reason: string }) => void): void;
  /** The connection's state changes. */
  onStatus(fn: (status: Status, detail: string) => void): void;
  /** How many watch a game, when it changes. */
  onAudience(fn: (game: GameId, spectators: number) => void): void;
  /** A player of `game` started its rematch `next`. */
  onRematch(fn: (game: GameId, next: GameId, watch: string) => void): void;

  /** The server's clock now, ms since the epoch: for countdowns. */
  serverNow(): number;
  /** Sign in with a token the server's authenticator takes; said again after a reconnect. */
  hello(token: string): Promise<Welcome>;
  /** Any request of the protocol; resolves with its answer, rejects with an `UmpireError`. */
  request(msg: { type: string; [key: string]: Json | undefined }): Promise<any>;
  create(kind: string, config?: Json): Promise<Created>;
  /** Create a game listed among the kind's open games while it has a free seat. */
  createOpen(kind: string, config?: Json): Promise<Created>;
  /** Quick play: `joined` into the open game that waited longest, or `created` (then wait
   * for the others). With a matchmaker on the server, once it groups this player. */
  play(kind: string, config?: Json, props?: Json): Promise<Created | Joined>;
  /** Stop waiting to play (of `kind`, or every kind): waiting plays reject `cancelled`. */
  cancel(kind?: string | null): Promise<Ok>;
  /** Follow the open games of `kind`: `fn` gets the whole list now and at every change. */
  openGames(kind: string, fn: (games: OpenGame[]) => void): Promise<Subscribed>;
  /** Join with a join key, or take a seat back with its token. */
  join(key: string): Promise<Joined>;
  /** Watch from seq `from` (1: everything). */
  watch(key: string, from?: Seq): Promise<Watching>;
  /** Follow `broadcast`, `user:<id>`, `group:<name>` or `session`. */
  subscribe(channel: string, from?: Seq): Promise<Subscribed>;
  command(game: GameId, cmd: Json): Promise<Ok>;
  /** After `game` ended: start its rematch, or take a seat in the one started. */
  rematch(game: GameId): Promise<Created | Joined>;
  leave(game: GameId): Promise<Ok>;
  /** Close for good: no reconnecting. */
  close(): void;
}

/** The WebSocket URL of `path` beside this module (`ws`: the server's `/ws`). In a browser. */
export function serverUrl(path?: string): string;
/** For a page: create, quick play (`?play`), join (`?join=`), take a seat back (`?token=`) or watch (`?watch=`) as
 * the page's URL says; the URL then carries the seat's token. In a browser. */
export function enter(client: Umpire, kind: string, config?: Json): Promise<Created | Joined | Watching>;
/** Show the connection's state in `element` ("Reconnecting…"). In a browser. */
export function showConnection(client: Umpire, element: { textContent: string | null }): void;
/** `page` with `?key=value`, beside the current page. In a browser. */
export function link(page: string, key: string, value: string): string;
