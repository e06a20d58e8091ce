"""A scripted browser for web calls: what the page (src/http/web_call.html) does on the wire,
without a browser.

`FakeBrowser` opens GET /web/ws?call_id=...&token=... with the websockets client (10.x API) in
a background thread with its own asyncio loop, sends the hello with its sample rate, and records
every message from callplane (text: parsed JSON; binary: 16-bit little-endian PCM at its rate)
with the close code.  The test thread can send audio (`send_tone`: 20 ms messages at real time,
in the background), close the socket (`close`: a close frame, as a closed tab sends), drop it
without a word (`abort`: the TCP connection reset, as a crashed browser) or go silent
(`go_silent`: stop sending audio, keep the socket open, as a browser whose network vanished
would look until TCP gives up).  `handshake()` tries a connection and returns the HTTP status of
a refused one (e.g. 401) or 101.  Every wait is bounded.
"""

import asyncio
import json
import math
import struct
import threading
import time

import websockets


def pcm_tone(freq, seconds, rate, amplitude=8000, start=0):
    n = int(round(seconds * rate))
    return [int(round(amplitude * math.sin(2 * math.pi * freq * (start + i) / rate))) for i in range(n)]


def handshake(port, query, timeout=5.0):
    """Connects to /web/ws?query and returns the handshake's status: 101 when it upgraded (the
    connection is closed again at once), else the refusal's status."""
    async def attempt():
        try:
            ws = await asyncio.wait_for(websockets.connect("ws://127.0.0.1:%d/web/ws?%s" % (port, query),
                                                           open_timeout=timeout), timeout)
        except websockets.InvalidStatusCode as e:
            return e.status_code
        await ws.close()
        return 101
    return asyncio.run(attempt())


class FakeBrowser:
    def __init__(self, port, call_id, token, rate=16000, hello=True):
        self.url = "ws://127.0.0.1:%d/web/ws?call_id=%s&token=%s" % (port, call_id, token)
        self.rate = rate
        self.hello = hello
        self.texts = []            # (monotonic time, parsed JSON, samples of audio received before)
        self.audio = []            # PCM samples received, in order
        self.binaries = 0
        self.close_code = None
        self.closed_at = None
        self.refused = None        # the HTTP status of a refused handshake
        self._cv = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ws = None
        self._silent = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-browser", daemon=True)
        self._thread.start()

    def _run(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -------------------------------------------------------------------------- life
    def connect(self, timeout=5.0):
        """Opens the socket and sends the hello; returns self (refused: self.refused is set)."""
        async def go():
            try:
                self._ws = await websockets.connect(self.url, open_timeout=timeout, max_size=2 ** 22,
                                                    ping_interval=None)
            except websockets.InvalidStatusCode as e:
                self.refused = e.status_code
                return
            if self.hello:
                await self._ws.send(json.dumps({"event": "hello", "sample_rate": self.rate}))
            self._loop.create_task(self._reader())
        self._run(go(), timeout + 5)
        return self

    async def _reader(self):
        ws = self._ws
        try:
            async for m in ws:
                with self._cv:
                    if isinstance(m, str):
                        self.texts.append((time.monotonic(), json.loads(m), len(self.audio)))
                    else:
                        self.binaries += 1
                        self.audio.extend(struct.unpack("<%dh" % (len(m) // 2), m))
                    self._cv.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            with self._cv:
                self.close_code = ws.close_code
                self.closed_at = time.monotonic()
                self._cv.notify_all()

    def stop(self):
        async def shut():
            if self._ws is not None and not self._ws.closed:
                self._ws.transport.abort()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()
        try:
            self._run(shut(), 5)
        except Exception:   # noqa: BLE001 - teardown is best effort
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def close(self, code=1000):
        async def go():
            await self._ws.close(code, "page closed")
        self._run(go())

    def abort(self):
        """The connection reset, without a close frame."""
        async def go():
            self._ws.transport.abort()
        self._run(go())

    def go_silent(self):
        self._silent = True

    # ------------------------------------------------------------------------ sending
    def send_tone(self, freq, seconds, amplitude=8000):
        """Sends `seconds` of a sine at this browser's rate as 20 ms binary messages, one every
        20 ms, in the background; returns a concurrent.futures.Future."""
        n = self.rate // 50

        async def go():
            t0 = time.monotonic()
            for k in range(int(seconds * 50)):
                if self._silent or self._ws.closed:
                    return k
                delay = t0 + k * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                samples = pcm_tone(freq, n / self.rate, self.rate, amplitude, start=k * n)
                await self._ws.send(struct.pack("<%dh" % n, *samples))
            return int(seconds * 50)
        return asyncio.run_coroutine_threadsafe(go(), self._loop)

    def send_raw(self, data):
        async def go():
            await self._ws.send(data)
        self._run(go())

    # ---------------------------------------------------------------------- receiving
    def _wait(self, check, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                r = check()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake browser: %s not within %ss (texts %r, %d binaries, close %r)"
                                         % (what, timeout, [m for _t, m, _n in self.texts], self.binaries,
                                            self.close_code))
                self._cv.wait(min(left, 0.2))

    def events(self, name=None):
        with self._cv:
            return [m for _t, m, _n in self.texts if name is None or m.get("event") == name]

    def wait_event(self, name, timeout=5.0):
        return self._wait(lambda: [m for _t, m, _n in self.texts if m.get("event") == name], timeout,
                          "event %r" % name)[0]

    def audio_before(self, name):
        """The audio received before the first `name` event."""
        with self._cv:
            for _t, m, n in self.texts:
                if m.get("event") == name:
                    return list(self.audio[:n])
        raise AssertionError("fake browser: no %r event" % name)

    def wait_closed(self, timeout=5.0):
        self._wait(lambda: self.closed_at is not None, timeout, "the close")
        return self.close_code

    def wait_audio(self, seconds, timeout=None):
        need = int(seconds * self.rate)
        self._wait(lambda: len(self.audio) >= need, timeout if timeout is not None else seconds + 5,
                   "%s s of audio" % seconds)
        with self._cv:
            return list(self.audio)

    def received(self):
        with self._cv:
            return list(self.audio)
