// umpire-client against a real `umpire serve` started here (UMPIRE_BIN, or the debug build):
// requests by ref, typed refusals, events once and in order across a dropped connection.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Umpire } from "../umpire.js";

const bin = process.env.UMPIRE_BIN ?? fileURLToPath(new URL("../../../target/debug/umpire", import.meta.url));
let server;
let url;

before(async () => {
  server = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--memory"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: server.stdout });
  url = await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.once("exit", (code) => reject(new Error(`umpire serve exited (${code}) before its URL`)));
    lines.on("line", (line) => {
      const http = line.split(/\s+/).find((w) => w.startsWith("http://"));
      if (http) resolve(new URL("ws", http).href.replace(/^http/, "ws"));
    });
  });
});

after(() => server?.kill());

// Events of `game` that `client` receives, until `done(envelope)` says so.
function eventsUntil(client, game, done) {
  const seen = [];
  return new Promise((resolve) => {
    client.onEvent((g, env) => {
      if (g !== game) return;
      seen.push(env);
      if (done(env)) resolve(seen);
    });
  });
}

const over = (env) => env.body.over !== undefined;

test("two clients play connect four to the end, each event once and in order", { timeout: 30_000 }, async () => {
  const red = await new Umpire(url).connect();
  const yellow = await new Umpire(url).connect();
  const game = await red.create("connect4");
  assert.equal(game.type, "created");
  assert.equal(typeof game.join, "string");
  const redSees = eventsUntil(red, game.game, over);
  const yellowSees = eventsUntil(yellow, game.game, over);
  await yellow.join(game.join);
  for (const [i, column] of [0, 1, 0, 1, 0, 1, 0].entries()) {
    const answer = await (i % 2 === 0 ? red : yellow).command(game.game, { column });
    assert.equal(answer.type, "ok");
  }
  for (const seen of [await redSees, await yellowSees]) {
    const seqs = seen.map((env) => env.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in order");
    assert.equal(new Set(seqs).size, seqs.length, "each once");
    assert.deepEqual(seen.at(-1).body.over.outcome, { win: 0 });
  }
  red.close();
  yellow.close();
});

test("a refusal carries its code and the game's reason as data", { timeout: 30_000 }, async () => {
  const client = await new Umpire(url).connect();
  const tally = await client.create("tally");
  await client.command(tally.game, { add: 9e18 });
  // Another 9e18 would leave the i64 range: the rules refuse, and say so as data.
  const refused = await client.command(tally.game, { add: 9e18 }).then(
    () => assert.fail("an overflowing addition was accepted"),
    (e) => e,
  );
  assert.equal(refused.code, "rejected");
  assert.deepEqual(refused.reason, { overflow: 9e18 });
  // What a client does with it: take the amount from the reason, never from the message.
  const fits = await client.command(tally.game, { add: -refused.reason.overflow });
  assert.equal(fits.type, "ok");
  await assert.rejects(client.join("no-such-key"), (e) => e.code === "not_found" && e.reason === undefined);
  client.close();
});

test("a dropped connection reconnects, resumes, and misses nothing", { timeout: 30_000 }, async () => {
  const player = await new Umpire(url).connect();
  const other = await new Umpire(url).connect();
  const game = await player.create("tally");
  await other.join(game.join);
  const statuses = [];
  const back = new Promise((resolve) => player.onStatus((status, detail) => {
    statuses.push(status);
    if (status === "connected") resolve(detail);
  }));
  const sees = eventsUntil(player, game.game, (env) => env.body.game?.total === 55);
  await other.command(game.game, { add: 1 });
  player.ws.close(4000, "dropped by the test"); // not close(): the client should come back
  for (let n = 2; n <= 10; n++) await other.command(game.game, { add: n });
  assert.equal(await back, "resumed");
  assert.deepEqual(statuses.slice(0, 1), ["reconnecting"], "said it was away first");
  const totals = (await sees).filter((env) => env.body.game).map((env) => env.body.game.total);
  assert.deepEqual(totals, [1, 3, 6, 10, 15, 21, 28, 36, 45, 55], "every addition once, in order");
  player.close();
  other.close();
});

test("installed into a fresh Node project with npm, it imports as umpire-client and plays", { timeout: 30_000 }, async () => {
  const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
  const { execFileSync } = await import("node:child_process");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = await mkdtemp(join(tmpdir(), "umpire-client-"));
  try {
    const pkg = fileURLToPath(new URL("..", import.meta.url));
    execFileSync("npm", ["init", "-y"], { cwd: dir, stdio: "ignore" });
    execFileSync("npm", ["install", "--no-audit", "--no-fund", pkg], { cwd: dir, stdio: "ignore" });
    await writeFile(join(dir, "play.mjs"), `
      import { Umpire } from "umpire-client";
      const client = await new Umpire(process.argv[2]).connect();
      const game = await client.create("tally");
      const ok = await client.command(game.game, { add: 2 });
      console.log(JSON.stringify(ok));
      client.close();
    `);
    const out = execFileSync(process.execPath, ["play.mjs", url], { cwd: dir, encoding: "utf8" });
    const ok = JSON.parse(out);
    assert.equal(ok.type, "ok");
    assert.ok(ok.seq >= 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("quick play seats two strangers in one game, and the open games follow it live", { timeout: 30_000 }, async () => {
  const watcher = await new Umpire(url).connect();
  const listings = [];
  let changed = () => {};
  await watcher.openGames("highcard", (games) => { listings.push(games); changed(); });
  const listed = (ok) => new Promise((resolve) => {
    changed = () => { if (ok(listings.at(-1))) resolve(listings.at(-1)); };
    changed();
  });
  const a = await new Umpire(url).connect();
  const first = await a.play("highcard");
  assert.equal(first.type, "created");
  const open = await listed((games) => games?.length === 1);
  assert.equal(open[0].game, first.game);
  assert.equal(open[0].taken, 1);
  const b = await new Umpire(url).connect();
  const second = await b.play("highcard");
  assert.equal(second.type, "joined");
  assert.equal(second.game, first.game);
  await listed((games) => games?.length === 0);
  // A player waiting alone who leaves: the game leaves the list.
  const c = await new Umpire(url).connect();
  const waiting = await c.play("highcard");
  await c.leave(waiting.game);
  await listed((games) => games?.length === 0);
  for (const client of [watcher, a, b, c]) client.close();
});
