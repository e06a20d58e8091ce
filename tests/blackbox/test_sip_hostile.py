"""Black-box tests of hostile SIP input: what an unauthenticated sender on the network can make
callplane keep, send or record (issue 14, "Hostile input found by a probe").

The sender is sipp (scenarios in tests/blackbox/sipp/) or, where a message must be malformed, a
raw UDP socket.  Every wait is bounded.  The `cp` fixture's teardown asserts that the server
exits gracefully (SIGTERM -> exit 0, no sanitizer report).
"""

import os
import socket
import time

import pytest

from cp import ACTIVE_STATUSES
from receiver import SseReader
from sipp_peer import free_port, udp_bound, wait_for
from test_sip import NUMBER, sdp_media, sip, sipp_done  # noqa: F401 (sip is the fixture)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def udp_socket():
    """A UDP socket on 127.0.0.1 (a free port) that nobody answers from."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", free_port(udp=True)))
    return s


def finals(peer):
    """The final responses `peer` received."""
    return [m for m in peer.received() if m.status is not None and m.status >= 200]


def assert_refused_405(peer, method):
    """The one request `peer` sent was answered 405 with our Allow, and nothing else."""
    got = finals(peer)
    assert [m.status for m in got] == [405], "%s: expected one 405\n%s" % (method, peer.report())
    assert got[0].cseq == (1, method), got[0].text
    assert got[0].header("allow") == ALLOW, got[0].text


# ------------------------------------------------------------------------ unserved methods

LOAD = 5000              # requests of each method per round
ROUNDS = 3
LOAD_RATE = 1000         # requests per second, per method
RSS_NOISE_KB = 4096      # RSS may move this much between rounds without anything kept


@pytest.fixture
def lean_asan(monkeypatch):
    """ASan options for a server whose RSS a test reads. By default ASan keeps freed memory
    out of reuse (a quarantine of up to 256 MB) and hands free pages back to the kernel every
    few seconds: both move RSS with nothing kept. Without them freed memory is reused at once
    and never returned, so RSS is the allocator's high-water mark, which only what is kept
    raises."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", opts + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
                       ":allocator_release_to_os_interval_ms=-1")


def test_unserved_methods_keep_no_memory(sip, lean_asan):
    """3 rounds of 5,000 out-of-dialog MESSAGEs and 5,000 REFERs: RSS after the second and the
    third round is within RSS_NOISE_KB of RSS after the first (which warms the allocator up).
    A server that keeps something per request grows by megabytes a round (a nua handle each:
    ~1.5 KB per MESSAGE, ~2.1 KB per REFER without sanitizers, ~50 MB a round under ASan).

    The load goes over TCP: on a reliable transport the transaction layer keeps no completed
    transaction (RFC 3261 timer J is 0), so what stays after a round is what the requests left
    behind. Over UDP each answered request is kept 32 s (timer J) whatever we answer, and would
    have to be waited out between rounds. That they are refused over UDP is checked after."""
    sip.start()
    pid = sip.cp.proc.pid
    sink = udp_socket()       # the REFERs' Contact: a server that accepts them sends NOTIFYs here
    rss = []
    t0 = time.monotonic()
    for _round in range(ROUNDS):
        peers = [sip.uac("uac_message_any.xml", calls=LOAD, rate=LOAD_RATE, timeout=60,
                         transport="t1", trace=False),
                 sip.uac("uac_refer_any.xml", calls=LOAD, rate=LOAD_RATE, timeout=60,
                         transport="t1", trace=False,
                         subst={"CONTACT": "127.0.0.1:%d" % sink.getsockname()[1]})]
        for p in peers:
            assert p.wait(90) is not None, "sipp still running after 90 s\n" + p.report()
        rss.append(vm_rss_kb(pid))
    took = time.monotonic() - t0
    sink.close()
    growth = max(rss[1:]) - rss[0]
    assert growth <= RSS_NOISE_KB, \
        "RSS grew %d KB after round 1 (RSS after each round: %r KB; %.0f s)" % (growth, rss, took)
    # every request of the load was answered (the scenarios accept 200/202 and 405)
    for p in sip.peers:
        assert p.rc == 0 and p.successful() == LOAD, p.report()
    # and refused: one of each over UDP, traced
    for scenario, method, subst in (("uac_message_any.xml", "MESSAGE", None),
                                    ("uac_refer_any.xml", "REFER", {"CONTACT": "[local_ip]:[local_port]"})):
        probe = sip.uac(scenario, subst=subst)
        sipp_done(probe)
        assert_refused_405(probe, method)
    assert sip.active() == []


# ------------------------------------------------------------------------- REFER reflection

REFLECTION_WATCH_S = 5   # a UA that accepts a REFER NOTIFYs at once, then again at 0.5, 1.5, 3.5 s


def test_out_of_dialog_refer_reflects_no_notify(sip):
    """One REFER from nobody, with a Contact of the sender's choosing (a socket of this test):
    refused 405, and not one datagram (a NOTIFY, or anything) reaches that Contact."""
    sip.start()
    target = udp_socket()
    port = target.getsockname()[1]
    caller = sip.uac("uac_refer_any.xml", subst={"CONTACT": "127.0.0.1:%d" % port})
    sipp_done(caller)
    reached = []
    target.settimeout(0.2)
    deadline = time.monotonic() + REFLECTION_WATCH_S
    while time.monotonic() < deadline:
        try:
            reached.append(target.recv(65535))
        except socket.timeout:
            pass
    target.close()
    assert reached == [], "%d datagrams reached the REFER's Contact, first:\n%s" % (
        len(reached), reached[0].decode("utf-8", "replace"))
    assert_refused_405(caller, "REFER")


# ------------------------------------------------------------------------- truncated bodies


def raw_invite(sip_port, local_port, number, body, content_length):
    """An INVITE to `number` as bytes, from 127.0.0.1:local_port, with `body` and the
    Content-Length `content_length` (which may lie)."""
    head = ("INVITE sip:{num}@127.0.0.1:{sp} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-trunc-{lp}\r\n"
            "From: <sip:alice@127.0.0.1:{lp}>;tag=trunc{lp}\r\n"
            "To: <sip:{num}@127.0.0.1:{sp}>\r\n"
            "Call-ID: trunc-{lp}@127.0.0.1\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <sip:alice@127.0.0.1:{lp}>\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Type: application/sdp\r\n"
            "Content-Length: {cl}\r\n\r\n").format(num=number, sp=sip_port, lp=local_port,
                                                   cl=content_length)
    return head.encode() + body


SDP = (b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@pytest.mark.parametrize("body,content_length", [
    (b"", 100),              # ends with its headers: it was taken as an INVITE without an offer
    (SDP, len(SDP) + 40),    # a good offer, 40 bytes short
], ids=["no-body", "short-body"])
def test_udp_invite_shorter_than_its_content_length_is_400(sip, body, content_length):
    """RFC 3261 18.3: a datagram that ends before the body its Content-Length announces is an
    error, and a request SHOULD get 400. The INVITE is for the agent's number: answered 400,
    no call."""
    sip.start()
    s = udp_socket()
    s.settimeout(0.5)
    try:
        s.sendto(raw_invite(sip.sip_port, s.getsockname()[1], NUMBER, body, content_length),
                 ("127.0.0.1", sip.sip_port))
        statuses = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(st >= 200 for st in statuses):
            try:
                first = s.recv(65535).split(b"\r\n", 1)[0].decode("utf-8", "replace")
            except socket.timeout:
                continue
            assert first.startswith("SIP/2.0 "), first
            statuses.append(int(first.split()[1]))
    finally:
        s.close()
    assert [st for st in statuses if st >= 200] == [400], \
        "responses %r, expected a final 400\n%s" % (statuses, sip.diagnostics())
    assert sip.cp.list_calls()["data"] == []


# ------------------------------------------------------------------------- un-ACKed INVITEs

ACK_TIMER_S = 32         # RFC 3261 timer H (64 * T1): how long a 200 waits for its ACK


def test_unacked_invite_is_not_answered_and_frees_its_port(sip):
    """A caller that never ACKs our 200: the call is never in_progress, has no answered_at and
    no call.answered event, ends `failed` with end_reason `ack_timeout` (sip_status 408) when
    the ACK timer fires, and its RTP port is free then, although the caller does not answer
    the BYE that follows either (which would hold it 32 s more)."""
    sip.start()
    events = SseReader(sip.cp.port, key=sip.cp.key)
    try:
        events.open()
        assert events.status == 200, events.head_raw
        events.start()
        caller = sip.uac("uac_invite_no_ack.xml", timeout=ACK_TIMER_S + 25)
        oks = wait_for(lambda: caller.received(status=200), 4)
        assert oks and oks[0].cseq == (1, "INVITE"), caller.report() + "\n" + sip.diagnostics()
        t_200 = time.monotonic()
        port, _pts = sdp_media(oks[0].body)
        pid = sip.cp.proc.pid
        assert udp_bound(port, pid=pid), "the RTP port %d of the 200 is not bound" % port

        data = sip.cp.list_calls()["data"]
        assert len(data) == 1, data
        call_id = data[0]["id"]
        waiting = sip.call(call_id)
        assert waiting["status"] == "queued" and waiting["answered_at"] is None, waiting

        done = sip.wait_call(call_id, lambda c: c["status"] not in ACTIVE_STATUSES,
                             ACK_TIMER_S + 8, "an end")
        t_end = time.monotonic() - t_200
        freed = wait_for(lambda: not udp_bound(port, pid=pid), 2)
        t_freed = time.monotonic() - t_200
        assert done["status"] == "failed" and done["end_reason"] == "ack_timeout", done
        assert done["sip_status"] == 408, done
        assert done["answered_at"] is None and done["duration_s"] is None, done
        assert ACK_TIMER_S - 2 <= t_end <= ACK_TIMER_S + 6, "ended %.1f s after the 200" % t_end
        assert freed, "RTP port %d still bound %.1f s after the 200\n%s" % (port, t_freed, sip.diagnostics())

        ended = events.wait_events(1, 5, pred=lambda e: e.event == "call.ended")
        assert ended, "no call.ended event"
        mine = [e.event for e in events.events if e.json["data"]["id"] == call_id]
        assert mine == ["call.ended"], mine
    finally:
        events.close()
    # the caller is told: nua's BYE after the ACK timeout
    byes = wait_for(lambda: caller.received("BYE"), 3)
    assert byes and byes[0].call_id == oks[0].call_id, caller.report()
    assert sip.active() == []
