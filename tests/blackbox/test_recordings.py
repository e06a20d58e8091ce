"""Black-box tests of call recordings (docs/API.md "Recordings", docs/MEDIA.md "Recordings").

The far end is a real baresip playing 440 Hz; the agent (media_agent.MediaAgent) plays 1000 Hz.
A recorded call's WAV is a stereo 8 kHz 16-bit file: left the far end, right what callplane
played.  Audio is checked by frequency (media_audio: Goertzel), never byte for byte; the file's
bytes are checked exactly against Range requests.

The contract:
- `agent create --record` / `agent update --record|--no-record`, `"record": true|false` in
  POST /v1/calls (the request wins); inbound calls follow their agent;
- `serve --recordings DIR` (default: `recordings` beside the database file);
- `GET /v1/calls/{id}/recording` -> audio/wav once the call has ended, tenant-scoped, Range
  (one range: 206 + Content-Range; 416 + `Content-Range: bytes */SIZE`), 404 otherwise;
- `has_recording` / `recording_url` on the call object;
- DELETE /v1/calls/{id} and Cartesia's DELETE /agents/calls/{call_id} delete the file;
- a recording left open by kill -9 is repaired at start-up.
"""

import io
import os
import struct
import time
import wave

import media_audio
from cp import assert_error, parse_ts, random_uuid
from media_world import NUMBER
from sipp_peer import wait_for

FAR_HZ = 440
AGENT_HZ = 1000
CV = {"Cartesia-Version": "2026-03-01"}


def recordings_dir(media):
    """The default: a directory `recordings` beside the database file."""
    return os.path.join(os.path.dirname(media.cp.db), "recordings")


def files_of(directory, call_id):
    """Which of <id>.wav and <id>.wav.part exist."""
    return sorted(n for n in (call_id + ".wav", call_id + ".wav.part")
                  if os.path.exists(os.path.join(directory, n)))


def wait_files(directory, call_id, want, timeout=5.0):
    """Waits (bounded) until files_of() is want: a recording is finished by the writer thread
    just after the call ends (docs/MEDIA.md), not before the end request returns."""
    deadline = time.monotonic() + timeout
    while files_of(directory, call_id) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return files_of(directory, call_id)


def get_recording(media, call_id, key=None, headers=None):
    return media.cp.request("GET", "/v1/calls/%s/recording" % call_id, key=key or media.cp.key,
                            headers=headers)


def parse(raw, what="recording"):
    """The WAV, checked to be exactly what docs/MEDIA.md says: PCM, stereo, 8 kHz, 16-bit, a
    final header (its sizes are the file's), readable by Python's wave module too."""
    w = media_audio.parse_wav(raw, what)
    assert (w["format"], w["channels"], w["rate"], w["bits"]) == (1, 2, 8000, 16), w
    frames = len(w["samples"][0])
    assert w["data_size"] == frames * 4, "data chunk size %d for %d frames" % (w["data_size"], frames)
    assert struct.unpack("<I", raw[4:8])[0] == len(raw) - 8, "RIFF size is not the file's"
    with wave.open(io.BytesIO(raw)) as wf:
        assert (wf.getnchannels(), wf.getframerate(), wf.getsampwidth(), wf.getnframes()) == \
            (2, 8000, 2, frames)
    return w["samples"][0], w["samples"][1]


def bridged(media, agent_id, agent, record=None, far_name=None):
    """Dials baresip from `agent_id` (record: the request's "record", None: not sent); waits for
    the answer (and the agent's start when there is an agent)."""
    far = media.baresip(rtp_timeout=0, **({"name": far_name} if far_name else {}))
    fields = {} if record is None else {"record": record}
    call = media.dial(far, agent=agent_id, **fields)
    far.wait_established(5)
    media.wait_status(call["id"], "in_progress", 5)
    if agent is not None:
        agent.wait_event("start", 5)
    return far, call


# ------------------------------------------------------------------ the recording itself


def test_recorded_call_far_end_left_agent_right_with_ranges(media):
    media.start()
    agent = media.agent()
    agent_id = media.agent_create(number=NUMBER, stream_url=agent.url, record=True)
    far, call = bridged(media, agent_id, agent)
    cid = call["id"]
    agent.wait_audio(1.0, timeout=5)
    agent.send_tone(AGENT_HZ, 2.0, realtime=True)
    time.sleep(0.4)

    up = media.call(cid)
    assert up["has_recording"] is False and up["recording_url"] is None, up
    assert files_of(recordings_dir(media), cid) == [cid + ".wav.part"]
    ended = media.cp.end_call(cid)
    assert ended["has_recording"] is True, ended
    assert ended["recording_url"] == "/v1/calls/%s/recording" % cid, ended

    r = get_recording(media, cid)
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "audio/wav", r.headers
    assert r.headers["Accept-Ranges"] == "bytes", r.headers
    assert r.headers.get("Content-Range") is None, r.headers
    full = r.raw
    assert int(r.headers["Content-Length"]) == len(full)
    left, right = parse(full)
    media_audio.assert_frequency(left, FAR_HZ, what="the left channel (far end)")
    media_audio.assert_frequency(right, AGENT_HZ, what="the right channel (agent)")
    detail = "left %.1fs of 440, %.1fs of 1000; right %.1fs of 1000, %.1fs of 440\n%s" % (
        media_audio.tone_seconds(left, FAR_HZ), media_audio.tone_seconds(left, AGENT_HZ),
        media_audio.tone_seconds(right, AGENT_HZ), media_audio.tone_seconds(right, FAR_HZ),
        media.diagnostics())
    assert media_audio.tone_seconds(right, AGENT_HZ) >= 1.6, detail
    assert media_audio.tone_seconds(right, AGENT_HZ) <= 2.2, detail
    assert media_audio.tone_seconds(left, AGENT_HZ) == 0, detail
    assert media_audio.tone_seconds(right, FAR_HZ) == 0, detail
    assert media_audio.tone_seconds(left, FAR_HZ) >= 2.5, detail
    # from the answer to the hang-up
    talk = (parse_ts(ended["ended_at"]) - parse_ts(ended["answered_at"])).total_seconds()
    assert abs(len(left) / 8000.0 - talk) <= 1.0, (len(left) / 8000.0, talk)
    assert files_of(recordings_dir(media), cid) == [cid + ".wav"]
    with open(os.path.join(recordings_dir(media), cid + ".wav"), "rb") as f:
        assert f.read() == full

    # Range: exact bytes
    n = len(full)
    for rng, lo, hi in (("bytes=0-43", 0, 43), ("bytes=1000-", 1000, n - 1), ("bytes=-100", n - 100, n - 1),
                        ("bytes=%d-%d" % (n - 10, n + 1000), n - 10, n - 1), ("bytes=5-5", 5, 5),
                        ("bytes=-%d" % (n + 7), 0, n - 1)):
        p = get_recording(media, cid, headers={"Range": rng})
        assert p.status == 206, (rng, p)
        assert p.headers["Content-Range"] == "bytes %d-%d/%d" % (lo, hi, n), (rng, p.headers)
        assert p.headers["Content-Type"] == "audio/wav" and p.headers["Accept-Ranges"] == "bytes"
        assert p.raw == full[lo:hi + 1], (rng, len(p.raw))
        assert int(p.headers["Content-Length"]) == hi - lo + 1
    for rng in ("bytes=%d-" % n, "bytes=%d-%d" % (n + 5, n + 9), "bytes=-0"):
        p = get_recording(media, cid, headers={"Range": rng})
        assert_error(p, 416, "range_not_satisfiable")
        assert p.headers["Content-Range"] == "bytes */%d" % n, (rng, p.headers)
    # what the RFC lets a server ignore is ignored: the whole file
    for rng in ("bytes=10-5", "bytes=0-1,5-6", "items=0-1", "bytes=x-y"):
        p = get_recording(media, cid, headers={"Range": rng})
        assert p.status == 200 and p.raw == full and p.headers.get("Content-Range") is None, (rng, p)

    # scope: no one else's key sees it
    t2 = media.cp.tenant_create("tenant-two")
    _k2_id, k2 = media.cp.key_create(t2)
    _kn_id, other_number = media.cp.key_create(media.cp.tenant, number="+15550009999")
    _ko_id, own_number = media.cp.key_create(media.cp.tenant, number=NUMBER)
    for key in (k2, other_number):
        assert_error(get_recording(media, cid, key=key), 404, "not_found")
    assert get_recording(media, cid, key=own_number).raw == full
    assert_error(get_recording(media, random_uuid()), 404, "not_found")
    by_pcid = media.cp.request("GET", "/v1/calls/%s/recording" % ended["provider_call_id"].replace("@", "%40"),
                               key=media.cp.key)
    assert by_pcid.status == 200 and by_pcid.raw == full, by_pcid


def test_record_per_agent_and_per_call(media):
    """--record on the agent, "record" in POST /v1/calls winning both ways; --recordings DIR."""
    where = os.path.join(media.dir, "elsewhere", "recs")
    os.makedirs(os.path.dirname(where))
    media.start("--recordings", where)
    recorded_agent = media.agent_create(number=NUMBER, record=True)
    plain_agent = media.cp.agent          # the world's agent: not recorded
    cases = [("agent records", recorded_agent, None, True),
             ("agent records, call says no", recorded_agent, False, False),
             ("agent does not, call says yes", plain_agent, True, True),
             ("agent does not", plain_agent, None, False)]
    calls = []
    for i, (what, agent_id, record, want) in enumerate(cases):
        _far, call = bridged(media, agent_id, None, record=record, far_name="far%d" % i)
        calls.append((what, call, want))
    time.sleep(1.0)
    # while up: nothing served, has_recording false
    what, call, _want = calls[0]
    assert_error(get_recording(media, call["id"]), 404, "not_found")
    assert "still up" in get_recording(media, call["id"]).json["error"]["message"]
    for what, call, want in calls:
        got = media.cp.end_call(call["id"])
        assert got["has_recording"] is want, (what, got)
        r = get_recording(media, call["id"])
        if want:
            assert r.status == 200, (what, r)
            left, _right = parse(r.raw, what)
            media_audio.assert_frequency(left, FAR_HZ, what="%s: far end" % what)
            assert files_of(where, call["id"]) == [call["id"] + ".wav"], what
        else:
            assert_error(r, 404, "not_found")
            assert r.json["error"]["message"] == "the call was not recorded", (what, r)
            assert files_of(where, call["id"]) == [], what
    assert not os.path.exists(recordings_dir(media)), "the default directory was used too"

    # agent update --no-record / --record: for calls created afterwards
    assert media.cp.cli("agent", "update", recorded_agent, "--no-record") == {"id": recorded_agent, "record": False}
    listed = {a["id"]: a for a in media.cp.agent_list()["data"]}
    assert listed[recorded_agent]["record"] is False and listed[plain_agent]["record"] is False, listed
    _far, call = bridged(media, recorded_agent, None, far_name="far-after-update")
    assert media.cp.end_call(call["id"])["has_recording"] is False
    assert media.cp.cli("agent", "update", plain_agent, "--record") == {"id": plain_agent, "record": True}


def test_inbound_call_recorded_by_its_agent(media):
    media.start()
    agent = media.agent()
    media.agent_create(number=NUMBER, stream_url=agent.url, record=True)
    far = media.baresip(rtp_timeout=0)
    far.dial(media.inbound_uri(NUMBER))
    far.wait_established(5)
    call = media.wait_inbound(5)
    agent.wait_event("start", 5)
    agent.wait_audio(0.5, timeout=5)
    agent.send_tone(AGENT_HZ, 1.5, realtime=True)
    time.sleep(0.3)
    far.hangup()
    c = media.wait_ended(call["id"], 5)
    assert c["end_reason"] == "remote_hangup" and c["has_recording"] is True, c
    r = get_recording(media, call["id"])
    assert r.status == 200, r
    left, right = parse(r.raw)
    media_audio.assert_frequency(left, FAR_HZ, what="inbound: far end")
    media_audio.assert_frequency(right, AGENT_HZ, what="inbound: agent")
    assert media_audio.tone_seconds(right, AGENT_HZ) >= 1.2, media.diagnostics()


# -------------------------------------------------------------------------- redaction


def test_redaction_deletes_the_recording(media):
    media.start()
    agent_id = media.agent_create(number=NUMBER, record=True)
    _f1, one = bridged(media, agent_id, None, far_name="far1")
    _f2, two = bridged(media, agent_id, None, far_name="far2")
    time.sleep(0.6)
    for c in (one, two):
        media.cp.end_call(c["id"])
    d = recordings_dir(media)
    assert wait_files(d, one["id"], [one["id"] + ".wav"]) == [one["id"] + ".wav"]
    assert wait_files(d, two["id"], [two["id"] + ".wav"]) == [two["id"] + ".wav"]

    # canonical DELETE
    r = media.cp.request("DELETE", "/v1/calls/%s" % one["id"], key=media.cp.key)
    assert r.status == 200, r
    assert r.json["has_recording"] is False and r.json["recording_url"] is None, r.json
    assert files_of(d, one["id"]) == []
    gone = get_recording(media, one["id"])
    assert_error(gone, 404, "not_found")
    assert gone.json["error"]["message"] == "the call was redacted", gone
    assert media.cp.request("DELETE", "/v1/calls/%s" % one["id"], key=media.cp.key).status == 200

    # Cartesia: the audio route serves the same file (Range too) until DELETE deletes it
    canonical = get_recording(media, two["id"]).raw
    path = "/agents/calls/%s" % two["id"]
    a = media.cp.request("GET", path + "/audio", key=media.cp.key, headers=CV)
    assert a.status == 200 and a.raw == canonical and a.headers["Content-Type"] == "audio/wav", a
    p = media.cp.request("GET", path + "/audio", key=media.cp.key, headers=dict(CV, Range="bytes=-10"))
    assert p.status == 206 and p.raw == canonical[-10:], p
    assert p.headers["Content-Range"] == "bytes %d-%d/%d" % (len(canonical) - 10, len(canonical) - 1, len(canonical))
    r = media.cp.request("DELETE", path, key=media.cp.key, headers=CV)
    assert r.status == 200 and r.json["id"] == two["id"] and r.json["redacted_at"], r
    assert files_of(d, two["id"]) == []
    a = media.cp.request("GET", path + "/audio", key=media.cp.key, headers=CV)
    assert a.status == 404 and a.json == {"error": "the call was redacted"}, a
    assert media.cp.get_call(two["id"])["has_recording"] is False


# ----------------------------------------------------------------------------- a crash


def test_kill9_during_a_recorded_call_leaves_a_wav_repaired_at_start(media):
    media.start()
    agent_id = media.agent_create(number=NUMBER, record=True)
    _far, call = bridged(media, agent_id, None)
    cid = call["id"]
    d = recordings_dir(media)
    t_up = time.monotonic()
    time.sleep(2.6)
    assert files_of(d, cid) == [cid + ".wav.part"]
    media.cp.kill9()
    up_s = time.monotonic() - t_up
    assert files_of(d, cid) == [cid + ".wav.part"]

    media.cp.start(extra_args=media.extra)
    assert files_of(d, cid) == [cid + ".wav"], os.listdir(d)
    assert '"recording_repaired"' in media.cp.stderr_text(), media.diagnostics()
    c = media.cp.get_call(cid)
    assert c["status"] == "completed" and c["end_reason"] == "node_restart", c
    assert c["has_recording"] is True, c
    r = get_recording(media, cid)
    assert r.status == 200, r
    left, _right = parse(r.raw, "the repaired recording")
    # kept up to its last header (written every second): at least a second of a 2.6 s call
    assert 1.0 <= len(left) / 8000.0 <= up_s + 0.5, (len(left) / 8000.0, up_s)
    media_audio.assert_frequency(left, FAR_HZ, what="the repaired recording's far end")
    assert wait_for(lambda: files_of(d, cid) == [cid + ".wav"], 1.0)
