"""Issue 10 probe, from outside: what a client is shown of a new game's `created` record.

    python3 seed.py PORT

Against a running `umpire serve`, creates one game of each bundled kind over WebSocket (JSON)
and prints the body of its `created` event. A game's rng seed must not be in it: whoever knew
it could predict every roll. A kind the server does not have is printed as refused.
"""
import asyncio, json, sys
import websockets

KINDS = [("connect4", None), ("tally", None), ("colony", None), ("highcard", {"hand": 3})]


async def main(port):
    url = f"ws://127.0.0.1:{port}/ws"
    async with websockets.connect(url, subprotocols=["umpire.json"]) as ws:
        for kind, config in KINDS:
            await ws.send(json.dumps({"type": "create", "kind": kind, "config": config, "ref": kind}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "error":
                    print(kind, "refused:", msg["code"])
                    break
                if msg.get("type") == "event" and msg["env"]["seq"] == 1:
                    print(kind, "created shows:", json.dumps(msg["env"]["body"]["created"]))
                    break


asyncio.run(main(sys.argv[1]))
