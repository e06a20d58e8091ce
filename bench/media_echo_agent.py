"""An echo voice agent for bench/media.py: a websockets server (Debian's python3-websockets,
run it with /usr/bin/python3) that sends every media frame it receives straight back, so each
call's audio crosses callplane twice (RTP in -> agent -> RTP out). Every second it writes its
counters to the file named on the command line: {"streams", "in", "out", "marks"}."""

import asyncio
import json
import sys

import websockets

PORT = int(sys.argv[1])
OUT = sys.argv[2]
stats = {"streams": 0, "open": 0, "in": 0, "out": 0}


async def handler(ws, path=None):
    stats["streams"] += 1
    stats["open"] += 1
    sid = None
    try:
        async for msg in ws:
            m = json.loads(msg)
            ev = m.get("event")
            if ev == "start":
                sid = m["streamSid"]
            elif ev == "media":
                stats["in"] += 1
                await ws.send(json.dumps({"event": "media", "streamSid": sid,
                                          "media": {"payload": m["media"]["payload"]}}))
                stats["out"] += 1
    except websockets.ConnectionClosed:
        pass
    finally:
        stats["open"] -= 1


async def report():
    while True:
        with open(OUT + ".tmp", "w") as f:
            json.dump(stats, f)
        import os
        os.replace(OUT + ".tmp", OUT)
        await asyncio.sleep(1)


async def main():
    async with websockets.serve(handler, "127.0.0.1", PORT, max_queue=None):
        await report()


asyncio.run(main())
