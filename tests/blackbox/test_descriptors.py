"""Black-box tests of the descriptor budget (docs/API.md, "Connections and descriptors").

The server runs under `prlimit --nofile=LIMIT` (soft and hard: it cannot raise it), so its
connection caps are the ones derived from that limit: of the reserve kept from calls
(LIMIT / 4, at most 1024), HTTP connections get half, one address a quarter of that; SIP over
TCP a quarter, one address a quarter of that. The test floods the HTTP port and the SIP port
with idle TCP connections (sending nothing) from other loopback addresses than the one it
uses itself, more than the whole limit, and asserts, exactly where the numbers are known:
/healthz, GET and POST /v1/calls/{id}/end still answer, the end's BYE reaches the far end of
a live call, the server keeps exactly its caps of flood connections open (the rest are shut
at once or within the guard's second; a SIP peer that has spoken is kept over every silent
flood connection), and the idle timeouts close what is left. A stream of
GET /v1/events outlives an HTTP idle timeout shorter than its keepalives.

Run alone: `CALLPLANE_BIN=build/asan/callplane /usr/bin/python3 -m pytest -q
tests/blackbox/test_descriptors.py`.
"""

import errno
import resource
import socket
import time

import pytest

from receiver import SseReader
from sipp_peer import Sipp, free_port, wait_for, wait_for_call

LIMIT = 512
RESERVE = min(LIMIT // 4, 1024)
HTTP_CAP, SIP_CAP = RESERVE // 2, RESERVE // 4
HTTP_CAP_IP, SIP_CAP_IP = HTTP_CAP // 4, SIP_CAP // 4
IDLE_S = 8
HTTP_FLOOD = 200                       # from 127.0.0.2
SIP_FLOOD = 400                        # from 127.0.0.3
SIP_SPREAD = [("127.0.0.%d" % (10 + i), 10) for i in range(8)]   # 80 more, 10 each


@pytest.fixture(autouse=True)
def enough_descriptors():
    """The test holds ~700 sockets itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect_from(src, port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def is_open(s):
    """Whether the server still holds s: nothing to read and no end seen."""
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError as e:
        if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
            return False
        raise


def sip_options(src, port):
    """A SIP over TCP peer that has spoken: an OPTIONS sent from src and its answer read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    me = "%s:%d" % s.getsockname()
    s.sendall(("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\n"
               "Via: SIP/2.0/TCP %s;branch=z9hG4bK-guard-1\r\n"
               "From: <sip:peer@%s>;tag=1\r\nTo: <sip:127.0.0.1:%d>\r\n"
               "Call-ID: guard-1@%s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
               "Content-Length: 0\r\n\r\n" % (port, me, me, port, src)).encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, "the connection closed before the OPTIONS was answered: %r" % got
        got += chunk
    assert got.startswith(b"SIP/2.0 "), got
    s.setblocking(False)
    return s


def open_count(socks):
    return sum(1 for s in socks if is_open(s))


def test_floods_leave_the_api_and_calls_working(cp, peers, tmp_path):
    cp.setup_world()
    sip_port = free_port(udp=True, tcp=True)
    cp.argv_prefix = ["prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT), "--"]
    cp.start(extra_args=["--sip", "127.0.0.1:%d" % sip_port, "--http-idle-timeout", str(IDLE_S),
                         "--sip-tcp-idle-timeout", str(IDLE_S)])
    lim, = cp.log_events("connection_limits")
    assert lim == dict(lim, fd_limit=LIMIT, http_max_connections=HTTP_CAP,
                       http_max_connections_per_ip=HTTP_CAP_IP, http_idle_timeout_s=IDLE_S,
                       sip_tcp_max_connections=SIP_CAP, sip_tcp_max_connections_per_ip=SIP_CAP_IP,
                       sip_tcp_idle_timeout_s=IDLE_S), lim
    far = Sipp(tmp_path, "uas_answer_wait_bye.xml", timeout=60)
    peers.append(far)
    far.start()
    call = cp.create_call(to="sip:bob@%s" % far.uri_host)
    wait_for_call(lambda i: cp.request("GET", "/v1/calls/" + i, key=cp.key)[2], call["id"],
                  lambda c: c["status"] == "in_progress", 10, "the call is answered",
                  cp.stderr_text)
    held = []
    try:
        # a peer that has spoken is shed after every silent flood connection
        peer = sip_options("127.0.0.4", sip_port)
        held.append(peer)
        t0 = time.monotonic()
        http = connect_from("127.0.0.2", cp.port, HTTP_FLOOD)
        held += http
        sip = connect_from("127.0.0.3", sip_port, SIP_FLOOD)
        held += sip
        spread = {}
        for src, n in SIP_SPREAD:
            spread[src] = connect_from(src, sip_port, n)
            held += spread[src]
        flooded_s = time.monotonic() - t0
        # the guard runs each second: two sweeps later the SIP caps hold
        time.sleep(2.5)
        assert time.monotonic() - t0 < IDLE_S, "the flood took %.1f s: too slow to tell the " \
            "caps from the idle timeout" % flooded_s
        st, _h, body = cp.request("GET", "/healthz")
        assert st == 200, (st, body)
        st, _h, body = cp.request("GET", "/v1/calls/" + call["id"], key=cp.key)
        assert st == 200 and body["status"] == "in_progress", (st, body)
        # exactly the caps are held: one address's HTTP share, the SIP total (each address at
        # most its share)
        assert open_count(http) == HTTP_CAP_IP
        kept = {src: open_count(socks) for src, socks in spread.items()}
        kept["127.0.0.3"] = open_count(sip)
        assert is_open(peer), "the peer that spoke was shed before the silent flood"
        assert sum(kept.values()) == SIP_CAP - 1 and max(kept.values()) <= SIP_CAP_IP, kept
        sheds = cp.log_events("sip_tcp_shed")
        assert sheds and sheds[0]["max_connections"] == SIP_CAP, sheds
        st, _h, body = cp.request("POST", "/v1/calls/%s/end" % call["id"], key=cp.key, body={})
        assert st == 200 and body["status"] == "completed", (st, body)
        assert far.wait(15) == 0, far.report()
        assert len(far.received("BYE")) == 1
        # the idle timeouts close the rest (generous bounds: a loaded machine)
        assert wait_for(lambda: open_count(held) == 0, IDLE_S + 10), \
            "%d flood connections still open %d s after the idle timeout" % (
                open_count(held), 10)
        st, _h, _b = cp.request("GET", "/healthz")
        assert st == 200
    finally:
        for s in held:
            s.close()


def test_event_stream_outlives_the_http_idle_timeout(cp):
    cp.setup_world()
    cp.start(extra_args=["--http-idle-timeout", "1"])
    idle = connect_from("127.0.0.1", cp.port, 1)
    s = SseReader(cp.port, path="/v1/events", key=cp.key)
    s.open()
    try:
        assert s.status == 200
        s.start()
        time.sleep(4)          # four idle timeouts, no event, no keepalive (15 s apart)
        assert not is_open(idle[0]), "an idle connection outlived --http-idle-timeout 1"
        c = cp.create_call()
        ended = cp.end_call(c["id"])
        got = s.wait_events(1, 5)
        assert [e.json["data"]["id"] for e in got] == [ended["id"]], (got, s.error)
        assert not s.closed_by_peer
    finally:
        s.close()
        idle[0].close()


def test_given_caps_win_and_a_per_address_cap_never_exceeds_its_total(cp):
    cp.setup_world()
    sip_port = free_port(udp=True, tcp=True)
    cp.start(extra_args=["--sip", "127.0.0.1:%d" % sip_port, "--http-max-connections", "10",
                         "--http-max-connections-per-ip", "50", "--sip-tcp-max-connections",
                         "40", "--sip-tcp-idle-timeout", "77"])
    lim, = cp.log_events("connection_limits")
    assert (lim["http_max_connections"], lim["http_max_connections_per_ip"],
            lim["http_idle_timeout_s"], lim["sip_tcp_max_connections"],
            lim["sip_tcp_max_connections_per_ip"], lim["sip_tcp_idle_timeout_s"]) == \
        (10, 10, 30, 40, 10, 77), lim


@pytest.mark.parametrize("option,value,why", [
    ("--http-max-connections", "0", "--http-max-connections must be 1..1000000"),
    ("--http-max-connections-per-ip", "many", "--http-max-connections-per-ip must be 1..1000000"),
    ("--http-idle-timeout", "0", "--http-idle-timeout must be 1..86400"),
    ("--sip-tcp-max-connections", "-1", "--sip-tcp-max-connections must be 1..1000000"),
    ("--sip-tcp-max-connections-per-ip", "0",
     "--sip-tcp-max-connections-per-ip must be 1..1000000"),
    ("--sip-tcp-idle-timeout", "86401", "--sip-tcp-idle-timeout must be 1..86400"),
])
def test_connection_options_out_of_range_are_usage_errors(cp, option, value, why):
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_port(tcp=True),
                              "--sip", "127.0.0.1:%d" % free_port(udp=True, tcp=True),
                              option, value, timeout=5)
    assert (rc, out) == (2, ""), (rc, out, err)
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == ["error: " + why], err
