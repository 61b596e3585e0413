import { Umpire, enter, link, showConnection } from "./umpire.js";

const COLUMNS = 7, ROWS = 6;
const $ = (s) => document.querySelector(s);
const board = $("#board");
const moves = [];          // every {player, column, row} in order
let outcome = null;        // {win: seat} or "draw"
let me = null;             // "red", "yellow", or null for a spectator
let shown = null;          // replay step shown, or null to follow live
const seated = new Set();  // seats taken: 0 red, 1 yellow
const online = new Set();  // seats whose player is connected
let spectators = 0;
let rematchWatch = null;   // the rematch's watch link, for spectators

for (let c = 0; c < COLUMNS; c++) {
  const column = document.createElement("div");
  column.className = "column";
  column.dataset.column = c;
  for (let r = 0; r < ROWS; r++) {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.column = c;
    cell.dataset.row = r;
    column.append(cell);
  }
  board.append(column);
}

function render() {
  const upto = shown ?? moves.length;
  for (const cell of board.querySelectorAll(".cell")) cell.className = "cell";
  const cell = (column, row) => board.querySelector(`.cell[data-column="${column}"][data-row="${row}"]`);
  for (const m of moves.slice(0, upto)) cell(m.column, m.row).classList.add(m.player);
  if (outcome && outcome.win !== undefined && upto === moves.length) {
    for (const [column, row] of winningFour(outcome.win === 0 ? "red" : "yellow")) cell(column, row).classList.add("win");
  }
  const slider = $("#step");
  slider.max = moves.length;
  if (shown === null) slider.value = moves.length;
  $("#step-label").textContent = shown === null ? "live" : `move ${upto} of ${moves.length}`;
  let status;
  if (outcome && outcome.win !== undefined) status = `${outcome.win === 0 ? "Red" : "Yellow"} wins!`;
  else if (outcome === "draw") status = "Draw: the board is full.";
  else if (outcome === "expired") status = "This game expired: nobody played it for too long.";
  else if (outcome) status = "The game is over.";
  else if (!seated.has(1)) {
    status = me ? `Waiting for an opponent (you are ${me}): share the join link.` : "Watching: waiting for a second player.";
  } else {
    const next = moves.length % 2 === 0 ? "red" : "yellow";
    status = me ? (next === me ? `Your turn (you are ${me}).` : `Waiting for ${next} (you are ${me}).`)
                : `Watching: ${next} to play.`;
    const away = [0, 1].filter((s) => seated.has(s) && !online.has(s)).map((s) => (s === 0 ? "Red" : "Yellow"));
    if (away.length) status += ` ${away.join(" and ")} ${away.length > 1 ? "are" : "is"} offline.`;
  }
  $("#audience").textContent = spectators ? `${spectators} watching` : "";
  $("#status").textContent = status;
  $(".rematch").hidden = !(outcome && (me || rematchWatch));
  document.body.dataset.moves = moves.length;
  document.body.dataset.outcome = outcome ? JSON.stringify(outcome) : "";
}

// The cells of a line of four of `player`'s discs, if there is one.
function winningFour(player) {
  const at = new Map(moves.filter((m) => m.player === player).map((m) => [`${m.column},${m.row}`, true]));
  for (const { column, row } of moves) {
    for (const [dc, dr] of [[1, 0], [0, 1], [1, 1], [1, -1]]) {
      const line = [0, 1, 2, 3].map((i) => [column + i * dc, row + i * dr]);
      if (line.every(([c, r]) => at.has(`${c},${r}`))) return line;
    }
  }
  return [];
}

const client = await new Umpire().connect();
let game = null;
client.onEvent((g, env) => {
  if (g !== game) return;
  const body = env.body;
  if (body.game) moves.push(body.game);
  if (body.seated) seated.add(body.seated.seat);
  if (body.left) { seated.delete(body.left.seat); online.delete(body.left.seat); }
  if (body.presence) {
    if (body.presence.online) online.add(body.presence.seat);
    else online.delete(body.presence.seat);
  }
  if (body.over) outcome = body.over.outcome;
  render();
});
client.onAudience((g, n) => { if (g === game) { spectators = n; render(); } });
client.onRematch((g, next, watch) => {
  if (g !== game) return;
  if (me) {
    $("#rematch-offer").textContent = "A rematch has started.";
    $("#rematch").textContent = "Play the rematch";
  } else {
    rematchWatch = link("connect4.html", "watch", watch);
    $("#rematch-watch").href = rematchWatch;
    $("#rematch-watch").hidden = false;
    $("#rematch").hidden = true;
  }
  render();
});
$("#rematch").addEventListener("click", async () => {
  $("#error").textContent = "";
  try {
    const answer = await client.rematch(game);
    // The rematch is a new game: open it with this tab's new seat token.
    location.search = `?token=${encodeURIComponent(answer.token)}`;
  } catch (e) { $("#error").textContent = e.message; }
});
showConnection(client, $("#connection"));

try {
  const answer = await enter(client, "connect4");
  if (answer.notice) $("#notice").textContent = answer.notice;
  game = answer.game;
  if (answer.type === "watching") {
    $(".replay").hidden = false;
  } else {
    me = answer.seat === 0 ? "red" : "yellow";
  }
  if (answer.join) {
    $(".share").hidden = false;
    $(".join").href = link("connect4.html", "join", answer.join);
    $(".watch").href = link("connect4.html", "watch", answer.watch);
  }
  render();
} catch (e) {
  $("#status").textContent = "";
  $("#error").textContent = e.message;
}

board.addEventListener("click", async ({ target }) => {
  const column = target.dataset.column;
  if (column === undefined || !me || !game) return;
  $("#error").textContent = "";
  try { await client.command(game, { column: Number(column) }); }
  catch (e) { $("#error").textContent = e.message; }
});

$("#step").addEventListener("input", ({ target }) => {
  const step = Number(target.value);
  shown = step >= moves.length ? null : step;
  render();
});
