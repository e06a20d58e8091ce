"""Web calls on the wire (issue 11, section 3; docs/API.md "Web calls", docs/MEDIA.md "Web
calls"), with a scripted browser: web_browser.FakeBrowser speaks the page's protocol over the
real WebSocket; test_webcall.py drives the page itself in Chromium.

The agent is media_agent.MediaAgent (Twilio Media Streams), as for phone calls. Audio is checked
by frequency (media_audio: Goertzel), never byte for byte: the browser sends 440 Hz at its own
rate (16 kHz here), the agent plays 1000 Hz.

What is checked: the 201 of POST /v1/web-calls and its token; the page; joining bridges the
browser to the agent both ways; every refusal of a token (unknown, another call's, used,
expired, its call ended; a request that is not a WebSocket handshake) is 401 (400) and changes
nothing; a web call nobody joins ends no_answer/token_expired; every end route ends a web call
and the browser is told; the browser leaving (close frame, reset, silence past
--media-timeout) ends it; events and webhooks; recordings; a goodbye reaches the browser; a
shutdown ends web calls; without a media engine no web call is made.
"""

import base64
import re
import time
import urllib.parse

import pytest

import media_audio
from cp import CALL_KEYS, assert_call_shape, assert_error, is_ts, parse_ts, split_end
from media_world import NUMBER
from receiver import Receiver, SseReader
from sipp_peer import wait_for
from web_browser import FakeBrowser, handshake

RATE = 16000
BROWSER_HZ = 440
AGENT_HZ = 1000
WEB_KEYS = CALL_KEYS | {"access_token", "access_token_expires_at", "web_url"}
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
CARTESIA_VERSION = "2026-03-01"


# --------------------------------------------------------------------------------- helpers


class World:
    """A server with the SIP engine (the media plane), an agent with a stream URL on NUMBER,
    and the browsers a test opens (stopped with it)."""

    def __init__(self, media, *server_args, agent_args=()):
        self.media = media
        self.cp = media.cp
        media.start("--agent-grace-ms", "500", *server_args)
        self.agent = media.agent()
        self.agent_id = media.agent_create("web-agent", number=NUMBER, stream_url=self.agent.url,
                                           **dict(agent_args))
        self.browsers = []

    def create(self, expect=201, key=None, **fields):
        body = {"agent_id": self.agent_id}
        body.update(fields)
        r = self.cp.request("POST", "/v1/web-calls", body, key=key or self.cp.key)
        assert r.status == expect, "POST /v1/web-calls %r -> %r" % (body, r)
        return r.json

    def browser(self, call, token=None, rate=RATE, call_id=None):
        b = FakeBrowser(self.cp.port, call_id or call["id"], token or call["access_token"], rate)
        self.browsers.append(b)
        return b.connect()

    def joined(self, **fields):
        """A web call its browser has joined, with the agent's start received."""
        call = self.create(**fields)
        b = self.browser(call)
        assert b.refused is None, b.refused
        assert b.wait_event("started") == {"event": "started", "call_id": call["id"]}
        self.media.wait_status(call["id"], "in_progress")
        self.agent.wait_event("start", 5, pred=lambda m: m["start"]["callSid"] == call["id"])
        return call, b

    def page(self, query):
        return self.cp.request("GET", "/web/call?" + query)

    def close(self):
        for b in self.browsers:
            b.stop()


@pytest.fixture
def world_factory(media):
    made = []

    def make(*server_args, **kw):
        w = World(media, *server_args, **kw)
        made.append(w)
        return w
    yield make
    for w in made:
        w.close()


@pytest.fixture
def world(world_factory):
    return world_factory()


def q(call_id, token):
    return urllib.parse.urlencode({"call_id": call_id, "token": token})


def assert_untouched(w, call_id, status="queued"):
    c = w.cp.get_call(call_id)
    assert c["status"] == status and c["end_reason"] is None, c
    return c


def assert_told_ended(b):
    """The browser got {"event":"ended"} and then the close frame, 1000."""
    assert b.wait_closed(5) == 1000, b.close_code
    assert b.events()[-1] == {"event": "ended"}, b.events()


# ------------------------------------------------------------------------ create and page


def test_create_returns_the_call_and_its_token(world):
    t0 = time.time()
    c = world.create(metadata={"customer": "c-1"})
    assert set(c) == WEB_KEYS, sorted(set(c) ^ WEB_KEYS)
    call = {k: v for k, v in c.items() if k in CALL_KEYS}
    assert_call_shape(call)
    assert call["direction"] == "web" and call["status"] == "queued", call
    assert call["from"] is None and call["to"] is None and call["provider_call_id"] is None, call
    assert call["metadata"] == {"customer": "c-1"} and call["agent_id"] == world.agent_id, call
    assert TOKEN_RE.match(c["access_token"]), c["access_token"]
    # 60 s from its creation, to the millisecond
    assert is_ts(c["access_token_expires_at"])
    ttl = parse_ts(c["access_token_expires_at"]) - parse_ts(call["created_at"])
    assert ttl.total_seconds() == 60.0, ttl
    assert abs(parse_ts(call["created_at"]).timestamp() - t0) < 30
    assert c["web_url"] == "/web/call?call_id=%s&token=%s" % (call["id"], c["access_token"]), c
    # the call object everywhere else has no token
    assert world.cp.get_call(call["id"]) == call
    # token_ttl_s chooses the lifetime
    c2 = world.create(token_ttl_s=600)
    ttl = parse_ts(c2["access_token_expires_at"]) - parse_ts(c2["created_at"])
    assert ttl.total_seconds() == 600.0, ttl
    assert c2["access_token"] != c["access_token"]


def test_create_refusals(world, media):
    cp = world.cp
    for body, what in (({}, "agent_id"), ({"agent_id": 5}, "agent_id"),
                       ({"agent_id": world.agent_id, "to": "+15550001234"}, "unknown field"),
                       ({"agent_id": world.agent_id, "metadata": [1]}, "metadata"),
                       ({"agent_id": world.agent_id, "record": "yes"}, "record"),
                       ({"agent_id": world.agent_id, "token_ttl_s": 0}, "token_ttl_s"),
                       ({"agent_id": world.agent_id, "token_ttl_s": 601}, "token_ttl_s"),
                       ({"agent_id": world.agent_id, "token_ttl_s": "60"}, "token_ttl_s")):
        r = cp.request("POST", "/v1/web-calls", body, key=cp.key)
        assert_error(r, 400, "invalid_request")
        assert what in r.json["error"]["message"], (body, r)
    # an unknown agent, another tenant's: 404 as for POST /v1/calls
    assert_error(cp.request("POST", "/v1/web-calls", {"agent_id": "00000000-0000-4000-8000-000000000000"},
                            key=cp.key), 404, "not_found")
    other = cp.tenant_create("tenant-b")
    other_agent = cp.agent_create(other, "b-agent", number="+15550004444")
    assert_error(cp.request("POST", "/v1/web-calls", {"agent_id": other_agent}, key=cp.key), 404, "not_found")
    assert_error(cp.request("POST", "/v1/web-calls", {"agent_id": world.agent_id}), 401, "unauthorized")
    # nothing was stored
    assert cp.list_calls()["data"] == []


def test_page_is_served_and_uses_nothing(world):
    c = world.create()
    for _ in range(2):                              # a reload works as long as nobody joined
        r = world.page(q(c["id"], c["access_token"]))
        assert r.status == 200, r
        assert r.headers["Content-Type"] == "text/html; charset=utf-8", r.headers
        assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
        assert b'<body data-call-state="connecting">' in r.raw and b"/web/ws?" in r.raw, r.raw[:200]
    # the page without call_id (the token names its call) works too
    assert world.page("token=" + c["access_token"]).status == 200
    assert_untouched(world, c["id"])


# ------------------------------------------------------------------------------- audio


def test_join_bridges_browser_and_agent_both_ways(world):
    call, b = world.joined(metadata={"customer": "c-9"})
    got = world.cp.get_call(call["id"])
    assert got["status"] == "in_progress" and is_ts(got["answered_at"]), got
    start = world.agent.start_message()
    assert start["start"]["callSid"] == call["id"], start
    assert start["start"]["customParameters"] == {"customer": "c-9"}, start
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    # the browser speaks: the agent hears 440 Hz at 8 kHz, in 20 ms media messages
    b.send_tone(BROWSER_HZ, 2.0)
    heard = world.agent.wait_audio(1.5, timeout=10)
    media_audio.assert_frequency(heard, BROWSER_HZ, what="the agent's audio from the browser")
    sizes = {len(base64.b64decode(m["media"]["payload"])) for m in world.agent.events("media")}
    assert sizes == {160}, sizes
    # the agent speaks: the browser gets 1000 Hz at its own 16 kHz, 20 ms (320 samples) a message
    n0 = len(b.received())
    world.agent.send_tone(AGENT_HZ, 1.0)
    b.wait_audio(n0 / RATE + 1.0, timeout=10)
    played = b.received()[n0:]
    media_audio.assert_frequency(played, AGENT_HZ, rate=RATE, what="the browser's audio from the agent")
    assert len(b.received()) % 320 == 0
    # the browser closes its tab: remote_hangup, and the agent hears stop
    b.close()
    ended = world.media.wait_ended(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "remote_hangup", ended
    world.agent.wait_event("stop", 5, pred=lambda m: m["stop"]["callSid"] == call["id"])


# ------------------------------------------------------------------------------ tokens


def test_bad_tokens_are_401_and_change_nothing(world):
    port = world.cp.port
    a, other = world.create(), world.create()
    unknown = "A" * 43
    # unknown, and another call's: the page and the socket refuse alike
    for query in ("token=" + unknown, q(a["id"], unknown), q(other["id"], a["access_token"])):
        r = world.page(query)
        assert r.status == 401 and r.headers["Content-Type"] == "text/html; charset=utf-8", r
        assert b'data-call-state="ended"' in r.raw, r.raw
        assert handshake(port, query) == 401, query
    r = world.page("call_id=" + a["id"])                       # no token at all
    assert r.status == 401, r
    # a request that is not a WebSocket handshake uses nothing up
    assert_error(world.cp.request("GET", "/web/ws?" + q(a["id"], a["access_token"])), 400, "invalid_request")
    assert_untouched(world, a["id"])
    assert_untouched(world, other["id"])

    # a's token still opens a's call; once used, it opens nothing more
    b = world.browser(a)
    assert b.wait_event("started")["call_id"] == a["id"]
    world.media.wait_status(a["id"], "in_progress")
    assert handshake(port, q(a["id"], a["access_token"])) == 401
    assert handshake(port, "token=" + a["access_token"]) == 401
    assert world.page(q(a["id"], a["access_token"])).status == 401
    # the call and its browser go on: audio still comes
    n0 = b.binaries
    time.sleep(0.5)
    assert b.binaries > n0 and b.closed_at is None
    assert world.cp.get_call(a["id"])["status"] == "in_progress"
    assert_untouched(world, other["id"])

    # a call ended before anyone joined: its token opens nothing
    ended = world.cp.end_call(other["id"])
    assert ended["status"] == "canceled" and ended["end_reason"] == "ended_by_api", ended
    assert world.page(q(other["id"], other["access_token"])).status == 401
    assert handshake(port, q(other["id"], other["access_token"])) == 401
    assert world.cp.get_call(other["id"]) == ended


def test_expired_token_and_a_call_nobody_joins(world):
    c = world.create(token_ttl_s=1)
    time.sleep(1.2)
    assert world.page(q(c["id"], c["access_token"])).status == 401
    assert handshake(world.cp.port, q(c["id"], c["access_token"])) == 401
    # nothing changed by the refusals; the join window (the token's second and one more)
    # then ends the call
    ended = world.media.wait_ended(c["id"], timeout=5)
    assert ended["status"] == "no_answer" and ended["end_reason"] == "token_expired", ended
    assert ended["answered_at"] is None, ended


# --------------------------------------------------------------------------------- ends


def end_by(w, route, call_id, num_key):
    cp = w.cp
    if route == "canonical":
        r = cp.request("POST", "/v1/calls/%s/end" % call_id, None, key=cp.key)
        return r, "ended_by_api"
    if route == "bulk":
        r = cp.request("POST", "/v1/calls/end", {"reason": "emergency"}, key=cp.key)
        return r, "emergency"
    if route == "voxworks":
        return cp.request("POST", "/api/v1/end-web-call/%s" % call_id, None, key=cp.key), "api_ended"
    if route == "talkover":
        return cp.request("POST", "/api/v1/agents/%s/end-call" % w.agent_id, {"call_sid": call_id},
                          key=cp.key), "ended_by_api"
    if route == "pilotstatus":
        return cp.request("POST", "/v1/calls/%s/terminate" % call_id, None, key=num_key,
                          header_style="x-api-key"), "ended_by_api"
    if route == "cartesia":
        return cp.request("POST", "/agents/calls/%s/cancel" % call_id, None, key=cp.key,
                          headers={"Cartesia-Version": CARTESIA_VERSION}), "api_cancelled"
    raise ValueError(route)


ROUTES = ["canonical", "bulk", "voxworks", "talkover", "pilotstatus", "cartesia"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_end_route_ends_a_web_call(world, route):
    _kid, num_key = world.cp.key_create(world.cp.tenant, number=NUMBER)
    call, b = world.joined()
    b.send_tone(BROWSER_HZ, 3.0)
    r, reason = end_by(world, route, call["id"], num_key)
    assert r.status == 200, r
    if route == "bulk":
        assert r.json == {"ended": 1, "already_ended": 0, "failed": 0}, r
    if route == "voxworks":
        assert r.json == {"success": True, "call_id": call["id"], "status": "completed",
                          "end_reason": "api_ended", "progress": "ended"}, r
    got = world.cp.get_call(call["id"])
    assert got["status"] == "completed" and got["end_reason"] == reason, got
    assert_told_ended(b)
    world.agent.wait_event("stop", 5, pred=lambda m: m["stop"]["callSid"] == call["id"])
    # one transition: the browser's close that follows ends nothing more
    time.sleep(0.2)
    assert world.cp.get_call(call["id"]) == got


def test_a_waiting_web_call_ends_canceled_and_bulk_ends_both_kinds(world):
    waiting = world.create()
    call, b = world.joined()
    r = world.cp.request("POST", "/v1/calls/end", None, key=world.cp.key)
    assert r.status == 200 and r.json == {"ended": 2, "already_ended": 0, "failed": 0}, r
    w = world.cp.get_call(waiting["id"])
    assert w["status"] == "canceled" and w["end_reason"] == "ended_by_api", w
    assert world.cp.get_call(call["id"])["status"] == "completed"
    assert_told_ended(b)
    assert handshake(world.cp.port, q(waiting["id"], waiting["access_token"])) == 401


# -------------------------------------------------------------------- the browser leaving


def test_reset_without_close_frame_ends_remote_hangup(world):
    call, b = world.joined()
    b.abort()
    ended = world.media.wait_ended(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "remote_hangup", ended


def test_silent_browser_is_caught_by_the_media_timeout(world_factory):
    w = world_factory("--media-timeout", "2")
    call, b = w.joined()
    b.send_tone(BROWSER_HZ, 1.0).result(10)        # a second of audio, then nothing
    t0 = time.monotonic()
    ended = w.media.wait_ended(call["id"], timeout=8)
    assert ended["status"] == "completed" and ended["end_reason"] == "media_timeout", ended
    assert time.monotonic() - t0 >= 1.0              # the timeout counts from the last audio
    assert_told_ended(b)


def test_max_duration_ends_a_web_call(world_factory):
    w = world_factory(agent_args={"max_duration": 2})
    call, b = w.joined()
    ended = w.media.wait_ended(call["id"], timeout=6)
    assert ended["status"] == "completed" and ended["end_reason"] == "max_duration", ended
    assert_told_ended(b)


# ------------------------------------------------------------------ events and webhooks


def test_events_and_webhooks_as_for_phone_calls(world):
    rcv = Receiver().start()
    try:
        r = world.cp.cli("webhook", "create", "--tenant", world.cp.tenant, "--url", rcv.url)
        assert r["id"]
        sse = SseReader(world.cp.port, key=world.cp.key)
        sse.open()
        assert sse.status == 200
        sse.start()
        try:
            call, b = world.joined()
            b.close()
            world.media.wait_ended(call["id"])
            evs = sse.wait_events(2, 10, lambda e: e.json["data"]["id"] == call["id"])
            assert [e.json["type"] for e in evs] == ["call.answered", "call.ended"], [e.json for e in evs]
            assert evs[1].json["data"]["direction"] == "web"
            assert evs[1].json["data"]["end_reason"] == "remote_hangup"
        finally:
            sse.close()
        got = rcv.wait_for(2, 10)
        types = [req.json["type"] for req in got if req.json["data"]["id"] == call["id"]]
        assert types == ["call.answered", "call.ended"], types
    finally:
        rcv.stop()


# --------------------------------------------------------------- recordings and goodbye


def test_recorded_web_call_browser_left_agent_right(world):
    call, b = world.joined(record=True)
    b.send_tone(BROWSER_HZ, 2.0)
    time.sleep(0.5)
    world.agent.send_tone(AGENT_HZ, 1.0)
    time.sleep(1.0)
    world.cp.end_call(call["id"])
    got = wait_for(lambda: (lambda c: c if c["has_recording"] else None)(world.cp.get_call(call["id"])), 5)
    assert got and got["recording_url"] == "/v1/calls/%s/recording" % call["id"], got
    r = world.cp.request("GET", got["recording_url"], key=world.cp.key)
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav", r
    wav = media_audio.parse_wav(r.raw, "the recording")
    assert wav["channels"] == 2 and wav["rate"] == 8000, wav
    left, right = wav["samples"]
    media_audio.assert_frequency(left, BROWSER_HZ, what="the recording's left channel (the browser)")
    media_audio.assert_frequency(right, AGENT_HZ, what="the recording's right channel (the agent)")


def test_goodbye_reaches_the_browser_before_it_is_told_the_end(world):
    call, b = world.joined()
    time.sleep(0.3)
    r = world.cp.request("POST", "/v1/calls/%s/end" % call["id"],
                         {"goodbye": {"text": "Thank you for calling. Goodbye."}}, key=world.cp.key, timeout=20)
    assert r.status == 200, r
    ended, goodbye_ms = split_end(r.json)
    assert ended["status"] == "completed" and 1000 <= goodbye_ms <= 4000, (ended, goodbye_ms)
    assert_told_ended(b)
    # the speech came whole before "ended": from its first loud 20 ms to its last, the
    # rendering less espeak-ng's own leading and trailing silence (test_goodbye.py measures
    # 1860 of 1959 ms for this text), and little after it
    before = b.audio_before("ended")
    loud = [i // 320 for i in range(0, len(before) - 319, 320) if media_audio.rms(before[i:i + 320]) > 300]
    assert loud, "the browser heard no goodbye"
    spoken_ms = (loud[-1] + 1 - loud[0]) * 20
    assert goodbye_ms - 200 <= spoken_ms <= goodbye_ms, (spoken_ms, goodbye_ms)
    assert len(before) * 1000 // RATE - (loud[-1] + 1) * 20 <= 100


# ------------------------------------------------------------------------- the server


def test_shutdown_ends_web_calls(world):
    waiting = world.create()
    call, b = world.joined()
    world.cp.stop()                                  # SIGTERM: exit 0 asserted
    assert b.wait_closed(5) == 1000, b.close_code   # told "ended" and closed, as any end
    world.media.start("--agent-grace-ms", "500")
    got = world.cp.get_call(call["id"])
    assert got["status"] == "completed" and got["end_reason"] == "node_shutdown", got
    w = world.cp.get_call(waiting["id"])
    assert w["status"] == "canceled" and w["end_reason"] == "node_shutdown", w


def test_no_media_engine_no_web_call(srv):
    r = srv.request("POST", "/v1/web-calls", {"agent_id": srv.agent}, key=srv.key)
    assert_error(r, 502, "media_unavailable")
    assert srv.list_calls()["data"] == []
