"""A small local HTTP receiver for black-box webhook tests (standard library only).

`Receiver` runs a threaded http.server on 127.0.0.1 (or `host`: an address of a network the test
built) on a free port, or a fixed one, in the test process.  It records every request (method,
path, headers, raw body, arrival time) and answers with a programmable sequence of statuses:
`plan([500, 500])` answers the next two requests 500, then the default (`default`, 200 unless
changed).  An entry may also be "hang" (do not answer until `hang_s` seconds pass or the
receiver is stopped) or a callable taking the request and returning a status.
`wait_for(n, timeout)` waits (bounded) until n matching requests arrived.

A request is recorded when it arrives, before it is answered, and the server records an
attempt's outcome only once it has the answer: that a request arrived says nothing about the
delivery's row.  Tests wait for the row (the deliveries listing) before they assert it;
`answer_delay_s` (seconds, or a callable taking the request and returning them) makes a
receiver answer that long after the arrival, to widen that gap on purpose.

`Tarpit` is the hostile endpoint: it accepts connections and never answers, holding each one
until it is stopped (what a wedged or malicious receiver looks like to the webhook worker).

Also: `SseReader`, a bounded Server-Sent Events client for GET /v1/events (a thread reading a
raw socket with timeouts), used by the live-event tests.
"""

import hashlib
import hmac
import http.server
import json
import re
import socket
import threading
import time

HANG = "hang"


class Request:
    """One recorded request."""

    def __init__(self, method, path, headers, body, t, mono, answered):
        self.method = method
        self.path = path
        self.headers = headers          # {lower-case name: value} (last one wins)
        self.header_list = None         # [(name, value)] as received
        self.body = body                # raw bytes
        self.t = t                      # time.time() when fully read
        self.mono = mono                # time.monotonic() when fully read
        self.answered = answered        # the status we answered (or HANG)

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def event_id(self):
        return self.header("Callplane-Event-Id")

    def __repr__(self):
        b = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return "<%s %s -> %s event=%s %r>" % (self.method, self.path, self.answered, self.event_id, b)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Receiver:
    def __init__(self, port=0, default=200, hang_s=30.0, answer_delay_s=0.0, host="127.0.0.1"):
        self.host = host
        self.port = port
        self.default = default
        self.hang_s = hang_s
        self.answer_delay_s = answer_delay_s
        self.requests = []
        self._plan = []
        self._cv = threading.Condition()
        self._stop_ev = threading.Event()
        self._srv = None
        self._thread = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        assert self._srv is None, "receiver already running"
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n > 0 else b""
                t, mono = time.time(), time.monotonic()
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, self.path, hdrs, body, t, mono, None)
                req.header_list = list(self.headers.items())
                action = recv._next_action(req)
                req.answered = action
                with recv._cv:
                    recv.requests.append(req)
                    recv._cv.notify_all()
                if action == HANG:
                    recv._stop_ev.wait(recv.hang_s)
                    self.close_connection = True
                    return
                delay = recv.answer_delay_s
                if callable(delay):
                    delay = delay(req)
                if delay > 0:
                    recv._stop_ev.wait(delay)
                payload = b'{"ok":true}' if 200 <= action < 300 else b'{"ok":false}'
                try:
                    self.send_response(action)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle

        self._stop_ev.clear()
        reserved = getattr(self, "_reserved", None)
        if reserved is not None:
            # listen on the socket reserve() bound: no other process can have taken the port
            self._srv = _Server((self.host, self.port), Handler, bind_and_activate=False)
            self._srv.socket.close()
            self._srv.socket = reserved
            self._srv.server_address = reserved.getsockname()
            self._srv.server_activate()
            self._reserved = None
        else:
            self._srv = _Server((self.host, self.port), Handler)
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def reserve(self):
        """Takes a port without listening on it: connections are refused (as to a closed port)
        until start() listens on this very socket, so the port cannot be taken meanwhile."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._reserved = sock
        self.port = sock.getsockname()[1]
        return self.port

    def stop(self):
        """Stop answering and close the listening socket (the port becomes closed)."""
        self._stop_ev.set()
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self):
        return self._srv is not None

    @property
    def url(self):
        return "http://%s:%d/hook" % (self.host, self.port)

    def url_for(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    # ------------------------------------------------------------------ behaviour
    def plan(self, statuses):
        """Answer the next requests with these statuses (ints, HANG or callables), in order."""
        with self._cv:
            self._plan = list(statuses)

    def set_default(self, status):
        with self._cv:
            self.default = status

    def _next_action(self, req):
        with self._cv:
            a = self._plan.pop(0) if self._plan else self.default
        if callable(a):
            a = a(req)
        return a

    # ------------------------------------------------------------------ inspection
    def snapshot(self, pred=None):
        with self._cv:
            reqs = list(self.requests)
        return [r for r in reqs if pred is None or pred(r)]

    def clear(self):
        with self._cv:
            self.requests = []

    def wait_for(self, n, timeout, pred=None, what="requests"):
        """Wait until at least n recorded requests satisfy pred (all if None); returns them.
        Raises AssertionError (listing what arrived) when timeout seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                got = [r for r in self.requests if pred is None or pred(r)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("receiver: %d of %d %s within %.1fs; all received: %r"
                                         % (len(got), n, what, timeout, self.requests))
                self._cv.wait(min(left, 0.2))

    def quiet(self, seconds, pred=None):
        """Sleep `seconds` and return the matching requests that arrived meanwhile."""
        before = len(self.snapshot())
        time.sleep(seconds)
        return [r for r in self.snapshot()[before:] if pred is None or pred(r)]


class Tarpit:
    """Accepts TCP connections on 127.0.0.1 and never answers them.  `accepted` counts the
    connections taken so far; `held()` how many are still open (it reads and discards what
    arrived, to notice the ones the peer closed).  stop() closes everything."""

    def __init__(self):
        self.accepted = 0
        self._conns = []
        self._lock = threading.Lock()
        self._stopping = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = None

    def start(self):
        self._sock.listen(1024)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self):
        while not self._stopping:
            try:
                c, _addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            c.setblocking(False)
            with self._lock:
                self._conns.append(c)
                self.accepted += 1

    def url_for(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def held(self):
        with self._lock:
            still = []
            for c in self._conns:
                try:
                    while True:
                        data = c.recv(65536)
                        if not data:
                            c.close()
                            break
                except BlockingIOError:
                    still.append(c)
                except OSError:
                    c.close()
            self._conns = still
            return len(still)

    def wait_accepted(self, n, timeout):
        """Wait (bounded) until n connections were accepted; returns the count."""
        deadline = time.monotonic() + timeout
        while self.accepted < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.accepted

    def stop(self):
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self._sock.close()
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns = []


# ------------------------------------------------------------------------ signatures

SIG_RE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")


def expected_signature(secret, t, body):
    """HEX(HMAC-SHA256(secret, t + "." + body)) as documented."""
    msg = str(t).encode() + b"." + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def verify_signature(req, secret, max_skew_s=60):
    """Assert Callplane-Signature on `req` is "t=UNIX,v1=HEX" with HEX the HMAC of the raw
    body under `secret`, and t is within max_skew_s of now.  Returns t."""
    sig = req.header("Callplane-Signature")
    assert sig is not None, "no Callplane-Signature header: %r" % (req.header_list,)
    m = SIG_RE.match(sig)
    assert m, "Callplane-Signature %r is not t=UNIX,v1=<64 hex>" % sig
    t = int(m.group(1))
    want = expected_signature(secret, t, req.body)
    assert hmac.compare_digest(want, m.group(2)), (
        "signature mismatch: header %r, expected v1=%s for body %r" % (sig, want, req.body[:200]))
    assert abs(time.time() - t) <= max_skew_s, "signature t=%d is not recent (now %.0f)" % (t, time.time())
    return t


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


# ---------------------------------------------------------------------------- SSE client


class SseEvent:
    def __init__(self, fields, comments, t):
        self.fields = fields          # [(name, value)]
        self.comments = comments
        self.t = t

    def get(self, name):
        for k, v in self.fields:
            if k == name:
                return v
        return None

    @property
    def id(self):
        return self.get("id")

    @property
    def event(self):
        return self.get("event")

    @property
    def data(self):
        vals = [v for k, v in self.fields if k == "data"]
        return "\n".join(vals) if vals else None

    @property
    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return "<sse id=%s event=%s data=%.120s>" % (self.id, self.event, self.data)


class SseReader:
    """GET a Server-Sent Events stream over a raw socket (bounded by timeouts) and parse it in
    a background thread.  `status`/`headers` come from the response head (read in open());
    `events` collects dispatched events, `comments` comment lines."""

    def __init__(self, port, path="/v1/events", key=None, headers=None, host="127.0.0.1"):
        self.port = port
        self.path = path
        self.key = key
        self.extra = dict(headers or {})
        self.host = host
        self.sock = None
        self.status = None
        self.headers = {}
        self.head_raw = b""
        self.body_prefix = b""
        self.events = []
        self.comments = []
        self.closed_by_peer = False
        self.error = None
        self._buf = b""
        self._cv = threading.Condition()
        self._thread = None
        self._stopping = False
        self.chunked = False

    def open(self, timeout=5.0):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        hdrs = {"Host": "%s:%d" % (self.host, self.port), "Accept": "text/event-stream"}
        if self.key is not None:
            hdrs["Authorization"] = "Bearer " + self.key
        hdrs.update(self.extra)
        req = "GET %s HTTP/1.1\r\n" % self.path + "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        s.sendall(req.encode())
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                s.close()
                raise AssertionError("no response head within %ss: %r" % (timeout, data))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _sep, rest = data.partition(b"\r\n\r\n")
        self.head_raw = head
        lines = head.decode("iso-8859-1").split("\r\n")
        assert lines and lines[0].startswith("HTTP/1."), "bad status line: %r" % (data[:200],)
        self.status = int(lines[0].split()[1])
        for ln in lines[1:]:
            k, _c, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.sock = s
        self.body_prefix = rest
        return self

    def read_body(self, timeout=5.0):
        """For a non-stream (error) response: read the body (Content-Length) and close."""
        n = int(self.headers.get("content-length", "0"))
        data = self.body_prefix
        deadline = time.monotonic() + timeout
        while len(data) < n and time.monotonic() < deadline:
            c = self.sock.recv(65536)
            if not c:
                break
            data += c
        self.close()
        return data[:n] if n else data

    def start(self):
        """Start the background reader (after open() returned a 200)."""
        self.sock.settimeout(0.2)
        self._feed_raw(self.body_prefix)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    # chunked decoding state
    _raw = b""

    def _feed_raw(self, data):
        if not self.chunked:
            self._feed(data)
            return
        self._raw += data
        while True:
            line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                return
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                self.error = "bad chunk size line %r" % line
                return
            if size == 0:
                self._raw = b""
                self.closed_by_peer = True
                return
            if len(rest) < size + 2:
                return
            self._feed(rest[:size])
            self._raw = rest[size + 2:]

    def _run(self):
        while not self._stopping:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stopping:
                    self.error = repr(e)
                break
            if not data:
                with self._cv:
                    self.closed_by_peer = True
                    self._cv.notify_all()
                break
            self._feed_raw(data)
        with self._cv:
            self._cv.notify_all()

    def _feed(self, data):
        with self._cv:
            self._buf += data
            while True:
                # events are separated by a blank line (\n\n; \r\n tolerated)
                norm = self._buf.replace(b"\r\n", b"\n")
                idx = norm.find(b"\n\n")
                if idx < 0:
                    self._buf = norm
                    break
                block, self._buf = norm[:idx], norm[idx + 2:]
                fields, comments = [], []
                for ln in block.decode("utf-8", "replace").split("\n"):
                    if ln.startswith(":"):
                        comments.append(ln[1:].strip())
                        continue
                    k, _c, v = ln.partition(":")
                    if v.startswith(" "):
                        v = v[1:]
                    fields.append((k, v))
                if comments:
                    self.comments.extend(comments)
                if fields:
                    self.events.append(SseEvent(fields, comments, time.monotonic()))
            self._cv.notify_all()

    def wait_events(self, n, timeout, pred=None):
        """Wait until at least n events (matching pred) arrived; returns them (may be fewer
        on timeout - the caller asserts)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                got = [e for e in self.events if pred is None or pred(e)]
                if len(got) >= n or self.closed_by_peer or self.error:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    return got
                self._cv.wait(min(left, 0.2))

    def wait_comment(self, timeout):
        deadline = time.monotonic() + timeout
        with self._cv:
            while not self.comments and time.monotonic() < deadline and not self.closed_by_peer:
                self._cv.wait(0.1)
            return list(self.comments)

    def wait_closed(self, timeout):
        deadline = time.monotonic() + timeout
        with self._cv:
            while not self.closed_by_peer and self.error is None and time.monotonic() < deadline:
                self._cv.wait(0.1)
            return self.closed_by_peer or self.error is not None

    def close(self):
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
