"""Issue 16 probe, from outside: N guest connections, one after another, each subscribing to
its own `session` channel and closing; then what the server holds, from /metrics.

    python3 guests.py HOST:PORT [N]

Run `umpire inspect --data DIR stats` after stopping the server to see what the folder keeps.
"""
import asyncio, json, sys, time, urllib.request

import websockets

ADDR = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def gauges():
    text = urllib.request.urlopen(f"http://{ADDR}/metrics").read().decode()
    want = ("umpire_channels ", "umpire_kept_sessions ")
    return {l.split()[0]: int(l.split()[1]) for l in text.splitlines() if l.startswith(want)}


async def main():
    seen, started = {}, time.monotonic()
    for i in range(N):
        async with websockets.connect(f"ws://{ADDR}/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "channel": "session", "ref": 1}))
            while True:
                m = json.loads(await ws.recv())
                if m.get("ref") == 1:
                    break
            k = m.get("code") or m["type"]
            seen[k] = seen.get(k, 0) + 1
    took = time.monotonic() - started
    print(f"{N} guests subscribed to session and left in {took:.2f} s: {seen}; now {gauges()}")


asyncio.run(main())
