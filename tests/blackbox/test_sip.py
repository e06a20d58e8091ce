"""Black-box SIP tests: callplane against sipp far ends on 127.0.0.1 (UDP).

Each test starts callplane with `--sip 127.0.0.1:PORT` and one or more sipp processes running
scenarios from tests/blackbox/sipp/.  What the far end received is read from sipp's message trace;
sipp's exit code (0 = every call of its scenario succeeded) is asserted where the scenario
defines success.  Every wait is bounded.  The `cp` fixture's teardown asserts that the server
exits gracefully (SIGTERM -> exit 0, no sanitizer report).
"""

import concurrent.futures
import errno
import json
import re
import socket
import time

import pytest

from cp import ACTIVE_STATUSES, assert_call_shape, assert_duration, assert_error, urlquote
from sipp_peer import (SERVER_SIP_PORTS, Sipp, free_port, reason_text, udp_bound, udp_local_addrs, wait_for,
                       wait_for_call)

NUMBER = "+15550001111"
RING_TIMEOUT = 2


# ------------------------------------------------------------------------------- fixtures


class SipWorld:
    """A callplane with a SIP engine plus the sipp peers of one test."""

    def __init__(self, cp, tmp_path):
        self.cp = cp
        self.dir = tmp_path
        self.sip_port = None
        self.peers = []
        self.extra = []

    # -- server
    def start(self, *extra, ring_timeout=RING_TIMEOUT):
        if self.sip_port is None:
            lo, hi = SERVER_SIP_PORTS
            self.sip_port = free_port(udp=True, tcp=True, lo=lo, hi=hi)
        self.extra = ["--sip", "127.0.0.1:%d" % self.sip_port,
                      "--ring-timeout", str(ring_timeout)] + list(extra)
        self.cp.start(extra_args=self.extra)
        return self

    def restart(self):
        """Start again (after stop() or kill9()) with the same SIP arguments."""
        self.cp.start(extra_args=self.extra)

    # -- far ends
    def uas(self, scenario, calls=1, timeout=15, pause_ms=0, **kw):
        s = Sipp(self.dir, scenario, calls=calls, timeout=timeout, pause_ms=pause_ms, **kw)
        self.peers.append(s)
        return s.start()

    def uac(self, scenario, service=NUMBER, calls=1, timeout=15, **kw):
        s = Sipp(self.dir, scenario, remote="127.0.0.1:%d" % self.sip_port, service=service,
                 calls=calls, timeout=timeout, **kw)
        self.peers.append(s)
        return s.start()

    def close(self):
        for s in self.peers:
            s.stop()

    # -- API helpers
    def dial(self, peer, **fields):
        return self.cp.create_call(to="sip:bob@%s" % peer.uri_host, **fields)

    def call(self, call_id):
        return self.cp.get_call(call_id)

    def wait_call(self, call_id, pred, timeout=5.0, what="condition"):
        """Poll GET /v1/calls/{id} until pred(call) holds; returns the call or fails."""
        return wait_for_call(self.cp.get_call, call_id, pred, timeout, what, self.diagnostics)

    def diagnostics(self):
        """Server log (without request lines) and every peer's report, for failure messages."""
        lines = [ln for ln in self.cp.stderr_text().splitlines() if '"http_request"' not in ln]
        out = ["server stderr (no http_request lines):"] + lines[-30:]
        for p in self.peers:
            out.append(p.report())
        return "\n".join(out)

    def wait_status(self, call_id, status, timeout=5.0):
        return self.wait_call(call_id, lambda c: c["status"] == status, timeout,
                              "status %s" % status)

    def active(self):
        return self.cp.list_all(query="status=active")


@pytest.fixture
def sip(cp, tmp_path):
    """Tenant A / agent +15550001111 / key; the server is NOT started (call sip.start())."""
    cp.setup_world(number=NUMBER)
    w = SipWorld(cp, tmp_path)
    yield w
    w.close()


def sipp_done(peer, timeout=None, expect_rc=0):
    """Wait (bounded) for sipp to exit and assert its exit code."""
    rc = peer.wait(timeout)
    if rc is None:
        report = peer.report()
        peer.stop()
        raise AssertionError("sipp still running after %ss\n%s"
                             % (timeout if timeout is not None else peer.timeout + 5, report))
    assert rc == expect_rc, "sipp exit code %s, expected %s\n%s" % (rc, expect_rc, peer.report())
    return rc




def sdp_media(body):
    """(port, [payload types]) of the first m=audio line."""
    for ln in body.splitlines():
        ln = ln.strip()
        if ln.startswith("m=audio "):
            parts = ln.split()
            return int(parts[1]), [int(p) for p in parts[3:] if p.isdigit()]
    raise AssertionError("no m=audio line in SDP:\n%s" % body)


def sdp_addresses(body):
    """((addrtype, address) of o=, (addrtype, address) of c=) of an SDP body."""
    o = c = None
    for ln in body.splitlines():
        parts = ln.strip()[2:].split()
        if ln.startswith("o=") and len(parts) == 6:
            o = (parts[4], parts[5])
        elif ln.startswith("c=") and len(parts) == 3:
            c = (parts[1], parts[2])
    assert o and c, "SDP without o= or c= line:\n%s" % body
    return o, c


def assert_rtp_bound(pid, addr, port):
    """The server has a UDP socket on addr:port (/proc/net/udp*), and nobody else can bind it."""
    assert addr in udp_local_addrs(port, pid), \
        "RTP %s port %d from the SDP is not bound by the server (it has %r on that port)" % (
            addr, port, sorted(udp_local_addrs(port, pid)))
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((addr, port))
    except OSError as e:
        assert e.errno == errno.EADDRINUSE, e
    else:
        raise AssertionError("could bind %s port %d, which the SDP says is the call's" % (addr, port))
    finally:
        s.close()


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def concurrently(fn, items, workers=20):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items, timeout=60))


# ----------------------------------------------------------------------- listening sockets


def test_sip_listens_on_udp_and_tcp(sip):
    sip.start()
    assert udp_bound(sip.sip_port, pid=sip.cp.proc.pid), "callplane has no socket on UDP %d" % sip.sip_port
    s = socket.create_connection(("127.0.0.1", sip.sip_port), timeout=2)
    s.close()


# ---------------------------------------------------------------------------- outbound


def test_outbound_answered_then_api_end_sends_bye(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", pause_ms=800)
    call = sip.dial(far)
    assert_call_shape(call)
    assert call["status"] == "queued", call
    assert call["direction"] == "outbound", call
    pcid = call["provider_call_id"]
    assert isinstance(pcid, str) and pcid, call

    ringing = sip.wait_status(call["id"], "ringing", timeout=3)
    assert ringing["answered_at"] is None, ringing

    # the INVITE the far end got: Call-ID = provider_call_id, SDP offer PCMU+PCMA on a bound port
    invites = wait_for(lambda: far.received("INVITE"), 2)
    assert len(invites) == 1, far.report()
    inv = invites[0]
    assert inv.call_id == pcid, "INVITE Call-ID %r != provider_call_id %r" % (inv.call_id, pcid)
    assert (inv.header("content-type") or "").lower().startswith("application/sdp"), inv.text
    port, pts = sdp_media(inv.body)
    assert 0 in pts and 8 in pts, "SDP offer lacks PCMU/PCMA: %r\n%s" % (pts, inv.body)
    assert 1024 <= port <= 65535, inv.body
    assert udp_bound(port), "the RTP port %d offered in the SDP is not bound" % port

    up = sip.wait_status(call["id"], "in_progress", timeout=4)
    assert up["sip_status"] == 200, up
    assert up["answered_at"] is not None and up["ended_at"] is None, up
    assert wait_for(lambda: far.received("ACK"), 2), "no ACK for the 200\n" + far.report()
    time.sleep(0.6)

    ended = sip.cp.end_call(call["id"])
    assert_call_shape(ended)
    assert ended["status"] == "completed", ended
    assert ended["end_reason"] == "ended_by_api", ended
    assert ended["sip_status"] == 200, ended
    assert_duration(ended)

    sipp_done(far)
    byes = far.received("BYE")
    assert len(byes) == 1, far.report()
    assert byes[0].call_id == pcid
    assert reason_text(byes[0]) == "ended_by_api"

    got = sip.call(call["id"])
    assert got["status"] == "completed" and got["end_reason"] == "ended_by_api", got
    assert sip.active() == []


def test_outbound_api_end_with_reason_puts_it_in_bye(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)
    ended = sip.cp.end_call(call["id"], body={"reason": "user_hangup"})
    assert ended["status"] == "completed" and ended["end_reason"] == "user_hangup", ended
    sipp_done(far)
    byes = far.received("BYE")
    assert len(byes) == 1, far.report()
    assert reason_text(byes[0]) == "user_hangup"


@pytest.mark.parametrize("code,phrase,status,end_reason", [
    (486, "Busy Here", "busy", "busy"),
    (600, "Busy Everywhere", "busy", "busy"),
    (408, "Request Timeout", "no_answer", "no_answer"),
    (480, "Temporarily Unavailable", "no_answer", "no_answer"),
    (404, "Not Found", "failed", "failed"),
    (503, "Service Unavailable", "failed", "failed"),
])
def test_outbound_final_response_maps_to_status(sip, code, phrase, status, end_reason):
    sip.start()
    far = sip.uas("uas_reject.xml", pause_ms=300, subst={"STATUS": "%d %s" % (code, phrase)})
    call = sip.dial(far)
    sip.wait_status(call["id"], "ringing", timeout=3)
    done = sip.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 4, "an end")
    assert done["status"] == status, done
    assert done["end_reason"] == end_reason, done
    assert done["sip_status"] == code, done
    assert done["answered_at"] is None and done["duration_s"] is None, done
    assert done["ended_at"] is not None, done
    sipp_done(far)   # the final response was ACKed
    assert far.received("BYE") == [] and far.received("CANCEL") == [], far.report()
    assert sip.active() == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_outbound_to_a_closed_port_fails_unreachable_at_once(sip, transport):
    """Nothing listens at the far end's port: the TCP connection is refused, or an ICMP
    port-unreachable answers the UDP INVITE. The INVITE never reached a far end, so the call
    fails at once (well within the 10 s ring timeout) with end_reason unreachable and the 503
    sofia-sip makes itself, which a far end's own 503 (the test above) does not give."""
    sip.start(ring_timeout=10)
    port = free_port(udp=True, tcp=True)
    call = sip.cp.create_call(to="sip:bob@127.0.0.1:%d;transport=%s" % (port, transport))
    done = sip.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 5, "an end")
    assert (done["status"], done["end_reason"], done["sip_status"], done["answered_at"]) == \
        ("failed", "unreachable", 503, None), done
    [line] = sip.cp.log_events("sip_unreachable")
    assert (line["call_id"], line["tls"], line["why"]) == \
        (call["id"], False, "Service Unavailable"), line


def test_ring_timeout_sends_cancel_and_ends_no_answer(sip):
    sip.start(ring_timeout=RING_TIMEOUT)
    far = sip.uas("uas_ring_wait_cancel.xml")
    t0 = time.monotonic()
    call = sip.dial(far)
    sip.wait_status(call["id"], "ringing", timeout=2)
    done = sip.wait_status(call["id"], "no_answer", timeout=RING_TIMEOUT + 3)
    elapsed = time.monotonic() - t0
    assert elapsed >= RING_TIMEOUT - 0.3, "ended after %.2f s, ring timeout is %s s" % (elapsed, RING_TIMEOUT)
    assert done["end_reason"] == "no_answer", done
    assert done["answered_at"] is None and done["duration_s"] is None, done
    done = sip.wait_call(call["id"], lambda c: c["sip_status"] == 487, 3, "sip_status 487")
    assert done["status"] == "no_answer" and done["end_reason"] == "no_answer", done
    sipp_done(far)   # CANCEL received, 487 ACKed
    cancels = far.received("CANCEL")
    # one CANCEL: over UDP it may be retransmitted, with the same CSeq
    assert len({(c.call_id, c.cseq) for c in cancels}) == 1, far.report()
    assert cancels[0].call_id == call["provider_call_id"], far.report()
    assert far.received("BYE") == [], far.report()


def test_api_end_of_ringing_call_sends_cancel(sip):
    sip.start(ring_timeout=30)
    far = sip.uas("uas_ring_wait_cancel.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "ringing", timeout=3)
    ended = sip.cp.end_call(call["id"])
    assert_call_shape(ended)
    assert ended["status"] == "canceled", ended
    assert ended["end_reason"] == "ended_by_api", ended
    assert ended["answered_at"] is None and ended["duration_s"] is None, ended
    sipp_done(far)   # the far end got the CANCEL, answered 200 + 487, and got the ACK
    cancels = far.received("CANCEL")
    # one CANCEL: over UDP it may be retransmitted, with the same CSeq
    assert len({(c.call_id, c.cseq) for c in cancels}) == 1, far.report()
    assert cancels[0].call_id == call["provider_call_id"], far.report()
    assert far.received("BYE") == [], far.report()
    done = sip.wait_call(call["id"], lambda c: c["sip_status"] == 487, 3, "sip_status 487")
    assert done["status"] == "canceled" and done["end_reason"] == "ended_by_api", done
    sip.cp.end_call(call["id"], expect=409)


def test_answer_crossing_cancel_is_acked_and_byed(sip):
    sip.start(ring_timeout=30)
    far = sip.uas("uas_cancel_crossing.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "ringing", timeout=3)
    ended = sip.cp.end_call(call["id"])
    assert ended["status"] == "canceled", ended
    sipp_done(far)   # ACK of the 200, then a BYE, answered
    msgs = [m for m in far.messages() if m.direction == "recv"]
    methods = [m.method for m in msgs]
    assert "ACK" in methods and "BYE" in methods, far.report()
    assert methods.index("ACK") < methods.index("BYE"), methods
    ack = msgs[methods.index("ACK")]
    assert ack.cseq[1] == "ACK" and ack.cseq[0] == far.received("INVITE")[0].cseq[0], ack.text
    bye = msgs[methods.index("BYE")]
    assert bye.call_id == call["provider_call_id"], bye.text
    time.sleep(0.3)
    got = sip.call(call["id"])
    assert got["status"] == "canceled", got
    assert got["end_reason"] == "ended_by_api", got
    assert sip.active() == []


def test_remote_bye_completes_call(sip):
    sip.start()
    far = sip.uas("uas_answer_send_bye.xml", pause_ms=1200)
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)
    done = sip.wait_status(call["id"], "completed", timeout=5)
    assert done["end_reason"] == "remote_hangup", done
    assert done["sip_status"] == 200, done
    assert_duration(done)
    assert done["duration_s"] == 1, done
    sipp_done(far)   # our BYE got its 200
    assert far.received("BYE") == [], far.report()
    sip.cp.end_call(call["id"], expect=409)


# ------------------------------------------------------------------------ trunk / options

TRUNK_NUMBER = "+15557654321"


@pytest.mark.parametrize("password,answered", [("s3cret", True), ("wrong", False)])
def test_e164_destination_goes_to_trunk_with_digest_auth(sip, password, answered):
    trunk_port = free_port(udp=True)
    sip.start("--trunk", "sip:127.0.0.1:%d" % trunk_port, "--trunk-auth", "trunkuser:" + password)
    trunk = sip.uas("uas_trunk_digest.xml", port=trunk_port)
    call = sip.cp.create_call(to=TRUNK_NUMBER)
    if answered:
        up = sip.wait_status(call["id"], "in_progress", timeout=4)
        assert up["sip_status"] == 200, up
    else:
        done = sip.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 4, "an end")
        assert done["status"] == "failed" and done["sip_status"] == 403, done
    invites = trunk.received("INVITE")
    assert len(invites) == 2, "expected the INVITE and its authenticated retry\n" + trunk.report()
    for inv in invites:
        assert inv.first_line == "INVITE sip:%s@127.0.0.1:%d SIP/2.0" % (TRUNK_NUMBER, trunk_port), inv.first_line
        assert inv.call_id == call["provider_call_id"], inv.text
    assert invites[0].header("authorization") is None, invites[0].text
    auth = invites[1].header("authorization") or ""
    assert auth.startswith("Digest ") and 'username="trunkuser"' in auth and 'realm="trunk.test"' in auth, auth
    assert "s3cret" not in invites[1].text and "wrong" not in auth, "password sent in clear"
    if answered:
        ended = sip.cp.end_call(call["id"])
        assert ended["status"] == "completed", ended
    sipp_done(trunk)
    assert len(trunk.received("BYE")) == (1 if answered else 0), trunk.report()
    assert sip.active() == []


def test_e164_destination_without_trunk_fails_no_route(sip):
    sip.start()
    call = sip.cp.create_call(to=TRUNK_NUMBER)
    done = sip.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 3, "an end")
    assert done["status"] == "failed" and done["end_reason"] == "no_route", done
    assert done["answered_at"] is None and done["duration_s"] is None, done


def test_sip_advertise_and_rtp_port_range(sip):
    """docs/API.md: --sip-advertise IP is the address put in Contact and SDP; --rtp-ports LOW-HIGH
    is where each call binds its RTP port."""
    sip.start("--sip-advertise", "127.0.0.2", "--rtp-ports", "31000-31009")
    far = sip.uas("uas_answer_wait_bye.xml", calls=3)
    calls = [sip.dial(far) for _ in range(3)]
    for c in calls:
        sip.wait_status(c["id"], "in_progress", timeout=4)
    invites = far.received("INVITE")
    assert len(invites) == 3, far.report()
    ports = []
    for inv in invites:
        assert "c=IN IP4 127.0.0.2" in inv.body, inv.body
        port, _pts = sdp_media(inv.body)
        assert 31000 <= port <= 31009, "RTP port %d outside --rtp-ports 31000-31009" % port
        ports.append(port)
    assert len(set(ports)) == 3, "calls share an RTP port: %r" % ports
    for c in calls:
        assert sip.cp.end_call(c["id"])["status"] == "completed"
    sipp_done(far)
    # last, so that the checks above run even when this one fails
    for inv in invites:
        contact = inv.header("contact") or ""
        m = re.match(r"^<?sips?:(?:[^@>]*@)?([^:;>]+)", contact)
        assert m and m.group(1) == "127.0.0.2", \
            "INVITE Contact %r does not carry the --sip-advertise address 127.0.0.2\n%s" % (contact, inv.text)


def rtp_of_invites(far, n):
    invites = wait_for(lambda: len(far.received("INVITE")) >= n and far.received("INVITE"), 3)
    assert invites and len(invites) == n, far.report()
    out = []
    for inv in invites:
        (otype, oaddr), (ctype, caddr) = sdp_addresses(inv.body)
        port, _pts = sdp_media(inv.body)
        assert (otype, oaddr) == (ctype, caddr), "o= and c= differ:\n%s" % inv.body
        assert ctype == ("IP6" if ":" in caddr else "IP4"), inv.body
        out.append((caddr, port))
    return out


def test_rtp_addrs_calls_take_the_addresses_in_turn(sip):
    """docs/API.md: --rtp-addrs IP[,IP...]: each call's RTP socket is bound on one of the
    addresses, in turn, each with the whole --rtp-ports range; the SDP's c= line carries the
    address the socket is really bound on."""
    sip.start("--rtp-addrs", "127.0.0.1,127.0.0.2", "--rtp-ports", "31100-31109")
    far = sip.uas("uas_answer_wait_bye.xml", calls=4)
    calls = []
    for _ in range(4):   # one at a time, so the order of the INVITEs is the order of the calls
        calls.append(sip.dial(far))
        sip.wait_status(calls[-1]["id"], "in_progress", timeout=4)
    rtp = rtp_of_invites(far, 4)
    assert [a for a, _p in rtp] == ["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"], rtp
    assert len(set(rtp)) == 4, "two calls share an RTP address and port: %r" % rtp
    pid = sip.cp.proc.pid
    for addr, port in rtp:
        assert 31100 <= port <= 31109 and port % 2 == 0, rtp
        assert_rtp_bound(pid, addr, port)
    for c in calls:
        assert sip.cp.end_call(c["id"])["status"] == "completed"
    sipp_done(far)
    # an ended call's socket is closed
    for addr, port in rtp:
        assert wait_for(lambda: addr not in udp_local_addrs(port, pid), 3), \
            "RTP %s port %d still bound after the call ended" % (addr, port)


def test_rtp_advertise_names_each_rtp_address_in_sdp(sip):
    """docs/API.md: --rtp-advertise IP[,IP...] (1:1 NAT): the SDP of a call bound on the i-th
    --rtp-addrs address carries the i-th --rtp-advertise address instead; the socket stays
    bound on the real one."""
    sip.start("--rtp-addrs", "127.0.0.1,127.0.0.2", "--rtp-advertise", "192.0.2.1,192.0.2.2",
              "--rtp-ports", "31180-31189")
    far = sip.uas("uas_answer_wait_bye.xml", calls=2)
    calls = []
    for _ in range(2):
        calls.append(sip.dial(far))
        sip.wait_status(calls[-1]["id"], "in_progress", timeout=4)
    rtp = rtp_of_invites(far, 2)
    assert [a for a, _p in rtp] == ["192.0.2.1", "192.0.2.2"], rtp
    pid = sip.cp.proc.pid
    for (_addr, port), bound in zip(rtp, ("127.0.0.1", "127.0.0.2")):
        assert_rtp_bound(pid, bound, port)
    for c in calls:
        assert sip.cp.end_call(c["id"])["status"] == "completed"
    sipp_done(far)


@pytest.mark.parametrize("args,why", [
    (["--rtp-advertise", "192.0.2.1,192.0.2.2"], "must name 1 address, one for each"),
    (["--rtp-addrs", "127.0.0.1,127.0.0.2", "--rtp-advertise", "192.0.2.1"],
     "must name 2 addresses, one for each"),
    (["--rtp-advertise", "2001:db8::1"], "is not of the family of the RTP address 127.0.0.1"),
    (["--rtp-advertise", "0.0.0.0"], "wildcard"),
    (["--rtp-advertise", "example.com"], "not an IPv4 or IPv6 address"),
])
def test_rtp_advertise_invalid_is_a_usage_error(cp, args, why):
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_port(tcp=True),
                              "--sip", "127.0.0.1:%d" % free_port(udp=True, tcp=True),
                              *args, timeout=5)
    assert rc == 2 and out == "", (rc, out, err)
    assert "error: --rtp-advertise" in err and why in err, err


def test_rtp_addrs_may_mix_ipv4_and_ipv6(sip):
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    sip.start("--rtp-addrs", "::1,127.0.0.2", "--rtp-ports", "31120-31129")
    far = sip.uas("uas_answer_wait_bye.xml", calls=2)
    calls = []
    for _ in range(2):
        calls.append(sip.dial(far))
        sip.wait_status(calls[-1]["id"], "in_progress", timeout=4)
    rtp = rtp_of_invites(far, 2)
    assert [a for a, _p in rtp] == ["::1", "127.0.0.2"], rtp
    for addr, port in rtp:
        assert_rtp_bound(sip.cp.proc.pid, addr, port)
    invites = far.received("INVITE")
    assert "c=IN IP6 ::1" in invites[0].body and "c=IN IP4 127.0.0.2" in invites[1].body
    for c in calls:
        sip.cp.end_call(c["id"])
    sipp_done(far)


def test_rtp_addrs_all_ports_taken_fails_the_call_no_media_port(sip):
    """One even port in the range on each of two addresses: two calls, the third finds none."""
    sip.start("--rtp-addrs", "127.0.0.1,127.0.0.2", "--rtp-ports", "31140-31141")
    far = sip.uas("uas_answer_wait_bye.xml", calls=3)
    up = []
    for _ in range(2):
        up.append(sip.dial(far))
        sip.wait_status(up[-1]["id"], "in_progress", timeout=4)
    assert rtp_of_invites(far, 2) == [("127.0.0.1", 31140), ("127.0.0.2", 31140)]
    third = sip.dial(far)
    done = sip.wait_status(third["id"], "failed", timeout=4)
    assert done["end_reason"] == "no_media_port" and done["answered_at"] is None, done
    assert len(far.received("INVITE")) == 2, far.report()
    # a port freed by an ended call is used again
    sip.cp.end_call(up[0]["id"])
    pid = sip.cp.proc.pid
    assert wait_for(lambda: "127.0.0.1" not in udp_local_addrs(31140, pid), 3)
    again = sip.dial(far)
    sip.wait_status(again["id"], "in_progress", timeout=4)
    assert rtp_of_invites(far, 3)[2] == ("127.0.0.1", 31140)
    for c in (up[1], again):
        sip.cp.end_call(c["id"])
    sipp_done(far)


def test_rtp_addrs_from_config_file_used_in_inbound_answer(sip, tmp_path):
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"rtp-addrs": "127.0.0.2", "rtp-ports": "31160-31169"}))
    sip.start("--config", str(cfg))
    caller = sip.uac("uac_invite_answered.xml")
    oks = wait_for(lambda: caller.received(status=200), 4)
    assert oks and oks[0].cseq[1] == "INVITE", caller.report() + "\n" + sip.diagnostics()
    (_ot, oaddr), (ctype, caddr) = sdp_addresses(oks[0].body)
    port, _pts = sdp_media(oks[0].body)
    assert (ctype, caddr) == ("IP4", "127.0.0.2") and oaddr == "127.0.0.2", oks[0].body
    assert 31160 <= port <= 31169, oks[0].body
    assert_rtp_bound(sip.cp.proc.pid, "127.0.0.2", port)
    assert wait_for(lambda: caller.sent("ACK"), 2), caller.report()
    assert sip.cp.request("POST", "/v1/calls/end", {}, key=sip.cp.key).json["ended"] == 1
    sipp_done(caller)


@pytest.mark.parametrize("value,why", [
    ("127.0.0.1,,127.0.0.2", "empty"),
    ("localhost", "not an IPv4 or IPv6 address"),
    ("127.0.0.256", "not an IPv4 or IPv6 address"),
    ("0.0.0.0", "wildcard"),
    ("::", "wildcard"),
    ("127.0.0.1,127.0.0.1", "listed twice"),
    ("224.0.0.1", "not a unicast address"),
    ("", "empty"),
])
def test_rtp_addrs_invalid_is_a_usage_error(cp, value, why):
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_port(tcp=True),
                              "--sip", "127.0.0.1:%d" % free_port(udp=True, tcp=True),
                              "--rtp-addrs", value, timeout=5)
    assert rc == 2 and out == "", (rc, out, err)
    assert "--rtp-addrs" in err and why in err, err


def test_rtp_addrs_not_of_this_host_stops_the_start(cp):
    # 192.0.2.0/24 is TEST-NET-1: never an address of this host
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_port(tcp=True),
                              "--sip", "127.0.0.1:%d" % free_port(udp=True, tcp=True),
                              "--rtp-addrs", "127.0.0.1,192.0.2.7", timeout=10)
    assert rc == 1 and out == "", (rc, out, err)     # docs/API.md: it stops the start, exit 1
    assert "192.0.2.7" in err and "--rtp-addrs" in err, err


# ----------------------------------------------------------------------------- inbound


@pytest.mark.parametrize("service", [NUMBER, NUMBER.lstrip("+")])
def test_inbound_call_answered_and_ended_by_api(sip, service):
    sip.start()
    caller = sip.uac("uac_invite_answered.xml", service=service)
    invites = wait_for(lambda: caller.sent("INVITE"), 3)
    assert invites, caller.report()
    sip_call_id = invites[0].call_id

    def listed():
        data = sip.cp.list_calls()["data"]
        return data if data and data[0]["status"] == "in_progress" else None

    data = wait_for(listed, 4)
    assert data, "no in_progress inbound call listed: %r\n%s\n%s" % (
        sip.cp.list_calls(), caller.report(), sip.diagnostics())
    assert len(data) == 1, data
    call = data[0]
    assert_call_shape(call)
    assert call["direction"] == "inbound", call
    assert call["agent_id"] == sip.cp.agent, call
    assert call["provider_call_id"] == sip_call_id, call
    assert call["answered_at"] is not None and call["sip_status"] == 200, call
    by_pcid = sip.cp.get_call(urlquote(sip_call_id))
    assert by_pcid["id"] == call["id"], by_pcid

    oks = wait_for(lambda: caller.received(status=200), 2)
    assert oks and oks[0].cseq[1] == "INVITE", caller.report()
    assert (oks[0].header("content-type") or "").lower().startswith("application/sdp"), oks[0].text
    port, pts = sdp_media(oks[0].body)
    # the offer is PCMU and PCMA without telephone-event: the answer takes PCMU alone, on an
    # even port of the default --rtp-ports 16384-32766
    assert pts == [0], oks[0].body
    assert 16384 <= port <= 32766 and port % 2 == 0, oks[0].body
    assert wait_for(lambda: caller.sent("ACK"), 2), caller.report()
    time.sleep(0.3)

    ended = sip.cp.end_call(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "ended_by_api", ended
    assert_duration(ended)
    sipp_done(caller)
    byes = caller.received("BYE")
    assert len(byes) == 1 and byes[0].call_id == sip_call_id, caller.report()
    assert reason_text(byes[0]) == "ended_by_api"
    assert sip.active() == []


def test_inbound_unknown_number_404_creates_nothing(sip):
    sip.start()
    caller = sip.uac("uac_invite_expect_404.xml", service="+15559998888")
    sipp_done(caller)
    assert [m.status for m in caller.received() if m.status and m.status >= 200] == [404], caller.report()
    assert sip.cp.list_calls()["data"] == []
    r = sip.cp.request("GET", "/v1/calls/%s" % urlquote(caller.sent("INVITE")[0].call_id), key=sip.cp.key)
    assert_error(r, 404, "not_found")


def test_inbound_unsupported_codec_488(sip):
    sip.start()
    caller = sip.uac("uac_invite_g729_expect_488.xml", service=NUMBER)
    sipp_done(caller)
    assert [m.status for m in caller.received() if m.status and m.status >= 200] == [488], caller.report()
    assert sip.active() == []


# ------------------------------------------------------------------------ max duration


def _check_max_duration(sip, far, call_id):
    up = sip.wait_status(call_id, "in_progress", timeout=4)
    t_up = time.monotonic()
    done = sip.wait_status(call_id, "completed", timeout=4)
    took = time.monotonic() - t_up
    assert done["end_reason"] == "max_duration", done
    assert took < 3.0, "ended %.2f s after being seen answered (max 1 s)" % took
    assert_duration(done)
    assert done["duration_s"] == 1, done
    assert up["answered_at"] == done["answered_at"], (up, done)
    sipp_done(far)
    byes = far.received("BYE")
    assert len(byes) == 1, far.report()
    assert reason_text(byes[0]) == "max_duration"


def test_max_duration_from_call_ends_with_bye(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml")
    call = sip.dial(far, max_duration_s=1)
    assert call["max_duration_s"] == 1, call
    _check_max_duration(sip, far, call["id"])


def test_max_duration_from_agent_ends_with_bye(sip):
    agent = sip.cp.agent_create(sip.cp.tenant, "short-agent", number="+15550002222", max_duration=1)
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml")
    call = sip.cp.create_call(agent=agent, to="sip:bob@%s" % far.uri_host)
    _check_max_duration(sip, far, call["id"])


# ------------------------------------------------------------------ restart / shutdown


def test_kill9_restart_ends_answered_call_node_restart(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", timeout=10)
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)
    sip.cp.kill9()
    far.stop()
    sip.restart()
    got = sip.call(call["id"])
    assert got["status"] == "completed", got      # it was answered (docs/API.md)
    assert got["end_reason"] == "node_restart", got
    assert_duration(got)
    assert sip.active() == []


def test_graceful_shutdown_sends_bye_node_shutdown(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)
    t0 = time.monotonic()
    sip.cp.stop()   # asserts exit 0, no sanitizer report
    assert time.monotonic() - t0 < 5, "shutdown took %.1f s" % (time.monotonic() - t0)
    sipp_done(far, timeout=5)
    byes = far.received("BYE")
    assert len(byes) == 1 and byes[0].call_id == call["provider_call_id"], far.report()
    assert reason_text(byes[0]) == "node_shutdown"
    sip.restart()
    got = sip.call(call["id"])
    assert got["status"] == "completed", got
    assert got["end_reason"] == "node_shutdown", got
    assert_duration(got)
    assert sip.active() == []


# --------------------------------------------------------------------------- bulk end


def test_bulk_end_by_agent_then_all(sip):
    agent_b = sip.cp.agent_create(sip.cp.tenant, "agent-b", number="+15550003333")
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", calls=3)
    a1 = sip.dial(far)
    a2 = sip.dial(far)
    b1 = sip.cp.create_call(agent=agent_b, to="sip:bob@%s" % far.uri_host)
    for c in (a1, a2, b1):
        sip.wait_status(c["id"], "in_progress", timeout=5)

    r = sip.cp.request("POST", "/v1/calls/end", {"agent_id": agent_b}, key=sip.cp.key)
    assert r.status == 200 and r.json == {"ended": 1, "already_ended": 0, "failed": 0}, r
    got = sip.call(b1["id"])
    assert got["status"] == "completed" and got["end_reason"] == "ended_by_api", got
    for c in (a1, a2):
        assert sip.call(c["id"])["status"] == "in_progress"

    r = sip.cp.request("POST", "/v1/calls/end", {}, key=sip.cp.key)
    assert r.status == 200 and r.json == {"ended": 2, "already_ended": 0, "failed": 0}, r
    for c in (a1, a2):
        got = sip.call(c["id"])
        assert got["status"] == "completed" and got["end_reason"] == "ended_by_api", got
    assert sip.active() == []

    sipp_done(far)
    byes = far.received("BYE")
    assert sorted(b.call_id for b in byes) == sorted(c["provider_call_id"] for c in (a1, a2, b1)), far.report()
    assert all(reason_text(b) == "ended_by_api" for b in byes)

    r = sip.cp.request("POST", "/v1/calls/end", {}, key=sip.cp.key)
    assert r.status == 200 and r.json == {"ended": 0, "already_ended": 0, "failed": 0}, r


# ------------------------------------------------------------------------------ burst

BURST = 200


@pytest.mark.parametrize("how", ["concurrent", "bulk"])
def test_burst_of_answered_calls_all_ended(sip, how):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", calls=BURST, timeout=40)
    created = concurrently(lambda _i: sip.dial(far), range(BURST))
    ids = [c["id"] for c in created]
    assert len(set(ids)) == BURST
    assert len({c["provider_call_id"] for c in created}) == BURST

    def all_up():
        act = sip.active()
        return len(act) == BURST and all(c["status"] == "in_progress" for c in act)

    if not wait_for(all_up, 20, interval=0.25):
        act = sip.active()
        raise AssertionError("not all %d calls in_progress: %d active, statuses %r\n%s" % (
            BURST, len(act), sorted({c["status"] for c in act}), far.report()))

    if how == "concurrent":
        results = concurrently(lambda cid: sip.cp.request("POST", "/v1/calls/%s/end" % cid, None,
                                                          key=sip.cp.key, timeout=15), ids)
        bad = [r for r in results if r.status != 200]
        assert not bad, "%d ends failed, e.g. %r" % (len(bad), bad[:3])
        assert all(r.json["status"] == "completed" for r in results)
    else:
        r = sip.cp.request("POST", "/v1/calls/end", {}, key=sip.cp.key, timeout=30)
        assert r.status == 200 and r.json == {"ended": BURST, "already_ended": 0, "failed": 0}, r

    sipp_done(far, timeout=30)
    assert far.successful() == BURST, far.report()
    assert len({b.call_id for b in far.received("BYE")}) == BURST
    assert sip.active() == []
    done = sip.cp.list_all(query="status=completed")
    assert sorted(c["id"] for c in done) == sorted(ids)
    assert all(c["end_reason"] == "ended_by_api" for c in done)


def test_fifty_concurrent_ends_of_one_call(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye_linger.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)
    results = concurrently(lambda _i: sip.cp.request("POST", "/v1/calls/%s/end" % call["id"], None,
                                                     key=sip.cp.key, timeout=10), range(50), workers=50)
    ok = [r for r in results if r.status == 200]
    rest = [r for r in results if r.status != 200]
    assert len(ok) == 1, "expected exactly one 200, got %d: %r" % (len(ok), [r.status for r in results])
    assert ok[0].json["status"] == "completed", ok[0]
    assert len(rest) == 49
    for r in rest:
        assert_error(r, 409, "call_not_active")
    sipp_done(far)
    byes = far.received("BYE")
    assert len(byes) == 1, "far end received %d BYEs\n%s" % (len(byes), far.report())
