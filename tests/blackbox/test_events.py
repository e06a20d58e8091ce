"""Black-box tests of the live event stream GET /v1/events (docs/API.md, "Live events").

The stream is Server-Sent Events: `id: SEQ`, `event: TYPE`, `data: <canonical event JSON>`, in
commit order, scoped like the key; it starts with the next event, and `Last-Event-ID` (or
`?last_event_id=`) resumes right after an event from the outbox.  `SseReader` (receiver.py)
reads a stream over a raw socket in a thread, with timeouts; every wait is bounded.
"""

import concurrent.futures
import json
import time

import pytest

from cp import assert_call_shape, assert_error, assert_recent, is_uuid, urlquote
from receiver import Receiver, SseReader
from sipp_peer import Sipp, free_port as sip_free_port, wait_for

EVENT_KEYS = {"id", "type", "created_at", "data"}


# ------------------------------------------------------------------------------ fixtures


class Streams:
    def __init__(self, cp):
        self.cp = cp
        self.readers = []

    def open(self, key, headers=None, path="/v1/events"):
        s = SseReader(self.cp.port, path=path, key=key, headers=headers)
        self.readers.append(s)
        s.open()
        assert s.status == 200, "GET %s -> %s %r %r" % (path, s.status, s.head_raw, s.read_body())
        ctype = s.headers.get("content-type", "")
        assert ctype.split(";")[0].strip() == "text/event-stream", s.headers
        return s.start()

    def close(self):
        for s in self.readers:
            s.close()


@pytest.fixture
def streams(cp):
    st = Streams(cp)
    yield st
    st.close()


# ------------------------------------------------------------------------------- helpers


def end_queued_call(cp, key=None, agent=None):
    c = cp.create_call(key=key, agent=agent)
    ended = cp.end_call(c["id"], key=key)
    assert ended["status"] == "canceled", ended
    return ended


def check_event(ev):
    """One SSE event: integer id, `event` equal to the canonical type, data the canonical event."""
    assert ev.id is not None and ev.id.isdigit(), "SSE id %r is not an integer: %r" % (ev.id, ev.fields)
    body = ev.json
    assert set(body) == EVENT_KEYS, "SSE data is not a canonical event: %r" % body
    assert ev.event == body["type"], "event: %r but data.type %r" % (ev.event, body["type"])
    assert is_uuid(body["id"]), body
    assert_recent(body["created_at"], 120)
    assert_call_shape(body["data"])
    return body


def wait_n(stream, n, timeout, what, pred=None):
    got = stream.wait_events(n, timeout, pred)
    assert len(got) >= n, "stream: %d of %d %s within %ss (closed=%s error=%s): %r" % (
        len(got), n, what, timeout, stream.closed_by_peer, stream.error, stream.events)
    return got


def call_ids(events):
    return [e.json["data"]["id"] for e in events]


def assert_increasing(events):
    ids = [int(e.id) for e in events]
    assert all(a < b for a, b in zip(ids, ids[1:])), "SSE ids not increasing: %r" % ids
    return ids


# ------------------------------------------------------------------------------ the stream


def test_stream_delivers_call_events_in_order(cp, streams, peers, tmp_path):
    cp.setup_world()
    port = sip_free_port(udp=True, tcp=True)
    cp.start(extra_args=["--sip", "127.0.0.1:%d" % port, "--ring-timeout", "10"])
    far = Sipp(tmp_path, "uas_answer_wait_bye.xml", calls=2, timeout=15, pause_ms=300).start()
    peers.append(far)
    s = streams.open(cp.key)

    calls = []
    for _ in range(2):
        c = cp.create_call(to="sip:bob@%s" % far.uri_host)
        calls.append(c)
        assert wait_for(lambda: cp.get_call(c["id"])["status"] == "in_progress", 5), \
            "call not answered: %r\n%s" % (cp.get_call(c["id"]), far.report())
        # ringing and answered (committed by the SIP engine) are streamed as they happen,
        # not only when something else (the API end below) wakes the stream
        mine = lambda e, cid=c["id"]: e.json["data"]["id"] == cid
        early = s.wait_events(2, 2, mine)
        assert [e.event for e in early] == ["call.ringing", "call.answered"], \
            "events of an answered call before it was ended: %r" % early
        ended = cp.end_call(c["id"])
        assert ended["status"] == "completed", ended

    evs = wait_n(s, 6, 8, "events (2 calls x ringing/answered/ended)")
    time.sleep(0.3)
    evs = list(s.events)
    assert len(evs) == 6, "expected exactly 6 events: %r" % evs
    assert_increasing(evs)
    bodies = [check_event(e) for e in evs]
    for i, c in enumerate(calls):
        mine = [b for b in bodies if b["data"]["id"] == c["id"]]
        assert [b["type"] for b in mine] == ["call.ringing", "call.answered", "call.ended"], mine
        assert [b["data"]["status"] for b in mine] == ["ringing", "in_progress", "completed"], mine
        assert mine[2]["data"]["end_reason"] == "ended_by_api", mine[2]
        assert mine[2]["data"] == cp.get_call(c["id"]), mine[2]
        assert len({b["id"] for b in mine}) == 3, mine
    # commit order: the first call's events all come before the second's
    assert call_ids(evs) == [calls[0]["id"]] * 3 + [calls[1]["id"]] * 3, call_ids(evs)
    far.wait(10)


def test_remote_hangup_streamed_without_api_activity(cp, streams, peers, tmp_path):
    cp.setup_world()
    port = sip_free_port(udp=True, tcp=True)
    cp.start(extra_args=["--sip", "127.0.0.1:%d" % port, "--ring-timeout", "10"])
    far = Sipp(tmp_path, "uas_answer_send_bye.xml", calls=1, timeout=15, pause_ms=500).start()
    peers.append(far)
    s = streams.open(cp.key)
    c = cp.create_call(to="sip:bob@%s" % far.uri_host)
    # no further API requests: every event must be pushed by the engine's commits
    got = s.wait_events(1, 6, lambda e: e.event == "call.ended")
    assert got, "no call.ended on the stream within 6 s of a remote BYE: %r\n%s" % (s.events, far.report())
    evs = list(s.events)
    # the far end answers with no 180: queued -> in_progress -> completed, no call.ringing
    assert [e.event for e in evs] == ["call.answered", "call.ended"], evs
    end = check_event(got[0])
    assert end["data"]["id"] == c["id"], end
    assert end["data"]["status"] == "completed" and end["data"]["end_reason"] == "remote_hangup", end
    assert isinstance(end["data"]["duration_s"], int), end
    assert_increasing(evs)
    far.wait(10)


def test_stream_starts_with_next_event_and_matches_webhook(cp, streams):
    cp.setup_world()
    rcv = Receiver().start()
    try:
        cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", rcv.url)
        cp.start()
        before = end_queued_call(cp)
        rcv.wait_for(1, 5)
        s = streams.open(cp.key)
        after = end_queued_call(cp)
        wait_n(s, 1, 5, "event of the call ended after connecting")
        time.sleep(0.5)
        evs = list(s.events)
        assert call_ids(evs) == [after["id"]], "stream should start with the next event, got %r (earlier call %s)" % (
            evs, before["id"])
        body = check_event(evs[0])
        assert evs[0].event == "call.ended", evs[0]
        hooks = rcv.wait_for(2, 5)
        hook = [r for r in hooks if r.json["data"]["id"] == after["id"]]
        assert len(hook) == 1, hooks
        assert body == hook[0].json, "SSE data differs from the canonical webhook body:\n%s\n%s" % (
            json.dumps(body), hook[0].body)
        assert body["id"] == hook[0].event_id
    finally:
        rcv.stop()


def test_concurrent_ends_all_streamed_in_commit_order(cp, streams):
    cp.setup_world()
    cp.start()
    n = 30
    created = [cp.create_call() for _ in range(n)]
    s1 = streams.open(cp.key)
    s2 = streams.open(cp.key, headers={"x-api-key": cp.key, "Authorization": "Bearer " + cp.key})
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
        res = list(ex.map(lambda c: cp.request("POST", "/v1/calls/%s/end" % c["id"], None, key=cp.key),
                          created, timeout=30))
    assert all(r.status == 200 for r in res), [r for r in res if r.status != 200][:3]
    for s in (s1, s2):
        wait_n(s, n, 10, "call.ended events")
    time.sleep(0.3)
    for s in (s1, s2):
        evs = list(s.events)
        assert len(evs) == n, "expected exactly %d events, got %d" % (n, len(evs))
        assert_increasing(evs)
        assert sorted(call_ids(evs)) == sorted(c["id"] for c in created)
        for e in evs:
            check_event(e)
    assert [e.id for e in s1.events] == [e.id for e in s2.events]
    assert [e.data for e in s1.events] == [e.data for e in s2.events]


# ----------------------------------------------------------------------------------- scope


def scope_world(cp):
    """Tenant A (agent +15550001111 and agent_a2 +15550002222, a key scoped to the first
    number) and tenant B (agent_b, key_b). Returns (agent_a2, number_key, agent_b, key_b)."""
    cp.setup_world(number="+15550001111")
    agent_a2 = cp.agent_create(cp.tenant, "agent-a2", number="+15550002222")
    _nk, number_key = cp.key_create(cp.tenant, number="+15550001111")
    tb = cp.tenant_create("tenant-b")
    agent_b = cp.agent_create(tb, "agent-b", number="+15550003333")
    _kb, key_b = cp.key_create(tb)
    return agent_a2, number_key, agent_b, key_b


def test_stream_scope_tenant_and_number(cp, streams):
    agent_a2, number_key, agent_b, key_b = scope_world(cp)
    cp.start()
    sa = streams.open(cp.key)
    sb = streams.open(key_b)
    sn = streams.open(number_key)

    a1 = end_queued_call(cp)
    a2 = end_queued_call(cp, agent=agent_a2)
    b1 = end_queued_call(cp, key=key_b, agent=agent_b)
    a3 = end_queued_call(cp)

    wait_n(sa, 3, 5, "tenant A events")
    wait_n(sb, 1, 5, "tenant B events")
    wait_n(sn, 2, 5, "number-scoped events")
    time.sleep(0.5)
    assert call_ids(sa.events) == [a1["id"], a2["id"], a3["id"]], sa.events
    assert call_ids(sb.events) == [b1["id"]], "tenant B's stream: %r" % sb.events
    assert call_ids(sn.events) == [a1["id"], a3["id"]], "number-scoped stream: %r" % sn.events
    for s in (sa, sb, sn):
        assert_increasing(s.events)
        for e in s.events:
            check_event(e)
    # the same event has the same id in every stream that sees it
    ida = {e.json["data"]["id"]: e.id for e in sa.events}
    for e in sn.events:
        assert ida[e.json["data"]["id"]] == e.id, (e, sa.events)


def test_resume_scope_applies_to_replayed_events(cp, streams):
    """Events replayed from the outbox on resume are scoped like live ones."""
    agent_a2, number_key, agent_b, key_b = scope_world(cp)
    cp.start()
    sa = streams.open(cp.key)
    first = end_queued_call(cp)
    mark = wait_n(sa, 1, 5, "first event")[0].id
    a2 = end_queued_call(cp, agent=agent_a2)
    b1 = end_queued_call(cp, key=key_b, agent=agent_b)
    a1 = end_queued_call(cp)
    wait_n(sa, 3, 5, "tenant A events")

    rn = streams.open(number_key, headers={"Last-Event-ID": mark})
    rb = streams.open(key_b, headers={"Last-Event-ID": mark})
    wait_n(rn, 1, 5, "replayed number-scoped events")
    wait_n(rb, 1, 5, "replayed tenant-B events")
    time.sleep(0.5)
    assert call_ids(rn.events) == [a1["id"]], "number-scoped resume: %r (a2=%s)" % (rn.events, a2["id"])
    assert call_ids(rb.events) == [b1["id"]], "tenant B resume: %r" % rb.events
    assert first["id"] not in call_ids(rn.events)


# ---------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_with_last_event_id(cp, streams, how):
    cp.setup_world()
    cp.start()
    s = streams.open(cp.key)
    c1 = end_queued_call(cp)
    c2 = end_queued_call(cp)
    evs = wait_n(s, 2, 5, "events of c1, c2")
    assert call_ids(evs) == [c1["id"], c2["id"]], evs
    mark = evs[0].id
    s.close()

    c3 = end_queued_call(cp)
    c4 = end_queued_call(cp)
    if how == "header":
        r = streams.open(cp.key, headers={"Last-Event-ID": mark})
    else:
        r = streams.open(cp.key, path="/v1/events?last_event_id=%s" % urlquote(mark))
    wait_n(r, 3, 5, "events after id %s" % mark)
    time.sleep(0.4)
    got = list(r.events)
    assert call_ids(got) == [c2["id"], c3["id"], c4["id"]], "resume after %s: %r" % (mark, got)
    assert got[0].id == evs[1].id and got[0].data == evs[1].data, (got[0], evs[1])
    assert all(int(e.id) > int(mark) for e in got)
    assert_increasing(got)
    for e in got:
        check_event(e)

    # and it continues live
    c5 = end_queued_call(cp)
    wait_n(r, 4, 5, "live event after the replayed ones")
    assert call_ids(r.events)[3:] == [c5["id"]], r.events
    assert_increasing(r.events)


def test_resume_over_many_missed_events(cp, streams):
    cp.setup_world()
    cp.start()
    s = streams.open(cp.key)
    c0 = end_queued_call(cp)
    mark = wait_n(s, 1, 5, "first event")[0].id
    s.close()
    n = 230
    missed = [end_queued_call(cp)["id"] for _ in range(n)]
    r = streams.open(cp.key, headers={"Last-Event-ID": mark})
    wait_n(r, n, 15, "missed events")
    time.sleep(0.3)
    got = list(r.events)
    assert len(got) == n, "resumed %d events, %d were missed" % (len(got), n)
    assert call_ids(got) == missed, "resumed events are not the missed ones in order"
    assert_increasing(got)
    assert c0["id"] not in call_ids(got)


def test_resume_after_restart_comes_from_the_outbox(cp, streams):
    cp.setup_world()
    cp.start()
    s = streams.open(cp.key)
    c1 = end_queued_call(cp)
    c2 = end_queued_call(cp)
    evs = wait_n(s, 2, 5, "events of c1, c2")
    s.close()
    cp.kill9()
    cp.start()
    r = streams.open(cp.key, headers={"Last-Event-ID": evs[0].id})
    got = wait_n(r, 1, 5, "c2's event after restart")
    assert call_ids(got)[:1] == [c2["id"]], got
    assert got[0].id == evs[1].id and got[0].data == evs[1].data, (got[0], evs[1])
    c3 = end_queued_call(cp)
    got = wait_n(r, 2, 5, "live event after restart")
    assert call_ids(got) == [c2["id"], c3["id"]], got
    assert_increasing(got)
    assert c1["id"] not in call_ids(got)


# ---------------------------------------------------------------------------------- errors


def test_unauthenticated_stream_401(srv):
    assert_error(srv.request("GET", "/v1/events"), 401, "unauthorized")
    assert_error(srv.request("GET", "/v1/events", key=srv.key + "x"), 401, "unauthorized")
    revoked_id, revoked = srv.key_create(srv.tenant)
    srv.key_revoke(revoked_id)
    assert_error(srv.request("GET", "/v1/events", key=revoked), 401, "unauthorized")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "12abc", "99999999999999999999999"])
def test_bad_last_event_id_400(srv, value):
    r = srv.request("GET", "/v1/events", key=srv.key, headers={"Last-Event-ID": value})
    assert_error(r, 400, "invalid_request")
    r = srv.request("GET", "/v1/events?last_event_id=%s" % urlquote(value), key=srv.key)
    assert_error(r, 400, "invalid_request")


def test_events_wrong_method_405(srv):
    assert_error(srv.request("POST", "/v1/events", {}, key=srv.key), 405, "method_not_allowed")


# ------------------------------------------------------------------------------ keepalive


def test_idle_stream_gets_keepalive_comment(cp, streams):
    """`: keepalive` every 15 s (the one slow test here: ~17 s).  The stream is opened a
    moment after the server started, so a keepalive timer that runs from server start rather
    than from the client's last write shows up as a late (up to 30 s) first keepalive."""
    cp.setup_world()
    cp.start()
    time.sleep(1.5)
    s = streams.open(cp.key)
    t0 = time.monotonic()
    deadline = t0 + 17.5
    while time.monotonic() < deadline and "keepalive" not in s.comments and not s.closed_by_peer:
        time.sleep(0.2)
    took = time.monotonic() - t0
    assert "keepalive" in s.comments, "no ': keepalive' within %.1f s of an idle stream (documented: every " \
        "15 s); comments %r closed=%s" % (took, s.comments, s.closed_by_peer)
    assert took >= 13, "keepalive after %.1f s, documented every 15 s" % took
    assert s.events == [], s.events
    # still live afterwards
    c = end_queued_call(cp)
    assert call_ids(wait_n(s, 1, 5, "event after a keepalive")) == [c["id"]]


# ------------------------------------------------------------------------------ churn


def test_streams_opened_and_dropped_while_events_flow(cp, streams):
    """Clients that connect and vanish (without reading, mid-stream) while calls end must not
    disturb the server or the streams that stay (ASan build: no memory errors at exit)."""
    cp.setup_world()
    cp.start()
    steady = streams.open(cp.key)
    n_calls = 40
    created = [cp.create_call() for _ in range(n_calls)]

    def churn(i):
        for _ in range(6):
            r = SseReader(cp.port, key=cp.key)
            r.open()
            assert r.status == 200, r.status
            if i % 2:
                r.start()
                time.sleep(0.01)
            r.close()
        return True

    def ender(c):
        return cp.request("POST", "/v1/calls/%s/end" % c["id"], None, key=cp.key).status

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
        churners = [ex.submit(churn, i) for i in range(6)]
        codes = list(ex.map(ender, created, timeout=60))
        assert all(f.result(timeout=60) for f in churners)
    assert codes == [200] * n_calls, codes
    wait_n(steady, n_calls, 10, "events on the steady stream")
    time.sleep(0.3)
    assert len(steady.events) == n_calls, len(steady.events)
    assert_increasing(steady.events)
    assert sorted(call_ids(steady.events)) == sorted(c["id"] for c in created)
    r = cp.request("GET", "/healthz")
    assert r.status == 200, r


# -------------------------------------------------------------------------------- shutdown


def test_sigterm_with_open_streams_is_graceful(cp, streams):
    cp.setup_world()
    cp.start()
    s1 = streams.open(cp.key)
    s2 = streams.open(cp.key)
    c = end_queued_call(cp)
    for s in (s1, s2):
        assert call_ids(wait_n(s, 1, 5, "an event before shutdown")) == [c["id"]]
    # a third client that connected but was never read from
    idle = SseReader(cp.port, key=cp.key).open()
    streams.readers.append(idle)
    assert idle.status == 200
    t0 = time.monotonic()
    cp.stop()          # SIGTERM; asserts exit code 0 and no sanitizer report
    took = time.monotonic() - t0
    assert took < 5, "shutdown with open event streams took %.1f s" % took
    for s in (s1, s2):
        assert s.wait_closed(3), "the server exited but the stream is still open"


def test_streams_per_key_capped_and_a_closed_one_freed_promptly(cp):
    """--events-per-key N: a key's N+1st stream is refused 429 while N are open; a stream whose
    client closed is noticed within about a second (not at the next 15 s keepalive), and its
    place is free again."""
    cp.setup_world()
    cp.start(extra_args=["--events-per-key", "2"])
    a = SseReader(cp.port, key=cp.key)
    b = SseReader(cp.port, key=cp.key)
    a.open()
    b.open()
    assert (a.status, b.status) == (200, 200)
    c = SseReader(cp.port, key=cp.key)
    c.open()
    assert c.status == 429, (c.status, c.head_raw)
    assert json.loads(c.read_body()) == {"error": {"code": "rate_limited", "message": (
        "this key has 2 event streams open, the most it may have (--events-per-key)")}}
    c.close()
    # another key of the tenant has its own places
    _kid, other = cp.key_create(cp.tenant)
    d = SseReader(cp.port, key=other)
    d.open()
    assert d.status == 200
    a.close()

    def reopened():
        e = SseReader(cp.port, key=cp.key)
        e.open()
        if e.status == 200:
            return e
        e.close()
        return None
    t0 = time.monotonic()
    e = wait_for(reopened, 5, interval=0.2)
    assert e, "the closed stream still held its place 5 s later"
    assert time.monotonic() - t0 < 5
    for s in (b, d, e):
        s.close()
