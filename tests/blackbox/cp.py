"""Black-box helpers for the callplane test suite (standard library only).

A `Callplane` instance owns one temporary directory and one database.  It can
run the admin CLI against that database, start/stop/kill/restart the server on
it, and talk HTTP to the running server.  Everything is bounded in time.
"""

import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary_path():
    b = os.environ.get("CALLPLANE_BIN", "build/callplane")
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return b


HTTP_TIMEOUT = 5.0
CLI_TIMEOUT = 15.0
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

CALL_KEYS = {
    "id", "agent_id", "direction", "from", "to", "status", "provider_call_id",
    "created_at", "answered_at", "ended_at", "duration_s", "end_reason",
    "sip_status", "max_duration_s", "metadata", "redacted_at", "has_recording", "recording_url",
}
ACTIVE_STATUSES = {"queued", "ringing", "in_progress"}
# an end's 200 (POST /v1/calls/{id}/end): the ended call plus goodbye_ms
END_KEYS = CALL_KEYS | {"goodbye_ms"}

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

SANITIZER_MARKERS = (
    "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
    "ThreadSanitizer", "MemorySanitizer", "runtime error:",
)


def is_uuid(s):
    return isinstance(s, str) and bool(UUID_RE.match(s))


def request_id(resp):
    """The response's X-Request-Id, asserted: 16 lowercase hex digits (src/http/request.c)."""
    rid = resp.headers.get("X-Request-Id")
    assert rid is not None and re.fullmatch("[0-9a-f]{16}", rid), (rid, resp.headers.items())
    return rid


def is_ts(s):
    return isinstance(s, str) and bool(TS_RE.match(s))


def parse_ts(s):
    assert is_ts(s), "not an RFC 3339 UTC timestamp with milliseconds: %r" % (s,)
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def assert_recent(s, slack_s=300):
    t = parse_ts(s)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < slack_s, "timestamp %s is not close to now (%s)" % (s, now)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def tail(text, n=60):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


class Response(tuple):
    """(status, headers, json-or-None) with `.raw` (bytes) as an extra attribute."""

    def __new__(cls, status, headers, body, raw):
        self = tuple.__new__(cls, (status, headers, body))
        self.raw = raw
        return self

    @classmethod
    def of(cls, status, headers, raw):
        """A response from its raw body: .json is the parsed body, or None if it is not JSON."""
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        return cls(status, headers, parsed, raw)

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    json = property(lambda self: self[2])

    def __repr__(self):
        raw = self.raw if len(self.raw) < 600 else self.raw[:600] + b"..."
        return "<Response %s %r>" % (self[0], raw)


def assert_error(resp, status, code):
    """Assert a documented error response: status and {"error": {"code", "message"}}."""
    st, _h, body = resp
    assert st == status, "expected %s %s, got %r" % (status, code, resp)
    assert isinstance(body, dict), "error body is not a JSON object: %r" % (resp,)
    assert set(body) == {"error"}, "error body keys: %r" % (body,)
    err = body["error"]
    assert isinstance(err, dict) and set(err) == {"code", "message"}, "error object: %r" % (body,)
    assert err["code"] == code, "expected code %s, got %r" % (code, body)
    assert isinstance(err["message"], str) and err["message"], "empty error message: %r" % (body,)


def assert_call_shape(call):
    assert isinstance(call, dict), "call is not an object: %r" % (call,)
    assert set(call) == CALL_KEYS, "call key set differs: missing %s, extra %s" % (
        sorted(CALL_KEYS - set(call)), sorted(set(call) - CALL_KEYS))
    assert is_uuid(call["id"]), call
    assert is_uuid(call["agent_id"]), call
    assert is_ts(call["created_at"]), call
    for k in ("answered_at", "ended_at", "redacted_at"):
        assert call[k] is None or is_ts(call[k]), (k, call)


def split_end(body):
    """An end's 200 body as docs/API.md has it: (the ended call, goodbye_ms), the call's
    shape and goodbye_ms (an int >= 0) asserted."""
    assert isinstance(body, dict) and set(body) == END_KEYS, "end response keys: %r" % (body,)
    call = dict(body)
    ms = call.pop("goodbye_ms")
    assert isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0, body
    assert_call_shape(call)
    return call, ms


def assert_duration(call):
    """duration_s is the whole seconds from answered_at to ended_at, rounded to nearest
    (docs/API.md; half a second rounds up), both timestamps to the millisecond."""
    d = call["duration_s"]
    assert isinstance(d, int) and not isinstance(d, bool), call
    ms = (parse_ts(call["ended_at"]) - parse_ts(call["answered_at"])) // datetime.timedelta(milliseconds=1)
    assert ms >= 0, call
    assert d == (ms + 500) // 1000, "duration_s %s for %d ms between answered_at and ended_at" % (d, ms)


class ExitCodeMismatch(AssertionError):
    """A command failed as it should, but with another exit code than docs/API.md gives."""


def assert_cli_error(result, code, message):
    """A failed admin command as docs/API.md has it: nothing on stdout, the one `error: ...`
    line `message` on stderr (log lines and usage text may come with it), exit `code` (2 for a
    usage error, 1 for anything else).  The exit code is checked last, and its mismatch alone
    raises ExitCodeMismatch."""
    rc, out, err = result
    assert out == "", "stdout must be empty on error: %r (exit %s, stderr %r)" % (out, rc, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert errors == [message], "expected the stderr line %r, got %r\nstderr: %s" % (message, errors, err)
    if rc != code:
        raise ExitCodeMismatch("exit %s, docs/API.md gives %s (stderr %r)" % (rc, code, message))


class CallplaneError(AssertionError):
    pass


class Callplane:
    """`webhook_allow_private` (default True): the harness is a lab whose webhook receivers
    listen on 127.0.0.1, so servers it starts get `--webhook-allow-private` and its
    `webhook create` commands the same switch (docs/API.md, "Webhook targets").  A test of the
    default sets it to False before it starts the server or creates a webhook."""

    def __init__(self, tmpdir):
        self.bin = binary_path()
        self.dir = str(tmpdir)
        self.db = os.path.join(self.dir, "callplane.db")
        self.proc = None
        self.port = None
        self.starts = 0
        self.stderr_path = None
        self.stderr_paths = []
        self._stderr_file = None
        self.exit_codes = []
        self.webhook_allow_private = True
        # an ssl.SSLContext: the API is HTTPS (serve --tls-cert/--tls-key); None: plain HTTP
        self.ssl_context = None
        # where the server's API listens (--http) and where requests go; a server started in a
        # network namespace of the test's (argv_prefix, e.g. ["ip", "netns", "exec", NS]) is
        # reached through an address of that namespace
        self.http_bind = "127.0.0.1"
        self.http_host = "127.0.0.1"
        self.argv_prefix = []

    # ------------------------------------------------------------------ CLI
    def cli_raw(self, *args, db=True, timeout=CLI_TIMEOUT, env=None, unshare=False):
        """Run the CLI; returns (rc, stdout, stderr).  --db is inserted after the
        subcommand words (i.e. before the first argument starting with '-' or, for
        `key revoke ID`, before the positional id) unless db=False. env: variables added
        to the environment. unshare: in a network namespace of its own (root).  With
        webhook_allow_private, `webhook create` gets --webhook-allow-private."""
        args = list(args)
        if (db and self.webhook_allow_private and args[:2] == ["webhook", "create"]
                and "--help" not in args and "--webhook-allow-private" not in args):
            args.append("--webhook-allow-private")
        argv = [self.bin] + args
        if db:
            argv = self._with_db(args)
            if not os.path.exists(self.db) and args and args[0] not in ("serve", "init"):
                self.init_db()    # admin commands refuse a database that does not exist
        if unshare:
            argv = ["unshare", "--net"] + argv
        p = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           env=dict(os.environ, **env) if env else None)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def init_db(self):
        """`callplane init`: creates the database the admin commands work on."""
        p = subprocess.run([self.bin, "init", "--db", self.db], cwd=self.dir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=CLI_TIMEOUT)
        assert p.returncode == 0, "callplane init exited %s: %r" % (p.returncode, p.stderr)

    def _with_db(self, args):
        # command words are the leading non-option words, at most two (e.g. "key revoke")
        n = 0
        while n < len(args) and n < 2 and not args[n].startswith("-"):
            n += 1
        return [self.bin] + args[:n] + ["--db", self.db] + args[n:]

    def cli(self, *args):
        rc, out, err = self.cli_raw(*args)
        assert rc == 0, "callplane %s exited %s\nstdout: %s\nstderr: %s" % (" ".join(args), rc, out, err)
        try:
            return json.loads(out)
        except ValueError:
            raise AssertionError("callplane %s printed non-JSON stdout: %r (stderr %r)" % (" ".join(args), out, err))

    def tenant_create(self, name, sip_uris="any"):
        """A tenant whose keys may dial raw sip: URIs to any host (the tests' far ends are
        loopback peers); sip_uris=None leaves the default (none)."""
        args = ["tenant", "create", "--name", name]
        if sip_uris is not None:
            args += ["--sip-uris", sip_uris]
        return self.cli(*args)["id"]

    def tenant_list(self):
        return self.cli("tenant", "list")

    def agent_create(self, tenant, name, number=None, max_duration=None):
        args = ["agent", "create", "--tenant", tenant, "--name", name]
        if number is not None:
            args += ["--number", number]
        if max_duration is not None:
            args += ["--max-duration", str(max_duration)]
        return self.cli(*args)["id"]

    def agent_list(self, tenant=None):
        args = ["agent", "list"]
        if tenant is not None:
            args += ["--tenant", tenant]
        return self.cli(*args)

    def key_create(self, tenant, number=None):
        """Returns (id, secret)."""
        args = ["key", "create", "--tenant", tenant]
        if number is not None:
            args += ["--number", number]
        out = self.cli(*args)
        return out["id"], out["key"]

    def key_create_operator(self):
        """An operator key (bound to no tenant). Returns (id, secret)."""
        out = self.cli("key", "create", "--operator")
        return out["id"], out["key"]

    def key_list(self, tenant=None):
        args = ["key", "list"]
        if tenant is not None:
            args += ["--tenant", tenant]
        return self.cli(*args)

    def key_revoke(self, key_id):
        return self.cli("key", "revoke", key_id)

    def setup_world(self, number="+15550001111"):
        """Tenant A with one agent (with a number) and one tenant-scoped key."""
        self.tenant = self.tenant_create("tenant-a")
        self.number = number
        self.agent = self.agent_create(self.tenant, "agent-a", number=number)
        self.key_id, self.key = self.key_create(self.tenant)
        return self

    # --------------------------------------------------------------- server
    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, which=None):
        path = self.stderr_path if which is None else which
        if not path or not os.path.exists(path):
            return ""
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def all_stderr(self):
        return "".join(self.stderr_text(p) for p in self.stderr_paths)

    def log_events(self, event):
        """The JSON log lines (of every start) whose "event" is `event`, in order."""
        out = []
        for ln in self.all_stderr().splitlines():
            try:
                j = json.loads(ln)
            except ValueError:
                continue
            if isinstance(j, dict) and j.get("event") == event:
                out.append(j)
        return out

    def start(self, extra_args=(), allow_any_inbound=True):
        """Start the server (--sip none unless extra_args give --sip).  With a SIP engine the
        tests' far ends call in from 127.0.0.1 without a trunk admitting it, so the server is
        started with --allow-any-inbound unless allow_any_inbound=False (the tests of who may
        reach us, docs/CARRIERS.md)."""
        assert not self.running, "server already running"
        extra_args = list(extra_args)
        if allow_any_inbound and "--sip" in extra_args \
                and extra_args[extra_args.index("--sip") + 1] != "none" \
                and "--allow-any-inbound" not in extra_args:
            extra_args.append("--allow-any-inbound")
        last_err = None
        for _attempt in range(3):
            self.starts += 1
            self.port = free_port()
            self.stderr_path = os.path.join(self.dir, "server-stderr-%d.log" % self.starts)
            self.stderr_paths.append(self.stderr_path)
            self._stderr_file = open(self.stderr_path, "wb")
            # no SIP engine unless the test asks for one (an option may be given only once)
            sip = [] if "--sip" in extra_args else ["--sip", "none"]
            argv = self.argv_prefix + [self.bin, "serve", "--db", self.db,
                                       "--http", "%s:%d" % (self.http_bind, self.port)] \
                + sip + list(extra_args)
            if self.webhook_allow_private and "--webhook-allow-private" not in extra_args:
                argv.append("--webhook-allow-private")
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._stderr_file)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    st, _h, body = self.request("GET", "/healthz", _check_alive=False, timeout=1.0)
                    if st == 200:
                        return self
                except (OSError, http.client.HTTPException):
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self._hard_kill()
                raise AssertionError("server did not answer GET /healthz 200 within %ss\nstderr:\n%s"
                                     % (START_TIMEOUT, tail(self.stderr_text())))
            rc = self.proc.returncode
            err = self.stderr_text()
            self._close_stderr()
            self.proc = None
            last_err = "server exited with %s during startup\nstderr:\n%s" % (rc, tail(err))
            if "in use" not in err.lower():
                break
        raise AssertionError(last_err)

    def _close_stderr(self):
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def _hard_kill(self):
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        self._close_stderr()

    def sanitizer_report(self, text=None):
        text = self.stderr_text() if text is None else text
        for m in SANITIZER_MARKERS:
            if m in text:
                return m
        return None

    def stop(self):
        """SIGTERM, wait (bounded), assert graceful exit code 0 and no sanitizer report."""
        assert self.proc is not None, "server not started"
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._hard_kill()
                self.proc = None
                raise AssertionError("server did not exit within %ss of SIGTERM\nstderr:\n%s"
                                     % (STOP_TIMEOUT, tail(self.stderr_text())))
        self._close_stderr()
        rc = proc.returncode
        self.exit_codes.append(rc)
        self.proc = None
        err = self.stderr_text()
        marker = self.sanitizer_report(err)
        if marker:
            raise AssertionError("sanitizer report (%s) in server stderr (exit %s):\n%s" % (marker, rc, tail(err, 80)))
        if rc != 0:
            why = "killed by signal %s" % (-rc,) if rc < 0 else "exit code %s" % rc
            raise AssertionError("server did not shut down gracefully (%s)\nstderr:\n%s" % (why, tail(err)))
        return rc

    def kill9(self):
        assert self.running, "server not running (stderr:\n%s)" % tail(self.stderr_text())
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._close_stderr()
        self.proc = None

    def restart(self):
        if self.running:
            self.stop()
        return self.start()

    def teardown(self):
        if self.proc is not None:
            self.stop()

    # ----------------------------------------------------------------- HTTP
    def request(self, method, path, body=None, key=None, header_style="bearer", headers=None,
                timeout=HTTP_TIMEOUT, _check_alive=True):
        """Returns Response (status, headers, parsed JSON or None); `.raw` holds the bytes."""
        hdrs = dict(headers or {})
        if key is not None:
            if header_style == "bearer":
                hdrs["Authorization"] = "Bearer " + key
            elif header_style == "x-api-key":
                hdrs["x-api-key"] = key
            else:
                raise ValueError(header_style)
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            else:
                data = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
        if self.ssl_context is not None:
            conn = http.client.HTTPSConnection(self.http_host, self.port, timeout=timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.http_host, self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                # the server may answer (e.g. 413) and close before reading the whole body;
                # still try to read its response below
                pass
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
            rheaders = resp.msg
        except (OSError, http.client.HTTPException) as e:
            if _check_alive and self.proc is not None and self.proc.poll() is not None:
                raise CallplaneError("server died (exit %s) during %s %s: %r\nstderr:\n%s"
                                     % (self.proc.returncode, method, path, e, tail(self.stderr_text(), 80)))
            raise
        finally:
            conn.close()
        return Response.of(status, rheaders, raw)

    # convenience wrappers -------------------------------------------------
    def create_call(self, key=None, agent=None, to="sip:bob@127.0.0.1:5070", expect=201, headers=None, **fields):
        body = {"agent_id": agent or self.agent, "to": to}
        body.update(fields)
        r = self.request("POST", "/v1/calls", body, key=key or self.key, headers=headers)
        if expect is not None:
            assert r.status == expect, "POST /v1/calls %r -> %r" % (body, r)
        return r.json

    def end_call(self, call_id, key=None, body=None, expect=200, headers=None, goodbye_ms=0):
        """POST /v1/calls/{id}/end.  A 200 is returned as the ended call (split_end), its
        goodbye_ms asserted equal to `goodbye_ms` (0: an immediate end; None: not checked);
        anything else as its JSON."""
        r = self.request("POST", "/v1/calls/%s/end" % call_id, body, key=key or self.key, headers=headers)
        if expect is not None:
            assert r.status == expect, "POST /v1/calls/%s/end -> %r" % (call_id, r)
        if r.status != 200:
            return r.json
        call, ms = split_end(r.json)
        assert goodbye_ms is None or ms == goodbye_ms, "goodbye_ms %d, expected %d: %r" % (ms, goodbye_ms, r)
        return call

    def get_call(self, call_id, key=None, expect=200):
        r = self.request("GET", "/v1/calls/%s" % call_id, key=key or self.key)
        if expect is not None:
            assert r.status == expect, "GET /v1/calls/%s -> %r" % (call_id, r)
        return r.json

    def list_calls(self, key=None, query="", expect=200):
        path = "/v1/calls" + (("?" + query) if query else "")
        r = self.request("GET", path, key=key or self.key)
        if expect is not None:
            assert r.status == expect, "GET %s -> %r" % (path, r)
        return r.json

    def list_all(self, key=None, query="", limit=200, max_pages=50):
        """Walk all pages; returns list of calls in order. Bounded."""
        out = []
        cursor = None
        for _ in range(max_pages):
            q = "limit=%d" % limit
            if query:
                q += "&" + query
            if cursor is not None:
                q += "&cursor=" + urlquote(cursor)
            page = self.list_calls(key=key, query=q)
            assert set(page) == {"data", "next_cursor"}, page
            out.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("pagination did not terminate within %d pages" % max_pages)


def urlquote(s):
    import urllib.parse
    return urllib.parse.quote(str(s), safe="")


def random_uuid():
    return str(uuid.uuid4())


# The api_keys table before migration 7 (operator keys): a test that builds a database of an
# older schema runs this on today's, and the migration must bring its keys back unchanged.
UNDO_OPERATOR_KEYS = """
CREATE TABLE api_keys_old (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), number TEXT,
  hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_at INTEGER NOT NULL,
  revoked_at INTEGER, rate_limit INTEGER);
INSERT INTO api_keys_old SELECT id, tenant_id, number, hash, prefix, created_at, revoked_at,
  rate_limit FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_old RENAME TO api_keys;
"""

# Migrations 9 (webhook signing), 10 (dial policies) and 12 (delivery leases) undone: a test
# that builds a database of an older schema runs this on today's first, and the migrations
# must add it all again.
UNDO_SIGNING_AND_DIAL = """
ALTER TABLE deliveries DROP COLUMN leased;
ALTER TABLE webhooks DROP COLUMN signing;
ALTER TABLE tenants DROP COLUMN sip_uris;
ALTER TABLE tenants DROP COLUMN allow_prefixes;
ALTER TABLE tenants DROP COLUMN deny_prefixes;
ALTER TABLE api_keys DROP COLUMN sip_uris;
"""

# Migrations 8 (trunks) and 11 (SRTP per trunk, a column of that table) undone: a test that
# builds a database of an older schema runs this on today's (before UNDO_OPERATOR_KEYS), and
# the migrations must add it all again.
UNDO_TRUNKS = """
ALTER TABLE agents DROP COLUMN trunk_id;
DROP TABLE trunk_status;
DROP TABLE trunk_generation;
DROP TABLE trunks;
"""
