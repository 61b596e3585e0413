"""Make games: CONNS connections each creating PER tally games (raise the limits first).

    python3 many_games.py ws://127.0.0.1:8111/ws CONNS PER
"""
import asyncio, json, sys, websockets
URL = sys.argv[1]; conns = int(sys.argv[2]); per = int(sys.argv[3])
async def one():
    async with websockets.connect(URL) as ws:
        for i in range(per):
            await ws.send(json.dumps({"type": "create", "kind": "tally", "config": {"seats": 2}, "ref": i}))
        got = 0; ok = 0
        while got < per:
            m = json.loads(await ws.recv())
            if m["type"] == "event": continue
            got += 1; ok += m["type"] == "created"
        return ok
async def main():
    n = 0
    for batch in range(0, conns, 50):
        n += sum(await asyncio.gather(*(one() for _ in range(min(50, conns - batch)))))
    print("created", n)
asyncio.run(main())
