"""Clients that flood an umpire server with pings from a tight `await ws.send(...)` loop, which
never yields to asyncio's event loop while the socket takes the data: they read only when a
send blocks. Prints, as one JSON line, the close code and reason each client saw (1006 when
the connection broke without a close frame reaching the client).

    python3 flood.py ws://127.0.0.1:8080/ws CLIENTS
"""
import asyncio
import json
import sys

import websockets


async def flood(url):
    async with websockets.connect(url) as ws:
        async def spam():
            ping = json.dumps({"type": "ping"})
            try:
                while True:
                    await ws.send(ping)
            except websockets.ConnectionClosed:
                pass

        sender = asyncio.create_task(spam())
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        sender.cancel()
        return [ws.close_code, ws.close_reason]


async def main():
    url, clients = sys.argv[1], int(sys.argv[2])
    seen = await asyncio.gather(*(flood(url) for _ in range(clients)))
    print(json.dumps(seen))


asyncio.run(main())
