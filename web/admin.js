// The monitor: games in memory, connections, a game's log with a replay slider, and the key
// metrics as small live charts. Everything but /metrics needs the admin token.

const $ = (s) => document.querySelector(s);
const EVERY_MS = 2000;
const SAMPLES = 60;

let token = sessionStorage.getItem("umpire-admin-token") || "";
$("#token").value = token;

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(e) {
  $("#error").textContent = e ? String(e.message || e) : "";
}

const ago = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
};

function cell(text, numeric) {
  const td = document.createElement("td");
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  if (numeric) td.className = "n";
  return td;
}

// --- charts from /metrics --------------------------------------------------------------

const charts = [
  { name: "umpire_connections_open", label: "connections open" },
  { name: "umpire_live_games", label: "games in memory" },
  { name: "umpire_sleeping_games", label: "games asleep" },
  { name: "umpire_events_appended_total", label: "events / s", rate: true },
  { name: "umpire_messages_out_total", label: "messages out / s", rate: true },
  { name: "umpire_subscribers_lagged_total", label: "lagging subscribers / s", rate: true },
];
for (const c of charts) {
  c.values = [];
  const box = document.createElement("div");
  box.className = "chart";
  box.innerHTML = `<span>${c.label}</span><b>–</b><canvas width="300" height="60"></canvas>`;
  c.number = box.querySelector("b");
  c.canvas = box.querySelector("canvas");
  $("#charts").append(box);
}

function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

function draw(c) {
  const ctx = c.canvas.getContext("2d");
  const { width, height } = c.canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...c.values);
  ctx.strokeStyle = "#2857b8";
  ctx.lineWidth = 2;
  ctx.beginPath();
  c.values.forEach((v, i) => {
    const x = (i / (SAMPLES - 1)) * width;
    const y = height - 2 - (v / max) * (height - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

let previous = null;
async function sampleMetrics() {
  const text = await (await fetch("metrics")).text();
  const now = performance.now();
  const values = parseMetrics(text);
  for (const c of charts) {
    const raw = values.get(c.name) ?? 0;
    let v = raw;
    if (c.rate) {
      const before = previous?.values.get(c.name);
      v = before === undefined ? 0 : ((raw - before) * 1000) / (now - previous.at);
    }
    c.values.push(v);
    if (c.values.length > SAMPLES) c.values.shift();
    c.number.textContent = Math.round(v).toLocaleString();
    draw(c);
  }
  previous = { values, at: now };
}

// --- games and connections ------------------------------------------------------------

function gameLink(id) {
  const a = document.createElement("a");
  a.className = "game";
  a.textContent = id;
  a.onclick = () => openGame(id);
  return a;
}

function players(g) {
  const span = document.createElement("span");
  g.players.forEach((p, seat) => {
    if (p === null) return;
    const who = document.createElement("span");
    const online = g.online.includes(seat);
    who.textContent = `${p}${online ? " ●" : ""}  `;
    if (online) who.className = "on";
    span.append(who);
  });
  return span;
}

async function overview() {
  const o = await api("api/admin/overview");
  const now = Date.now();
  $("#counts").textContent = `${o.live} in memory, ${o.sleeping} asleep`;
  const games = $("#games tbody");
  games.replaceChildren(
    ...o.games.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.game = g.game;
      tr.append(
        cell(gameLink(g.game)),
        cell(g.kind + (g.over ? " (over)" : "")),
        cell(players(g)),
        cell(g.spectators, true),
        cell(g.version, true),
        cell(ago(now - g.created), true),
        cell(`${ago(now - g.last_event)} ago`, true),
        cell(g.timers, true),
      );
      return tr;
    }),
  );
  const connections = $("#connections tbody");
  connections.replaceChildren(
    ...o.connections.map((c) => {
      const tr = document.createElement("tr");
      const behind = cell(c.behind_ms === null ? "" : ago(c.behind_ms), true);
      if (c.behind_ms !== null) behind.classList.add("behind");
      tr.append(
        cell(c.session, true),
        cell(c.peer),
        cell(c.user ?? "guest"),
        cell(c.games, true),
        cell(c.queued, true),
        behind,
        cell(ago(now - c.opened), true),
      );
      return tr;
    }),
  );
}

// --- one game's log with the replay slider ---------------------------------------------

let shownGame = null;

async function openGame(id, at) {
  const query = at === undefined ? "" : `?at=${at}`;
  const h = await api(`api/admin/games/${id}${query}`);
  shownGame = id;
  $("#game").value = id;
  $("#history").hidden = false;
  const slider = $("#slider");
  slider.max = h.version;
  slider.value = h.at;
  $("#at").textContent = `${h.kind} game ${h.game}: state after event ${h.at} of ${h.version}`;
  $("#events").replaceChildren(
    ...h.events.map((env) => {
      const li = document.createElement("li");
      li.value = env.seq;
      li.textContent = `${new Date(env.at).toLocaleTimeString()} ${JSON.stringify(env.by)} ${JSON.stringify(env.body)}`;
      if (env.seq > h.at) li.className = "later";
      return li;
    }),
  );
  $("#state").textContent = JSON.stringify(h.state, null, 2);
}

$("#slider").addEventListener("input", (e) => {
  if (shownGame !== null) openGame(shownGame, Number(e.target.value)).catch(showError);
});

$("#pick").addEventListener("submit", (e) => {
  e.preventDefault();
  openGame(Number($("#game").value)).then(() => showError(null), showError);
});

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token").value;
  sessionStorage.setItem("umpire-admin-token", token);
  refresh();
});

async function refresh() {
  try {
    await overview();
    showError(null);
  } catch (e) {
    showError(e);
  }
}

async function tick() {
  await sampleMetrics().catch(showError);
  if (token) await refresh();
}

tick();
setInterval(tick, EVERY_MS);
