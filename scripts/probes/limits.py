"""Issue 7 probes, from outside: many creates, huge seat counts, a long cid.

    python3 limits.py ws://127.0.0.1:8111/ws SERVER_PID creates seats cid

RSS is read from /proc/SERVER_PID. Flooding clients: tests/python/flood.py URL CLIENTS.
"""
import asyncio, json, sys, time
import websockets

URL = sys.argv[1]
PID = int(sys.argv[2])

def rss():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

async def req(ws, msg):
    await ws.send(json.dumps(msg))
    while True:
        m = json.loads(await ws.recv())
        if m.get("type") != "event":
            return m

async def creates():
    async with websockets.connect(URL, max_size=None) as ws:
        before = rss(); t = time.time(); codes = {}
        for i in range(20000):
            await ws.send(json.dumps({"type": "create", "kind": "tally", "config": {"seats": 2}, "ref": i}))
        got = 0
        while got < 20000:
            try:
                m = json.loads(await ws.recv())
            except websockets.ConnectionClosed as e:
                codes[f"closed {ws.close_code} {ws.close_reason}"] = 1
                break
            if m.get("type") == "event": continue
            got += 1
            k = m.get("code") or m["type"]
            codes[k] = codes.get(k, 0) + 1
        print(f"20,000 creates from one connection: {codes} in {time.time()-t:.1f} s, RSS {before} -> {rss()} MB")

async def big_seats():
    async with websockets.connect(URL) as ws:
        before = rss(); codes = {}
        for kind in ["tally", "colony"]:
            for i in range(300):
                m = await req(ws, {"type": "create", "kind": kind, "config": {"seats": 65535}, "ref": i})
                k = m.get("code") or m["type"]
                codes[(kind, k)] = codes.get((kind, k), 0) + 1
        print(f"600 creates with seats 65535: {codes}, RSS {before} -> {rss()} MB")
        m = await req(ws, {"type": "create", "kind": "tally", "config": {"seats": 1024}, "ref": 1})
        print("seats 1024:", m["type"])

async def long_cid():
    async with websockets.connect(URL) as ws:
        m = await req(ws, {"type": "create", "kind": "tally", "config": {"seats": 2}, "ref": 1})
        if m["type"] != "created":
            print("create:", m); return
        m = await req(ws, {"type": "command", "game": m["game"], "cmd": {"add": 1}, "cid": "x" * 60000, "ref": 2})
        print("64 KB cid:", m.get("code"), "-", m.get("message"))

async def main():
    what = sys.argv[3:]
    if "creates" in what: await creates()
    if "seats" in what: await big_seats()
    if "cid" in what: await long_cid()

asyncio.run(main())
