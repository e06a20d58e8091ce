"""A test voice agent: the WebSocket server callplane's media bridge connects to.

`MediaAgent` runs a websockets (10.x API) server on 127.0.0.1:<free port> in a background
thread with its own asyncio loop.  It records every message it receives (parsed JSON, arrival
time, connection number) and every connection's open/close, and lets the test thread:

- wait for messages (`wait_event`), read the start message, the inbound audio (mu-law bytes or
  PCM ints) and the DTMF digits received;
- send audio (`send_media`, `send_tone`: 20 ms media messages paced in real time or as fast as
  possible, in the foreground or in the background), `send_mark`, `send_clear`, any JSON
  (`send_json`);
- close the open connection(s) (`close`), refuse new handshakes with HTTP 503 (`refuse`), close
  every new connection right after the handshake (`drop`) or after its first message
  (`hang_up`), accept again (`accept`), or stop listening so connecting fails at TCP level
  (`stop_listening`).

Messages follow Twilio Media Streams (see test_media.py for the contract).
"""

import asyncio
import base64
import http
import json
import threading
import time

import websockets

import media_audio

_ACCEPT, _REFUSE, _DROP, _HANG_UP = "accept", "refuse", "drop", "hang_up"


class Conn:
    def __init__(self, n, ws, path):
        self.n = n
        self.ws = ws
        self.path = path
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.close_code = None
        self.closed_by_agent = False


class MediaAgent:
    def __init__(self, path="/agent"):
        self.url_path = path
        self.port = None
        self.messages = []        # (monotonic time, conn number, dict)
        self.sent = []            # (monotonic time, conn number, dict)
        self.conns = []           # Conn
        self.refused = []         # (monotonic time, path)
        self.errors = []          # non-JSON frames etc.
        self.mode = _ACCEPT
        self._cv = threading.Condition()
        self._loop = None
        self._thread = None
        self._server = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self):
        return "ws://127.0.0.1:%d%s" % (self.port, self.url_path)

    def start(self, timeout=5.0):
        ready = threading.Event()
        err = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    websockets.serve(self._handler, "127.0.0.1", 0, process_request=self._process_request,
                                     ping_interval=None, max_size=2 ** 22))
                self.port = self._server.sockets[0].getsockname()[1]
            except Exception as e:   # noqa: BLE001 - reported to start()
                err.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="media-agent", daemon=True)
        self._thread.start()
        assert ready.wait(timeout), "media agent did not start"
        if err:
            raise err[0]
        return self

    def stop(self):
        if self._loop is None or self._loop.is_closed():
            return

        async def shutdown():
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 3)
            except asyncio.TimeoutError:
                pass

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        except Exception:   # noqa: BLE001 - best effort in teardown
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self, coro, timeout):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -------------------------------------------------------------- server side
    async def _process_request(self, path, _headers):
        if self.mode == _REFUSE:
            with self._cv:
                self.refused.append((time.monotonic(), path))
                self._cv.notify_all()
            return (http.HTTPStatus.SERVICE_UNAVAILABLE, [("Content-Type", "text/plain")], b"refused by the test agent\n")
        return None

    async def _handler(self, ws, path=None):
        path = path if path is not None else getattr(ws, "path", None)
        with self._cv:
            c = Conn(len(self.conns) + 1, ws, path)
            self.conns.append(c)
            self._cv.notify_all()
        try:
            if self.mode == _DROP:
                c.closed_by_agent = True
                await ws.close(1011, "dropped by the test agent")
                return
            async for frame in ws:
                if self.mode == _HANG_UP:
                    c.closed_by_agent = True
                    await ws.close(1000, "hung up by the test agent")
                    return
                now = time.monotonic()
                try:
                    msg = json.loads(frame)
                except (ValueError, TypeError):
                    with self._cv:
                        self.errors.append((now, c.n, frame))
                    continue
                with self._cv:
                    self.messages.append((now, c.n, msg))
                    self._cv.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            with self._cv:
                c.closed_at = time.monotonic()
                c.close_code = ws.close_code
                self._cv.notify_all()

    # ---------------------------------------------------------------- receiving
    def events(self, event=None, conn=None):
        with self._cv:
            return [m for _t, n, m in self.messages
                    if (event is None or m.get("event") == event) and (conn is None or n == conn)]

    def timed(self, event=None):
        """[(monotonic time, message)] of `event`."""
        with self._cv:
            return [(t, m) for t, _n, m in self.messages if event is None or m.get("event") == event]

    def _wait(self, check, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                r = check()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("media agent: %s not within %ss\n%s" % (what, timeout, self.report()))
                self._cv.wait(min(left, 0.2))

    def wait_event(self, event, timeout=5.0, n=1, pred=None, conn=None):
        """Wait (bounded) for `n` messages of `event` (matching pred); returns all of them."""
        def check():
            got = [m for _t, c, m in self.messages if m.get("event") == event
                   and (pred is None or pred(m)) and (conn is None or c == conn)]
            return got if len(got) >= n else None
        return self._wait(check, timeout, "%d x %r" % (n, event))

    def wait_connections(self, n=1, timeout=5.0):
        return self._wait(lambda: list(self.conns) if len(self.conns) >= n else None, timeout,
                          "%d connection(s)" % n)

    def wait_disconnects(self, n=1, timeout=5.0):
        def check():
            closed = [c for c in self.conns if c.closed_at is not None]
            return closed if len(closed) >= n else None
        return self._wait(check, timeout, "%d closed connection(s)" % n)

    def wait_refused(self, n=1, timeout=5.0):
        return self._wait(lambda: list(self.refused) if len(self.refused) >= n else None, timeout,
                          "%d refused handshake(s)" % n)

    def connection_count(self):
        with self._cv:
            return len(self.conns)

    def refused_count(self):
        with self._cv:
            return len(self.refused)

    @property
    def path(self):
        with self._cv:
            return self.conns[-1].path if self.conns else None

    def start_message(self, conn=None):
        s = self.events("start", conn)
        assert s, "no start message\n%s" % self.report()
        return s[-1]

    @property
    def stream_sid(self):
        s = self.events("start")
        return s[-1].get("streamSid") if s else None

    def inbound_ulaw(self, conn=None):
        """The mu-law bytes of every media message received, in arrival order."""
        return b"".join(base64.b64decode(m["media"]["payload"]) for m in self.events("media", conn))

    def inbound_pcm(self, conn=None):
        return media_audio.ulaw_decode(self.inbound_ulaw(conn))

    def wait_audio(self, seconds, timeout=None):
        """Wait until `seconds` of inbound audio arrived; returns its PCM."""
        need = int(seconds * media_audio.RATE) // media_audio.FRAME_SAMPLES
        self.wait_event("media", timeout if timeout is not None else seconds + 5, n=need)
        return self.inbound_pcm()

    def dtmf_digits(self):
        return "".join(m["dtmf"]["digit"] for m in self.events("dtmf"))

    # ------------------------------------------------------------------ sending
    def _open_conns(self):
        return [c for c in self.conns if c.closed_at is None and c.ws.open]

    async def _send(self, msg):
        conns = self._open_conns()
        assert conns, "media agent: no open connection to send on"
        c = conns[-1]
        await c.ws.send(json.dumps(msg))
        with self._cv:
            self.sent.append((time.monotonic(), c.n, msg))

    def send_json(self, msg, timeout=5.0):
        return self._run(self._send(msg), timeout)

    def media_message(self, frame):
        return {"event": "media", "streamSid": self.stream_sid,
                "media": {"payload": base64.b64encode(frame).decode()}}

    async def _send_frames(self, frames, realtime):
        t0 = time.monotonic()
        for i, fr in enumerate(frames):
            if realtime:
                delay = t0 + i * media_audio.FRAME_MS / 1000.0 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._send(self.media_message(fr))
        return len(frames)

    def send_media(self, ulaw, realtime=True, background=False):
        """Send mu-law bytes as 20 ms media messages.  realtime: one every 20 ms; else all at
        once.  background: return a concurrent.futures.Future instead of waiting."""
        fs = media_audio.frames(ulaw)
        fut = asyncio.run_coroutine_threadsafe(self._send_frames(fs, realtime), self._loop)
        if background:
            return fut
        return fut.result(len(fs) * 0.02 + 10)

    def send_tone(self, freq, seconds, realtime=True, background=False, amplitude=8000):
        return self.send_media(media_audio.tone_ulaw(freq, seconds, amplitude=amplitude), realtime, background)

    def send_mark(self, name):
        self.send_json({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        return time.monotonic()

    def send_clear(self):
        self.send_json({"event": "clear", "streamSid": self.stream_sid})
        return time.monotonic()

    # ------------------------------------------------------------ connection control
    def close(self, code=1000, reason="closed by the test agent"):
        """Close every open connection (a clean WebSocket close from the agent's side)."""
        async def do():
            for c in self._open_conns():
                c.closed_by_agent = True
                await c.ws.close(code, reason)
        self._run(do(), 5)

    def refuse(self):
        """New handshakes get HTTP 503 (open connections are untouched)."""
        self.mode = _REFUSE

    def drop(self):
        """New connections are accepted, then closed (1011) at once."""
        self.mode = _DROP

    def hang_up(self):
        """New connections are accepted, read until their first message ("connected"), then
        closed (1000): an agent that takes the call and hangs up straight away."""
        self.mode = _HANG_UP

    def accept(self):
        self.mode = _ACCEPT

    def stop_listening(self):
        """Close the listening socket: new connections fail with ECONNREFUSED."""
        async def do():
            self._server.server.close()
        self._run(do(), 5)

    # ---------------------------------------------------------------- reporting
    def report(self):
        with self._cv:
            counts = {}
            for _t, _n, m in self.messages:
                counts[m.get("event")] = counts.get(m.get("event"), 0) + 1
            conns = ["#%d %s open@%.2f closed@%s code=%s by_agent=%s" % (
                c.n, c.path, c.opened_at, "%.2f" % c.closed_at if c.closed_at else "-", c.close_code,
                c.closed_by_agent) for c in self.conns]
            firsts = [json.dumps(m)[:300] for _t, _n, m in self.messages if m.get("event") != "media"][:12]
        return "media agent %s mode=%s refused=%d\n  connections: %s\n  received: %s\n  non-media: %s" % (
            self.url, self.mode, len(self.refused), "; ".join(conns) or "none", counts, "\n    ".join(firsts))
