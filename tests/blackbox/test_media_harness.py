"""Proofs that the media test harness works against real programs, independent of callplane's
media plane: baresip calls baresip over loopback (tone both ways, DTMF, BYE, RTP timeout), the
test agent (media_agent.py) talks to a websockets client, and baresip signals with today's
callplane (outbound and inbound, answered and ended by the API).
"""

import asyncio
import base64
import json
import time

import pytest

import media_audio
from baresip_peer import Baresip
from media_agent import MediaAgent



@pytest.fixture
def baresips(tmp_path):
    out = []

    def make(**kw):
        b = Baresip(tmp_path, **kw)
        out.append(b)
        return b.start()

    yield make
    for b in out:
        b.stop()


def test_harness_baresip_to_baresip(baresips):
    """a (440 Hz) calls b (1000 Hz); each one's sndfile dump of what it received is the other's
    tone; a presses 4#7; a hangs up and b sees the BYE."""
    a = baresips(name="a", user="alice", tone_hz=440, rtp_timeout=0)
    b = baresips(name="b", user="bob", tone_hz=1000, rtp_timeout=0)
    a.dial(b.uri)
    b.wait_established(5)
    a.wait_established(5)
    a.wait_event("CALL_RTPESTAB", 3)
    b.wait_event("CALL_RTPESTAB", 3)
    time.sleep(1.0)
    a.send_dtmf("4#7")
    b.wait_dtmf("4#7", 3)
    time.sleep(0.3)
    a.hangup()
    assert b.wait_closed(3)["param"] == "Connection reset by peer", b.report()
    assert b.bye_received()
    a.wait_closed(3)

    got_b = b.dec_samples()
    got_a = a.dec_samples()
    media_audio.assert_frequency(got_b, 440, what="audio b received")
    media_audio.assert_frequency(got_a, 1000, what="audio a received")
    assert media_audio.tone_seconds(got_b, 440) >= 0.8, media_audio.tone_seconds(got_b, 440)
    assert media_audio.tone_seconds(got_a, 1000) >= 0.8, media_audio.tone_seconds(got_a, 1000)


def test_harness_baresip_rtp_timeout_is_detected(baresips):
    """b answers with a short rtp_timeout; a stops sending (SIGSTOP) -> b closes the call with
    "rtp stream error" after ~2 s: the signal the media tests use for "no RTP reached the far end"."""
    import os
    import signal
    a = baresips(name="a", user="alice", rtp_timeout=0)
    b = baresips(name="b", user="bob", rtp_timeout=2)
    a.dial(b.uri)
    b.wait_established(5)
    b.wait_event("CALL_RTPESTAB", 3)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        ev = b.wait_closed(6)
        took = time.monotonic() - t0
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    assert ev["param"] == "rtp stream error", b.report()
    assert 1.5 <= took <= 4.5, took
    assert "no audio RTP packets received" in b.log()
    # the BYE b sent while a was stopped is handled once a runs again (test_media's media_timeout
    # test relies on this)
    assert a.wait_closed(5)["param"] == "Connection reset by peer", a.report()


def test_harness_media_agent_with_websockets_client():
    """The test agent against a plain websockets client speaking the server's side of the
    Twilio Media Streams protocol: connected/start/media/dtmf/mark/stop in, media/mark/clear out."""
    import websockets

    agent = MediaAgent().start()
    try:
        tone = media_audio.tone_ulaw(440, 1.0)

        async def server_side():
            async with websockets.connect(agent.url + "?x=1") as ws:
                await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
                await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
                                          "start": {"streamSid": "MZ1", "callSid": "c1", "tracks": ["inbound"],
                                                    "customParameters": {"k": "v"},
                                                    "mediaFormat": {"encoding": "audio/x-mulaw",
                                                                    "sampleRate": 8000, "channels": 1}}}))
                for i, fr in enumerate(media_audio.frames(tone)):
                    await ws.send(json.dumps({"event": "media", "sequenceNumber": str(i + 2), "streamSid": "MZ1",
                                              "media": {"track": "inbound", "chunk": str(i + 1),
                                                        "timestamp": str(i * 20),
                                                        "payload": base64.b64encode(fr).decode()}}))
                await ws.send(json.dumps({"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "60",
                                          "dtmf": {"track": "inbound_track", "digit": "5"}}))
                # what the agent sends back
                out = []
                t0 = time.monotonic()
                while time.monotonic() - t0 < 5:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    out.append(m)
                    if m["event"] == "clear":
                        break
                await ws.send(json.dumps({"event": "stop", "sequenceNumber": "61", "streamSid": "MZ1",
                                          "stop": {"callSid": "c1"}}))
                return out, time.monotonic() - t0

        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(asyncio.run, server_side())
            agent.wait_event("start", 3)
            assert agent.stream_sid == "MZ1"
            assert agent.path == "/agent?x=1", agent.path
            agent.wait_event("dtmf", 3)
            t0 = time.monotonic()
            agent.send_tone(1000, 0.5, realtime=True)
            took = time.monotonic() - t0
            agent.send_mark("m1")
            agent.send_clear()
            out, _ = fut.result(10)
        assert 0.4 <= took <= 1.0, "0.5 s of audio paced in real time took %.2fs" % took
        agent.wait_event("stop", 3)
        assert agent.connection_count() == 1
        assert [m["event"] for m in out] == ["media"] * 25 + ["mark", "clear"], [m["event"] for m in out]
        assert all(m["streamSid"] == "MZ1" for m in out)
        sent = b"".join(base64.b64decode(m["media"]["payload"]) for m in out if m["event"] == "media")
        assert len(sent) == 4000
        media_audio.assert_frequency(media_audio.ulaw_decode(sent), 1000, what="agent tone")
        assert out[-2]["mark"] == {"name": "m1"}
        assert agent.dtmf_digits() == "5"
        assert agent.inbound_ulaw() == tone
        media_audio.assert_frequency(agent.inbound_pcm(), 440, what="agent inbound")
        assert agent.start_message()["start"]["customParameters"] == {"k": "v"}
    finally:
        agent.stop()


def test_harness_media_agent_refuses_and_closes():
    """refuse(): the handshake gets HTTP 503; close(): the open socket is closed by the agent;
    stop_listening(): connecting is refused at TCP level."""
    import websockets

    agent = MediaAgent().start()
    try:
        async def connect_and_wait_close():
            async with websockets.connect(agent.url) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as e:
                    return e.code
            return None

        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(asyncio.run, connect_and_wait_close())
            agent.wait_connections(1, 3)
            agent.close(code=1001)
            assert fut.result(5) == 1001
        agent.wait_disconnects(1, 3)

        agent.refuse()

        async def try_connect():
            try:
                async with websockets.connect(agent.url, open_timeout=3):
                    return "open"
            except websockets.InvalidStatusCode as e:
                return e.status_code
            except OSError as e:
                return type(e).__name__

        assert asyncio.run(try_connect()) == 503
        assert agent.refused_count() == 1
        agent.stop_listening()
        assert asyncio.run(try_connect()) == "ConnectionRefusedError"
        assert agent.connection_count() == 1
    finally:
        agent.stop()


# ------------------------------------------------------------- baresip with callplane (SIP only)


@pytest.fixture
def world(cp, tmp_path):
    from media_world import MediaWorld, NUMBER
    cp.setup_world(number=NUMBER)
    w = MediaWorld(cp, tmp_path)
    yield w
    w.close()


def test_harness_callplane_calls_baresip_and_ends_it(world):
    """Signalling only (valid with or without the media plane): callplane's INVITE is
    auto-answered by baresip, the API end puts a BYE on the wire that baresip reports."""
    world.start()
    far = world.baresip(rtp_timeout=0)
    call = world.dial(far)
    far.wait_established(5)
    world.wait_status(call["id"], "in_progress", 5)
    ended = world.cp.end_call(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "ended_by_api", ended
    assert far.wait_closed(5)["param"] == "Connection reset by peer", far.report()


def test_harness_baresip_calls_callplane_and_hangs_up(world):
    """baresip dials the agent's number at callplane (inbound), callplane answers; baresip hangs
    up and the call completes (remote BYE)."""
    world.start()
    far = world.baresip(rtp_timeout=0)
    far.dial(world.inbound_uri())
    far.wait_established(5)
    call = world.wait_inbound(5)
    assert call["agent_id"] == world.cp.agent, call
    far.hangup()
    ended = world.wait_ended(call["id"], 5)
    assert ended["status"] == "completed", ended
