"""Black-box media plane tests: callplane bridges a call's RTP to an agent's WebSocket.

The far end is a real baresip (baresip_peer.Baresip: auto-answer, plays a sine from a WAV, dumps
what it decodes to a WAV, sends/receives RFC 4733 DTMF, reports BYE and RTP timeouts); the agent
is media_agent.MediaAgent, a WebSocket server speaking Twilio Media Streams.  Audio is checked by
frequency (media_audio: Goertzel), never byte for byte: the far end plays 440 Hz, the agent
plays other tones.

The contract (issue text, condensed):
- `serve --media-timeout SECONDS` (default 60; no RTP in -> end_reason media_timeout) and
  `--agent-grace-ms MS` (default 2000);
- `agent create ... --stream-url ws://...`; `POST /v1/calls` takes `stream_url` (wins);
- answered call with a stream URL -> WebSocket client to it; server->agent `connected`, `start`
  (callSid = call id, customParameters = metadata, mediaFormat audio/x-mulaw 8000 1), `media`
  (160-byte mu-law payloads = 20 ms), `dtmf`, `mark` (echo), `stop`; agent->server `media`
  (played in real time), `mark` (echoed once the audio queued before it was played), `clear`;
- `POST /v1/calls/{id}/dtmf {"digits": "..."}` sends RFC 4733 digits to the far end;
- agent socket closed and not back within the grace -> `agent_disconnected` + BYE; stream URL
  unreachable -> `agent_unavailable` within ~3 s; no RTP in -> `media_timeout`.

Run alone: `make && /usr/bin/python3 -m pytest -q tests/blackbox/test_media.py` (CALLPLANE_BIN
picks another binary, e.g. build/asan/callplane). test_media_harness.py proves the harness
itself (baresip <-> baresip, the agent against a websockets client).
"""

import base64
import json
import os
import signal
import time

import pytest

import media_audio
from media_world import NUMBER
from sipp_peer import free_port, wait_for


GRACE_MS = 500
FAR_HZ = 440          # what baresip plays
AGENT_HZ = 1000       # what the agent plays
MULAW = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
ACTIVE = ("queued", "ringing", "in_progress")


def start_server(media, *extra):
    media.start("--agent-grace-ms", str(GRACE_MS), *extra)


def bridged_outbound(media, codecs="PCMU,PCMA", metadata=None, rtp_timeout=3, via="agent", extra=()):
    """Server + agent + baresip; POST /v1/calls to baresip with the agent's stream URL (from the
    agent record, or `stream_url` in the POST with via="post"); waits for the answer and the
    agent's start message.  Returns (agent, far, call)."""
    start_server(media, *extra)
    agent = media.agent()
    far = media.baresip(rtp_timeout=rtp_timeout, codecs=codecs)
    fields = {}
    if metadata is not None:
        fields["metadata"] = metadata
    if via == "agent":
        agent_id = media.agent_create(number=NUMBER, stream_url=agent.url)
    else:
        agent_id = media.agent_create(number=NUMBER)
        fields["stream_url"] = agent.url
    call = media.dial(far, agent=agent_id, **fields)
    far.wait_established(5)
    media.wait_status(call["id"], "in_progress", 5)
    agent.wait_event("start", 5)
    return agent, far, call


def assert_ended(media, call_id, end_reason, timeout):
    c = media.wait_ended(call_id, timeout)
    assert c["end_reason"] == end_reason, "end_reason %r, expected %r: %r\n%s" % (
        c["end_reason"], end_reason, c, media.diagnostics())
    return c


def assert_bye(media, far, timeout=5.0):
    ev = far.wait_closed(timeout)
    assert ev["param"] == "Connection reset by peer", "baresip's call did not end by a BYE: %r\n%s" % (
        ev, media.diagnostics())


def assert_numbered(agent, conn=1):
    """docs/MEDIA.md: `sequenceNumber` counts every message of the stream from "1" (the
    `start`); `connected` has none. Returns the messages of `conn`."""
    msgs = agent.events(conn=conn)
    seqs = [m.get("sequenceNumber") for m in msgs]
    assert seqs == [None] + [str(i) for i in range(1, len(msgs))], seqs
    return msgs


def seconds_of(samples, hz):
    return media_audio.tone_seconds(samples, hz)


# ---------------------------------------------------------------------------- (a) outbound


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_outbound_bridge_carries_audio_both_ways(media, codec):
    metadata = {"customer": "c-42", "lang": "en"}
    agent, far, call = bridged_outbound(media, codecs=codec, metadata=metadata, rtp_timeout=3)
    t_up = time.monotonic()

    # connected, then start, exactly as documented
    first = agent.events(conn=1)
    assert first[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}, first[:2]
    start = first[1]
    assert start["event"] == "start", first[:2]
    assert start["sequenceNumber"] == "1", start
    sid = start["streamSid"]
    assert isinstance(sid, str) and sid.startswith("MZ"), start
    s = start["start"]
    assert s["streamSid"] == sid, start
    assert s["callSid"] == call["id"], start
    assert s["tracks"] == ["inbound"], start
    assert s["mediaFormat"] == MULAW, start
    assert s["customParameters"] == metadata, start
    assert "accountSid" in s, start
    assert agent.path == "/agent", agent.path

    # the far end's tone reaches the agent as 20 ms mu-law media messages
    pcm = agent.wait_audio(2.0, timeout=6)
    media_audio.assert_frequency(pcm, FAR_HZ, 0.03, what="audio the agent received")
    assert seconds_of(pcm, FAR_HZ) >= 1.5, (seconds_of(pcm, FAR_HZ), agent.report())
    msgs = agent.events("media")
    for m in msgs[:50]:
        assert m["streamSid"] == sid and m["media"]["track"] == "inbound", m
        assert len(base64.b64decode(m["media"]["payload"])) == 160, m
    seqs = [int(m["sequenceNumber"]) for m in msgs]
    chunks = [int(m["media"]["chunk"]) for m in msgs]
    stamps = [int(m["media"]["timestamp"]) for m in msgs]
    assert seqs == list(range(2, 2 + len(seqs))), seqs[:10]     # after the start, nothing else
    assert chunks == list(range(chunks[0], chunks[0] + len(chunks))), chunks[:10]
    assert stamps == sorted(stamps), stamps[:10]

    # the agent's tone (2 s, real time) reaches the far end
    agent.send_tone(AGENT_HZ, 2.0, realtime=True)
    time.sleep(0.5)

    # callplane kept sending RTP (silence or agent audio): baresip's 3 s RTP timeout never fired
    left = t_up + 4.5 - time.monotonic()
    if left > 0:
        time.sleep(left)
    assert far.closed() is None, "baresip closed the call (no RTP from callplane?)\n%s" % media.diagnostics()
    assert media.call(call["id"])["status"] == "in_progress"

    media.cp.end_call(call["id"])
    assert_bye(media, far)
    heard = far.dec_samples()
    assert seconds_of(heard, AGENT_HZ) >= 1.5, (
        "baresip heard %.1f s of the agent's %d Hz\n%s" % (seconds_of(heard, AGENT_HZ), AGENT_HZ, media.diagnostics()))
    loud = media_audio.loudest_window(heard, 4000)
    media_audio.assert_frequency(loud, AGENT_HZ, 0.03, what="audio baresip received")


def test_stream_url_in_post_wins_over_the_agents(media):
    start_server(media)
    configured = media.agent(path="/configured")
    posted = media.agent(path="/posted")
    far = media.baresip()
    agent_id = media.agent_create(number=NUMBER, stream_url=configured.url)
    call = media.dial(far, agent=agent_id, stream_url=posted.url)
    far.wait_established(5)
    start = posted.wait_event("start", 5)[0]
    assert start["start"]["callSid"] == call["id"]
    assert posted.path == "/posted"
    time.sleep(0.5)
    assert configured.connection_count() == 0, configured.report()


# ------------------------------------------------------------------------------- (b) DTMF


def test_dtmf_from_far_end_reaches_agent_in_order(media):
    agent, far, call = bridged_outbound(media)
    far.wait_event("CALL_RTPESTAB", 3)
    far.send_dtmf("12#9*")
    got = agent.wait_event("dtmf", 5, n=5)
    assert [m["dtmf"]["digit"] for m in got] == list("12#9*"), (got, far.report())
    sid = agent.stream_sid
    for m in got:
        assert m["streamSid"] == sid and m["dtmf"]["track"] == "inbound_track", m
    time.sleep(0.5)
    assert_numbered(agent)                           # the dtmf messages among the media
    assert agent.dtmf_digits() == "12#9*", "one key press must give one dtmf message: %r" % agent.events("dtmf")
    # and one call.dtmf event each (what SSE and webhooks deliver), in order, the call unchanged.
    # The agent's message and the stored event part at the engine, and the event is written
    # by the call service's worker afterwards: wait for the rows, not for the agent.
    import sqlite3

    def dtmf_rows():
        db = sqlite3.connect("file:%s?mode=ro" % media.cp.db, uri=True, timeout=10)
        try:
            return db.execute("SELECT payload FROM events WHERE call_id = ? AND type = 'call.dtmf'"
                              " ORDER BY seq", (call["id"],)).fetchall()
        finally:
            db.close()

    rows = [None]

    def five_rows():
        rows[0] = dtmf_rows()
        return len(rows[0]) >= 5

    wait_for(five_rows, 5)
    payloads = [json.loads(r[0]) for r in rows[0]]
    assert [p["digit"] for p in payloads] == list("12#9*"), payloads
    assert all(p["data"]["id"] == call["id"] and p["data"]["status"] == "in_progress" for p in payloads), payloads


def test_dtmf_posted_to_api_reaches_far_end(media):
    agent, far, call = bridged_outbound(media)
    r = media.cp.request("POST", "/v1/calls/%s/dtmf" % call["id"], {"digits": "12#"}, key=media.cp.key)
    assert r.status == 202 and r.json == {"call_id": call["id"], "digits": "12#"}, r
    far.wait_dtmf("12#", 5)
    r = media.cp.request("POST", "/v1/calls/%s/dtmf" % call["id"], {"digits": "0*"}, key=media.cp.key)
    assert r.status == 202 and r.json == {"call_id": call["id"], "digits": "0*"}, r
    far.wait_dtmf("12#0*", 5)
    assert "received event: '1'" in far.log()


# ------------------------------------------------------------------------- (c) watchdogs


def test_agent_closes_and_refuses_reconnect_ends_agent_disconnected(media):
    agent, far, call = bridged_outbound(media, rtp_timeout=0)
    agent.refuse()
    t0 = time.monotonic()
    agent.close()
    c = assert_ended(media, call["id"], "agent_disconnected", 5)
    took = time.monotonic() - t0
    assert c["status"] == "completed", c
    assert took >= GRACE_MS / 1000.0 - 0.1, "ended %.2fs after the close, before the %d ms grace" % (took, GRACE_MS)
    assert took <= GRACE_MS / 1000.0 + 2.5, took
    assert_bye(media, far)
    assert agent.refused_count() >= 1, "callplane did not try to reconnect within the grace\n%s" % agent.report()


def test_agent_reconnect_within_grace_keeps_call(media):
    agent, far, call = bridged_outbound(media, rtp_timeout=0)
    agent.close()
    conns = agent.wait_connections(2, GRACE_MS / 1000.0 + 1.5)
    assert conns[1].path == "/agent"
    start2 = agent.wait_event("start", 3, conn=2)[0]
    assert start2["start"]["callSid"] == call["id"], start2
    time.sleep(GRACE_MS / 1000.0 + 1.0)
    assert media.call(call["id"])["status"] == "in_progress", media.diagnostics()
    assert far.closed() is None, far.report()
    pcm = agent.wait_audio(1.0, timeout=4)
    assert agent.events("media", conn=2), "no media on the new connection\n%s" % agent.report()
    media_audio.assert_frequency(media_audio.ulaw_decode(agent.inbound_ulaw(conn=2)), FAR_HZ,
                                 what="audio on the reconnected stream")
    del pcm


def test_agent_that_accepts_and_closes_at_once_ends_agent_disconnected(media):
    """An agent that takes every redial and closes it at once has not come back: the loss goes
    on from the first close, the redials back off (100 ms doubling to 1 s), and the call ends
    agent_disconnected one grace after the first close."""
    agent, far, call = bridged_outbound(media, rtp_timeout=0)
    agent.hang_up()
    t0 = time.monotonic()
    agent.close()
    c = assert_ended(media, call["id"], "agent_disconnected", 6)
    took = time.monotonic() - t0
    assert c["status"] == "completed", c
    assert GRACE_MS / 1000.0 - 0.1 <= took <= GRACE_MS / 1000.0 + 2.5, took
    assert_bye(media, far)
    # redials at about 0, 100 and 300 ms after the close within the tests' 500 ms grace, a few
    # more only if each took long; never one per tick (25 in 500 ms)
    redials = agent.connection_count() - 1
    assert 2 <= redials <= 8, "%d redials in the grace\n%s" % (redials, agent.report())


@pytest.mark.parametrize("how", ["closed_port", "http_503"])
def test_stream_url_unreachable_ends_agent_unavailable(media, how):
    start_server(media)
    far = media.baresip(rtp_timeout=0)
    if how == "closed_port":
        url = "ws://127.0.0.1:%d/agent" % free_port(udp=False, tcp=True)
        refuser = None
    else:
        refuser = media.agent()
        refuser.refuse()
        url = refuser.url
    agent_id = media.agent_create(number=NUMBER, stream_url=url)
    call = media.dial(far, agent=agent_id)
    far.wait_established(5)
    t0 = time.monotonic()
    assert_ended(media, call["id"], "agent_unavailable", 5)
    assert time.monotonic() - t0 <= 5.0
    assert_bye(media, far)
    if refuser is not None:
        assert refuser.refused_count() >= 1, refuser.report()


def test_no_rtp_from_far_end_ends_media_timeout(media):
    agent, far, call = bridged_outbound(media, rtp_timeout=0, extra=("--media-timeout", "2"))
    agent.wait_audio(0.5, timeout=4)
    os.kill(far.proc.pid, signal.SIGSTOP)     # baresip stops sending RTP (and reading SIP)
    t0 = time.monotonic()
    try:
        c = assert_ended(media, call["id"], "media_timeout", 6)
        took = time.monotonic() - t0
    finally:
        os.kill(far.proc.pid, signal.SIGCONT)
    assert c["status"] == "completed", c
    assert 1.5 <= took <= 4.5, "media_timeout after %.2fs of silence with --media-timeout 2" % took
    assert_bye(media, far)
    agent.wait_event("stop", 3)


# ------------------------------------------------------------------------------ (e) inbound


def test_inbound_call_bridged_to_agent(media):
    start_server(media)
    agent = media.agent()
    media.agent_create(number=NUMBER, stream_url=agent.url)
    far = media.baresip(rtp_timeout=3)
    far.dial(media.inbound_uri(NUMBER))
    far.wait_established(5)
    call = media.wait_inbound(5)
    start = agent.wait_event("start", 5)[0]
    assert start["start"]["callSid"] == call["id"], (start, call)
    assert start["start"]["mediaFormat"] == MULAW, start
    pcm = agent.wait_audio(1.5, timeout=5)
    media_audio.assert_frequency(pcm, FAR_HZ, 0.03, what="inbound audio at the agent")
    agent.send_tone(AGENT_HZ, 1.5, realtime=True)
    time.sleep(0.3)
    far.hangup()
    c = media.wait_ended(call["id"], 5)
    assert c["status"] == "completed", c
    agent.wait_event("stop", 3)
    agent.wait_disconnects(1, 3)
    assert seconds_of(far.dec_samples(), AGENT_HZ) >= 1.0, media.diagnostics()


# --------------------------------------------------------------------------- (f) API end


def test_api_end_sends_stop_closes_socket_and_byes(media):
    agent, far, call = bridged_outbound(media, rtp_timeout=0)
    agent.wait_audio(0.5, timeout=4)
    ended = media.cp.end_call(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "ended_by_api", ended
    stop = agent.wait_event("stop", 3)[0]
    assert stop["streamSid"] == agent.stream_sid, stop
    assert stop["stop"]["callSid"] == call["id"], stop
    assert "accountSid" in stop["stop"], stop
    agent.wait_disconnects(1, 3)
    assert assert_numbered(agent)[-1] == stop, "a message after the stop"
    assert agent.events()[-1]["event"] == "stop", agent.report()
    assert_bye(media, far)
    assert agent.connection_count() == 1, "callplane reconnected after the call ended\n%s" % agent.report()


# ----------------------------------------------------------------------- (g) mark and clear


def test_mark_echoed_after_queued_audio_played(media):
    agent, far, call = bridged_outbound(media, rtp_timeout=0)
    # nothing queued: echoed at once
    t_empty = agent.send_mark("empty")
    echo = agent.wait_event("mark", 3, pred=lambda m: m["mark"]["name"] == "empty")[0]
    assert echo["streamSid"] == agent.stream_sid, echo
    t_echo_empty = [t for t, m in agent.timed("mark") if m["mark"]["name"] == "empty"][0]
    assert t_echo_empty - t_empty < 0.5, t_echo_empty - t_empty

    # 1 s queued at once: the echo comes when it has been played (real time)
    agent.send_tone(AGENT_HZ, 1.0, realtime=False)
    t_sent = agent.send_mark("after-tone")
    agent.wait_event("mark", 5, pred=lambda m: m["mark"]["name"] == "after-tone")
    t_echo = [t for t, m in agent.timed("mark") if m["mark"]["name"] == "after-tone"][0]
    assert 0.8 <= t_echo - t_sent <= 2.5, "mark echoed %.2fs after 1 s of audio was queued" % (t_echo - t_sent)
    assert len(agent.events("mark")) == 2, agent.events("mark")

    media.cp.end_call(call["id"])
    assert_bye(media, far)
    assert seconds_of(far.dec_samples(), AGENT_HZ) >= 0.8, media.diagnostics()


def test_clear_drops_queued_audio(media):
    agent, far, call = bridged_outbound(media, rtp_timeout=0)
    t0 = time.monotonic()
    agent.send_tone(AGENT_HZ, 1.0, realtime=False)     # plays 0..1 s
    agent.send_tone(1500, 4.0, realtime=False)         # would play 1..5 s
    time.sleep(max(0.0, t0 + 1.6 - time.monotonic()))
    agent.send_clear()                                  # ~0.6 s of 1500 Hz played, 3.4 s dropped
    time.sleep(1.0)
    agent.send_tone(700, 0.8, realtime=False)          # audio after a clear still plays
    time.sleep(1.5)
    media.cp.end_call(call["id"])
    assert_bye(media, far)
    heard = far.dec_samples()
    s1000, s1500, s700 = seconds_of(heard, AGENT_HZ), seconds_of(heard, 1500), seconds_of(heard, 700)
    detail = "heard 1000 Hz %.1fs, 1500 Hz %.1fs, 700 Hz %.1fs\n%s" % (s1000, s1500, s700, media.diagnostics())
    assert s1000 >= 0.8, detail
    assert 0.2 <= s1500 <= 1.5, detail
    assert s700 >= 0.5, detail
