"""sipp as the far end of black-box SIP tests (standard library only).

`Sipp` runs one sipp process (UAS or UAC) on 127.0.0.1 over UDP (or TCP: transport="t1") with
one of the scenario files in tests/blackbox/sipp/, always bounded by `-timeout ... -timeout_error`
and `-m`, tracing every message (-trace_msg; trace=False leaves it out for a load), unexpected
messages (-trace_err) and statistics (-trace_stat) into the test's temporary directory, so tests
can assert on what the far end received and on sipp's exit code (0 = every call of the scenario
succeeded).  `stop()` kills it; call it in teardown.
"""

import csv
import os
import random
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO_DIR = os.path.join(HERE, "sipp")


def sipp_binary():
    return os.environ.get("SIPP_BIN") or shutil.which("sipp") or "/usr/bin/sipp"


def scenario_path(name):
    p = os.path.join(SCENARIO_DIR, name)
    assert os.path.exists(p), "missing sipp scenario %s" % p
    return p


# ---------------------------------------------------------------------------------- ports


def stop_group(proc, timeout):
    """SIGTERM to proc's process group, then SIGKILL if it has not exited within timeout
    seconds; reaps proc. Nothing happens to a proc that has exited."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def read_text(path):
    """A log file's text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def can_bind(kind, port):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def udp_free(port):
    return can_bind(socket.SOCK_DGRAM, port)


def tcp_free(port):
    return can_bind(socket.SOCK_STREAM, port)


_taken = set()   # ports handed out by this process (not reused within a run)


def free_port(udp=True, tcp=False, pairs=0, tries=200, lo=40000, hi=59990):
    """A port in lo..hi (40000..59990) that is free on UDP (and TCP if asked); with pairs=k,
    port+2, ..., port+2k must be free on UDP too (sipp's media sockets)."""
    for _ in range(tries):
        p = random.randrange(lo, hi, 2)
        span = [p + 2 * i for i in range(pairs + 1)]
        if any(q in _taken for q in span + [p + 1]):
            continue
        if udp and not all(udp_free(q) for q in span):
            continue
        if tcp and not tcp_free(p):
            continue
        _taken.update(span + [p + 1])
        return p
    raise AssertionError("no free port found in %d tries" % tries)


# A server restarted on the same SIP port (kill -9, then start) needs that port free again
# then: one above the kernel's ephemeral range (ip_local_port_range, 32768..60999), which no
# client connection of the tests can take in between, and above callplane's RTP ports.
SERVER_SIP_PORTS = (61000, 64990)


def _socket_inodes(pid):
    out = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return out
    for n in names:
        try:
            link = os.readlink(os.path.join(fd_dir, n))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def udp_bound(port, pid=None):
    """True when some socket (of process `pid`, if given) is bound to UDP `port`
    (per /proc/net/udp{,6})."""
    return _bound("udp", port, pid)


def tcp_listening(port, pid=None):
    """True when some socket (of process `pid`, if given) listens on TCP `port`
    (per /proc/net/tcp{,6}: state 0A)."""
    return _bound("tcp", port, pid, state="0A")


def _bound(proto, port, pid, state=None):
    inodes = _socket_inodes(pid) if pid is not None else None
    for name in ("/proc/net/" + proto, "/proc/net/%s6" % proto):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            if len(parts) > 9 and parts[1].rsplit(":", 1)[-1].upper() == "%04X" % port:
                if (inodes is None or parts[9] in inodes) and state in (None, parts[3]):
                    return True
    return False


def udp_local_addrs(port, pid):
    """The local addresses (text) on which process `pid` has a UDP socket bound to `port`
    (per /proc/net/udp{,6})."""
    inodes = _socket_inodes(pid)
    out = set()
    for name, family in (("/proc/net/udp", socket.AF_INET), ("/proc/net/udp6", socket.AF_INET6)):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            if len(parts) <= 9 or parts[9] not in inodes:
                continue
            addr, _c, hexport = parts[1].rpartition(":")
            if int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(addr)   # 32-bit words in host (little-endian) byte order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.add(socket.inet_ntop(family, raw))
    return out


# ------------------------------------------------------------------------------- messages


class SipMessage:
    """One traced message: direction ('recv'|'sent'), first line, headers, body."""

    def __init__(self, direction, text):
        self.direction = direction
        self.text = text
        head, _sep, body = text.replace("\r\n", "\n").partition("\n\n")
        lines = [ln for ln in head.split("\n")]
        while lines and not lines[0].strip():
            lines.pop(0)
        self.first_line = lines[0].strip() if lines else ""
        self.headers = []
        for ln in lines[1:]:
            if ":" in ln:
                k, _c, v = ln.partition(":")
                self.headers.append((k.strip().lower(), v.strip()))
        self.body = body.strip()

    @property
    def is_request(self):
        return not self.first_line.startswith("SIP/2.0")

    @property
    def method(self):
        return self.first_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self):
        if self.is_request:
            return None
        try:
            return int(self.first_line.split()[1])
        except (IndexError, ValueError):
            return None

    _compact = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact",
                "c": "content-type", "l": "content-length"}

    def header(self, name):
        """First value of header `name` (case-insensitive, compact forms understood) or None."""
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name or self._compact.get(k) == name]

    @property
    def call_id(self):
        return self.header("call-id")

    @property
    def cseq(self):
        v = self.header("cseq") or ""
        parts = v.split()
        return (int(parts[0]), parts[1]) if len(parts) == 2 and parts[0].isdigit() else (None, None)

    def __repr__(self):
        return "<%s %s>" % (self.direction, self.first_line)


_SEP_RE = re.compile(r"^-{20,} .*$", re.M)
_KIND_RE = re.compile(r"^\s*(UDP|TCP|TLS|SCTP) message (received|sent)[^\n]*\n", re.I)


def parse_message_file(text):
    out = []
    for chunk in _SEP_RE.split(text):
        m = _KIND_RE.match(chunk)
        if not m:
            continue
        direction = "recv" if m.group(2).lower() == "received" else "sent"
        body = chunk[m.end():]
        if body.strip():
            out.append(SipMessage(direction, body.strip("\n")))
    return out


# ----------------------------------------------------------------------------------- sipp


class Sipp:
    """One sipp process.  `uas=True`: listen on `port` for callplane's INVITEs.  Otherwise a
    UAC sending to `remote` ("127.0.0.1:PORT") with `service` as the Request-URI user part."""

    def __init__(self, workdir, scenario, name=None, port=None, remote=None, service=None,
                 calls=1, timeout=20, pause_ms=0, keys=None, extra=(), rate=None, subst=None,
                 transport="u1", trace=True, local_ip="127.0.0.1"):
        self.workdir = str(workdir)
        self.name = name or os.path.splitext(scenario)[0]
        self.fixed_port = port
        self.scenario = scenario_path(scenario)
        if subst:
            # template scenario: @KEY@ placeholders filled in before sipp loads it
            with open(self.scenario) as f:
                text = f.read()
            for k, v in subst.items():
                text = text.replace("@%s@" % k, str(v))
            assert not re.search(r"@[A-Z_]+@", text), "unfilled placeholder in %s" % scenario
            fd, self.scenario = tempfile.mkstemp(prefix=self.name + "-", suffix=".xml", dir=self.workdir)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        self.remote = remote
        self.service = service
        self.calls = calls
        self.timeout = timeout
        self.pause_ms = pause_ms
        self.keys = dict(keys or {})
        self.extra = list(extra)
        self.rate = rate
        self.transport = transport
        self.trace = trace
        self.local_ip = local_ip
        self.proc = None
        self.rc = None
        self._screen = None
        self._assign_ports()

    @property
    def tcp(self):
        return self.transport.startswith("t")

    def _assign_ports(self):
        self.port = self.fixed_port or free_port(udp=True, tcp=self.tcp)
        self.media_port = free_port(udp=True, pairs=2)
        self.control_port = free_port(udp=True)
        base = os.path.join(self.workdir, "sipp-%s-%d" % (self.name, self.port))
        self.message_file = base + "-messages.log"
        self.error_file = base + "-errors.log"
        self.stat_file = base + "-stats.csv"
        self.screen_file = base + "-screen.log"

    @property
    def uri_host(self):
        return "%s:%d" % (self.local_ip, self.port)

    def argv(self):
        a = [sipp_binary()]
        if self.remote:
            a.append(self.remote)
        a += ["-sf", self.scenario, "-i", self.local_ip, "-p", str(self.port), "-t", self.transport,
              "-m", str(self.calls), "-timeout", "%ds" % self.timeout, "-timeout_error",
              "-nostdin", "-mp", str(self.media_port), "-cp", str(self.control_port),
              "-d", str(self.pause_ms)]
        if self.trace:
            a += ["-trace_msg", "-message_file", self.message_file]
        a += ["-trace_err", "-error_file", self.error_file,
              "-trace_stat", "-stf", self.stat_file, "-fd", "1"]
        if self.service is not None:
            a += ["-s", self.service]
        if self.rate is not None:
            a += ["-r", str(self.rate)]
        for k, v in self.keys.items():
            a += ["-key", k, str(v)]
        return a + self.extra

    def start(self, wait_bound=True, attempts=3):
        """Start sipp; with wait_bound, wait (bounded) until its SIP port is bound.  A sipp that
        exits at once because a port was taken meanwhile is retried on fresh ports."""
        for attempt in range(attempts):
            self._screen = open(self.screen_file, "wb")
            self.proc = subprocess.Popen(self.argv(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=self._screen, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            if not wait_bound:
                return self
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if (tcp_listening if self.tcp else udp_bound)(self.port, pid=self.proc.pid):
                    return self
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError("sipp did not bind %s %d within 5 s\n%s"
                                     % ("TCP" if self.tcp else "UDP", self.port, self.screen()))
            self._close()
            rc = self.proc.returncode
            out = self.screen()
            bind_error = rc in (254, 255) and re.search(r"unable to bind|in use",
                                                         self._read(self.screen_file), re.I)
            if not bind_error or self.fixed_port or attempt == attempts - 1:
                raise AssertionError("sipp exited at once (%s): %s\n%s"
                                     % (rc, " ".join(self.argv()), out))
            self._assign_ports()
        raise AssertionError("unreachable")

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout=None):
        """Wait (bounded) for sipp to exit; returns its exit code (None if still running)."""
        if self.proc is None:
            return self.rc
        t = self.timeout + 5 if timeout is None else timeout
        try:
            self.rc = self.proc.wait(timeout=t)
        except subprocess.TimeoutExpired:
            return None
        self._close()
        return self.rc

    def stop(self):
        """Kill sipp (if running) and reap it.  Safe to call twice."""
        if self.proc is None:
            return self.rc
        stop_group(self.proc, 2)
        self.rc = self.proc.poll()
        self._close()
        return self.rc

    def _close(self):
        if self._screen is not None:
            self._screen.close()
            self._screen = None

    # ---- what happened -------------------------------------------------------------------
    def _read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def screen(self, n=40):
        return "\n".join(self._read(self.screen_file).splitlines()[-n:])

    def errors(self):
        return self._read(self.error_file)

    def messages(self):
        return parse_message_file(self._read(self.message_file))

    def received(self, method=None, status=None):
        out = []
        for m in self.messages():
            if m.direction != "recv":
                continue
            if method is not None and m.method != method:
                continue
            if status is not None and m.status != status:
                continue
            out.append(m)
        return out

    def sent(self, method=None, status=None):
        return [m for m in self.messages() if m.direction == "sent"
                and (method is None or m.method == method)
                and (status is None or m.status == status)]

    def stats(self):
        """The last row of sipp's statistics CSV as a dict ({} if none yet)."""
        text = self._read(self.stat_file)
        rows = list(csv.reader(text.splitlines(), delimiter=";"))
        rows = [r for r in rows if r]
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0], rows[-1]))

    def successful(self):
        try:
            return int(self.stats().get("SuccessfulCall(C)", "0"))
        except ValueError:
            return 0

    def failed(self):
        try:
            return int(self.stats().get("FailedCall(C)", "0"))
        except ValueError:
            return 0

    def report(self):
        """Everything worth printing when an assertion about sipp fails."""
        msgs = self.messages()
        lines = ["sipp %s (port %d) rc=%s successful=%s failed=%s" % (
            self.name, self.port, self.rc, self.successful(), self.failed())]
        lines += ["  %s %s" % (m.direction, m.first_line) for m in msgs[-30:]]
        err = self.errors().strip()
        if err:
            lines.append("errors:\n" + "\n".join(err.splitlines()[-30:]))
        lines.append("screen:\n" + self.screen(25))
        return "\n".join(lines)


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll `pred` until it returns a truthy value or `timeout` seconds pass; returns the last
    value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    v = pred()
    while not v and time.monotonic() < deadline:
        time.sleep(interval)
        v = pred()
    return v


def wait_for_call(get_call, call_id, pred, timeout, what, diagnostics):
    """Poll get_call(call_id) until pred(call) holds; returns the call, or fails naming `what`,
    the last call seen and diagnostics() (the server log and the peers' reports)."""
    last = [None]

    def check():
        last[0] = get_call(call_id)
        return pred(last[0])

    if not wait_for(check, timeout, interval=0.05):
        raise AssertionError("call %s: %s not reached within %ss; last: %s\n%s"
                             % (call_id, what, timeout, json.dumps(last[0]), diagnostics()))
    return last[0]


REASON_RE = re.compile(r'^Q\.850\s*;\s*cause=16\s*;\s*text="([^"]*)"$')


def reason_text(msg):
    """The text of `Reason: Q.850;cause=16;text="..."` on a traced message (asserts the form)."""
    vals = msg.header_all("reason")
    assert len(vals) == 1, "expected one Reason header on %s, got %r\n%s" % (msg.first_line, vals, msg.text)
    m = REASON_RE.match(vals[0])
    assert m, "Reason header %r is not Q.850;cause=16;text=\"...\"" % vals[0]
    return m.group(1)
