"""Issue 16 probe, from outside: how long after a client breaks a limit it sees the server's
close code and reason.

    python3 closes.py ws://127.0.0.1:8080/ws [RUNS] [--json]

For each case, RUNS connections (default 20), one after another, each break the limit once;
prints, per case, the close codes seen and the median and slowest time from the first
offending send to the end of the connection (a `websockets` client reports the close only
then). One after another: a flooding client's loop never yields while its sends go through,
so floods in one process would take turns.
"""
import asyncio, json, statistics, sys, time

import websockets

URL = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
JSON = "--json" in sys.argv


async def huge(ws, size):
    await ws.send("x" * size)


async def not_utf8(ws):
    # A text frame whose payload is not UTF-8: websockets sends bytes as given with text=True.
    await ws.send(b"\xff\xfe\xfd", text=True)


async def flood(ws, yielding):
    """Pings as fast as the client can send them. `yielding`: the loop lets the client's
    reader run between sends (as a browser's event loop does); without, it reads only once a
    send blocks."""
    ping = json.dumps({"type": "ping"})
    try:
        while True:
            await ws.send(ping)
            if yielding:
                await asyncio.sleep(0)
    except websockets.ConnectionClosed:
        pass


async def one(case):
    async with websockets.connect(URL, max_size=None, close_timeout=30) as ws:
        started = time.monotonic()
        sender = asyncio.create_task(case(ws))
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        took = time.monotonic() - started
        sender.cancel()
        rcvd = ws.protocol.close_rcvd
        return (rcvd.code if rcvd else 1006), (rcvd.reason if rcvd else ""), took


async def main():
    cases = [
        ("1 MiB message", lambda ws: huge(ws, 1 << 20)),
        ("70 KiB message", lambda ws: huge(ws, 70 * 1024)),
        ("invalid UTF-8", not_utf8),
        ("flood", lambda ws: flood(ws, True)),
        ("flood, no yield", lambda ws: flood(ws, False)),
    ]
    if "--skip-no-yield" in sys.argv:
        cases.pop()
    out = {}
    for name, case in cases:
        seen = [await one(case) for _ in range(RUNS)]
        out[name] = seen
        if JSON:
            continue
        codes = {}
        for code, reason, _ in seen:
            codes[f"{code} {reason}"] = codes.get(f"{code} {reason}", 0) + 1
        times = [t for _, _, t in seen]
        print(f"{name:16} {RUNS} runs: {codes}; close seen after median "
              f"{statistics.median(times):.3f} s, slowest {max(times):.3f} s")
    if JSON:
        print(json.dumps(out))


asyncio.run(main())
