"""Issue 8 probe, from outside: what a client keeps across a disconnect and a server restart.

    python3 sessions.py path/to/umpire PORT

Starts `umpire serve` on a fresh data folder, plays and watches a tally game, stops the server
with SIGTERM while a spectator is away, starts it again, and checks that the spectator's
`resume` gives exactly the events it missed; then that `subscribe` and `umpire publish` work,
and that a notice to an absent user waits for them. Prints one line per check.
"""
import asyncio, json, os, signal, subprocess, sys, tempfile, time
import websockets

BIN, PORT = sys.argv[1], int(sys.argv[2])
URL = f"ws://127.0.0.1:{PORT}/ws"
DATA = tempfile.mkdtemp(prefix="umpire-probe-")


def serve():
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{PORT}", "--data", DATA, "--admin-token", "probe"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "error"})
    proc.stdout.readline()  # "umpire is serving on ..."
    return proc


def stop(proc):
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return time.time() - t


class Client:
    def __init__(self, ws):
        self.ws, self.ref, self.events, self.session, self.seen = ws, 0, [], None, {}

    async def request(self, msg):
        self.ref += 1
        await self.ws.send(json.dumps({**msg, "ref": self.ref}))
        while True:
            m = await self.recv()
            if m.get("ref") == self.ref:
                return m

    async def recv(self):
        m = json.loads(await self.ws.recv())
        if m.get("session"):
            self.session = m["session"]
        if m["type"] == "event":
            self.events.append(m["env"])
            self.seen[str(m["game"])] = m["env"]["seq"]
        return m

    async def until(self, n):
        while len(self.events) < n:
            await asyncio.wait_for(self.recv(), 10)


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")
    return ok


async def main():
    server = serve()
    async with websockets.connect(URL) as p, websockets.connect(URL) as f:
        player, fan = Client(p), Client(f)
        game = await player.request({"type": "create", "kind": "tally", "config": {"seats": 2}})
        await fan.request({"type": "watch", "key": game["watch"]})
        for _ in range(3):
            await player.request({"type": "command", "game": game["game"], "cmd": {"add": 1}})
        await fan.until(6)
        fan_session, fan_seen = fan.session, dict(fan.seen)
    took = stop(server)
    check("SIGTERM exits", True, f"{took:.2f} s")

    server = serve()
    try:
        async with websockets.connect(URL) as p:
            player = Client(p)
            back = await player.request({"type": "join", "key": game["token"]})
            check("seat token gives the keys back", bool(back.get("join")) and bool(back.get("watch")))
            await player.request({"type": "command", "game": game["game"], "cmd": {"add": 10}})
            async with websockets.connect(URL) as f:
                fan = Client(f)
                resumed = await fan.request({"type": "resume", "session": fan_session, "seen": fan_seen})
                check("resume after a restart answers resumed", resumed["type"] == "resumed", json.dumps(resumed)[:120])
                await fan.until(3)
                seqs = [e["seq"] for e in fan.events]
                check("exactly the missed events", seqs == [7, 8, 9], f"seqs {seqs}, bodies {[list(e['body'])[0] for e in fan.events]}")
                async with websockets.connect(URL) as t:
                    again = await Client(t).request({"type": "resume", "session": fan_session})
                check("a used session token is refused clearly", again.get("code") == "not_found", again.get("message", ""))

                sub = await fan.request({"type": "subscribe", "channel": "broadcast"})
                check("subscribe broadcast", sub["type"] == "subscribed", json.dumps(sub)[:100])
                out = subprocess.run([BIN, "publish", "--server", f"http://127.0.0.1:{PORT}", "--admin-token", "probe",
                                      "broadcast", '{"text": "hello from umpire publish"}'], capture_output=True, text=True)
                check("umpire publish", out.returncode == 0, out.stdout.strip() or out.stderr.strip())
                await fan.until(4)
                check("the notice arrives", fan.events[-1]["body"]["notice"]["data"]["text"] == "hello from umpire publish")
                user = await fan.request({"type": "subscribe", "channel": "user:ada"})
                check("user:ada is ada's alone", user.get("code") == "forbidden", user.get("message", ""))
    finally:
        stop(server)


asyncio.run(main())
