"""Goodbye, then hang up (issue 11, section 1): `POST /v1/calls/{id}/end` with `after_playout`,
`goodbye.text` and `max_wait_ms`; the agents' `--goodbye-text` (vendor dialect ends) and
`--max-duration-goodbye`.

The far end is a real baresip that records what it decodes (baresip_peer: its `*-dec.wav`);
the agent is media_agent.MediaAgent.  Before an end callplane sends the far end silence
(mu-law 0xFF, decoded as 0) unless the agent plays something, so whatever is loud in the far
end's recording is the agent's tone or callplane's speech.

How speech is found in a recording: 20 ms blocks with an RMS above SPEECH_RMS are loud; the
speech is the span from the first loud block to the last.  espeak-ng's rendering starts and
ends with a little silence of its own and words have pauses between them, so the span is a
little shorter than the rendered audio (the server logs its length as `audio_ms` in
`call_goodbye_start`), never longer than it by more than a block.
"""

import json
import sqlite3
import threading
import time

import pytest

import media_audio
from cp import UNDO_OPERATOR_KEYS, UNDO_SIGNING_AND_DIAL, UNDO_TRUNKS, assert_cli_error, assert_error, split_end
from media_world import NUMBER

TEXT = "Thank you for calling. Goodbye."
AGENT_HZ = 1000
SPEECH_RMS = 300            # an espeak-ng voice peaks at several thousand; silence decodes to 0
BLOCK = media_audio.FRAME_SAMPLES
JITTER = "0-1"


# --------------------------------------------------------------------------------- helpers


def loud_blocks(samples):
    """Indexes of the 20 ms blocks of `samples` louder than SPEECH_RMS."""
    return [i // BLOCK for i in range(0, len(samples) - BLOCK + 1, BLOCK)
            if media_audio.rms(samples[i:i + BLOCK]) >= SPEECH_RMS]


def speech_span(samples):
    """(first loud block, last loud block + 1) in 20 ms blocks; None when all is silent."""
    loud = loud_blocks(samples)
    return (loud[0], loud[-1] + 1) if loud else None


def log_lines(cp, event):
    out = []
    for ln in cp.stderr_text().splitlines():
        if ('"event":"%s"' % event) in ln:
            out.append(json.loads(ln))
    return out


def log_of(cp, event, call_id):
    return [x for x in log_lines(cp, event) if x.get("call_id") == call_id]


def db_rows(cp, sql, *args):
    db = sqlite3.connect("file:%s?mode=ro" % cp.db, uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def bridged(media, agent_args=(), server_args=(), agent_on=True, rtp_timeout=0):
    """Server, agent (unless agent_on is False: an RTP-only call), baresip; an answered call.
    Returns (agent or None, far, call)."""
    media.start("--agent-grace-ms", "500", *server_args)
    agent = media.agent() if agent_on else None
    far = media.baresip(rtp_timeout=rtp_timeout, jitter_buffer=JITTER)
    args = ["agent", "create", "--tenant", media.cp.tenant, "--name", "bye-agent", "--number", NUMBER]
    if agent is not None:
        args += ["--stream-url", agent.url]
    agent_id = media.cp.cli(*(args + list(agent_args)))["id"]
    call = media.dial(far, agent=agent_id)
    far.wait_established(5)
    media.wait_status(call["id"], "in_progress", 5)
    if agent is not None:
        agent.wait_event("start", 5)
    return agent, far, call


def end(cp, call_id, body, timeout=20):
    """POST /v1/calls/{id}/end; returns (response, seconds it took)."""
    t0 = time.monotonic()
    r = cp.request("POST", "/v1/calls/%s/end" % call_id, body, key=cp.key, timeout=timeout)
    return r, time.monotonic() - t0


def assert_bye(media, far, timeout=5.0):
    ev = far.wait_closed(timeout)
    assert ev["param"] == "Connection reset by peer", "not ended by a BYE: %r\n%s" % (ev, media.diagnostics())


def earliest_last_frame_s(audio_ms):
    """The least time, in seconds, from a goodbye's request to its last frame leaving.

    The BYE follows the frame that completes the goodbye (src/media/playout.c), and that frame
    leaves at its own start, not its end: a goodbye of n = ceil(audio_ms / 20) frames spans
    (n - 1) * 20 ms on the wire, first frame to last. The first may also leave before the
    request: a media loop that fell behind sends the frames it owes in its next ticks, three
    at a time, and is owed up to five (100 ms) before it gives them up (session_tick in
    src/media/engine.c), so the goodbye can start in slots already past. So a response (or the
    BYE) never comes sooner than (n - 1) * 20 - 100 ms after the request; on an idle machine it
    comes at least (n - 1) * 20 ms after it."""
    frames = (audio_ms + 19) // 20
    return ((frames - 1) * 20 - 100) / 1000.0


def closed_at(far):
    return [t for t, e in far.events if e.get("type") == "CALL_CLOSED"][0]


# ------------------------------------------------------------------ spoken goodbye, heard


@pytest.mark.parametrize("agent_on", [True, False], ids=["with_agent", "rtp_only"])
def test_goodbye_text_is_heard_whole_before_the_bye(media, agent_on):
    _agent, far, call = bridged(media, agent_on=agent_on)
    time.sleep(0.5)                      # some silence in the far end's recording first
    t_req = time.monotonic()
    r, took = end(media.cp, call["id"], {"goodbye": {"text": TEXT}, "reason": "said_goodbye"})
    assert r.status == 200, r
    ended, goodbye_ms = split_end(r.json)
    assert ended["status"] == "completed" and ended["end_reason"] == "said_goodbye", ended
    # what callplane rendered (nothing was queued before it): goodbye_ms is exactly its length
    start = log_of(media.cp, "call_goodbye_start", call["id"])
    assert len(start) == 1, start
    audio_ms = start[0]["audio_ms"]
    assert 1000 <= audio_ms <= 4000, start        # a short sentence: one to four seconds
    assert goodbye_ms == audio_ms, (goodbye_ms, start)
    # the response waited for the speech, and not much longer (one BYE, one commit)
    assert earliest_last_frame_s(goodbye_ms) <= took <= goodbye_ms / 1000.0 + 1.5, (took, goodbye_ms)
    assert_bye(media, far)
    assert closed_at(far) - t_req >= earliest_last_frame_s(goodbye_ms), "the BYE came before the speech was played"
    # the BYE follows the goodbye's last packet within 50 ms (both lines on the monotonic clock)
    done = log_of(media.cp, "media_goodbye_done", call["id"])
    bye = log_of(media.cp, "sip_goodbye_bye", call["id"])
    assert len(done) == 1 and len(bye) == 1 and done[0]["how"] == "played", (done, bye)
    gap_us = bye[0]["mono_us"] - done[0]["mono_us"]
    assert 0 <= gap_us <= 50000, gap_us

    heard = far.dec_samples()
    span = speech_span(heard)
    assert span is not None, "the far end heard nothing\n%s" % media.diagnostics()
    first, last = span
    spoken_ms = (last - first) * 20
    # every word reached the far end: the loud span is the rendering less espeak-ng's own
    # leading and trailing silence (TEXT with Debian 12's espeak-ng: 80 ms before the first
    # word, 19 after the last, so 1860 of 1959 ms are measured; 200 ms leaves room for another
    # voice's pauses), never more than the rendering
    assert audio_ms - 200 <= spoken_ms <= audio_ms, (spoken_ms, audio_ms)
    # and it is the end of what the far end heard: after the last word, the rendering's
    # trailing silence and at most the one frame baresip's jitter buffer (0-1) keeps back;
    # measured 20 ms. A BYE before the last words would cut the span above instead.
    tail_ms = len(heard) * 1000 // media_audio.RATE - last * 20
    assert tail_ms <= 100, "%d ms of recording after the speech" % tail_ms
    # and it is speech, not a tone: no single frequency holds the loud part
    loud = heard[first * BLOCK:last * BLOCK]
    f = media_audio.dominant_frequency(loud)
    assert f is not None and media_audio.tone_fraction(loud, f) < 0.5, f


# ------------------------------------------------------------------------ after_playout


def test_after_playout_plays_the_queued_tone_then_byes(media):
    agent, far, call = bridged(media)
    agent.send_tone(AGENT_HZ, 1.0, realtime=False)     # 1 s queued at once
    time.sleep(0.1)                                    # in callplane's queue (loopback)
    t_req = time.monotonic()
    r, took = end(media.cp, call["id"], {"after_playout": True})
    assert r.status == 200, r
    ended, goodbye_ms = split_end(r.json)
    assert ended["status"] == "completed", ended
    # 0.1 s of the second had been played when the request came: ~0.9 s was left
    assert 800 <= goodbye_ms <= 960, goodbye_ms
    assert 0.8 <= took <= 1.0 + 1.0, took
    assert_bye(media, far)
    bye_after = closed_at(far) - t_req
    assert 0.8 <= bye_after <= 1.6, bye_after
    heard = far.dec_samples()
    got = media_audio.tone_seconds(heard, AGENT_HZ)
    assert got >= 0.9, "the far end heard %.1f s of the 1 s tone\n%s" % (got, media.diagnostics())
    media_audio.assert_frequency(media_audio.loudest_window(heard, 4000), AGENT_HZ, what="the far end's audio")
    # the agent heard stop with the BYE, not before
    stop = agent.wait_event("stop", 3)[0]
    assert stop["stop"]["callSid"] == call["id"], stop


@pytest.mark.parametrize("with_text", [False, True], ids=["after_playout", "goodbye"])
def test_max_wait_ms_cuts_a_long_queue(media, with_text):
    agent, far, call = bridged(media)
    agent.send_tone(AGENT_HZ, 5.0, realtime=False)     # 5 s queued
    time.sleep(0.1)
    body = {"max_wait_ms": 500}
    if with_text:
        body["goodbye"] = {"text": TEXT}               # after the queue: never reached
    else:
        body["after_playout"] = True
    t_req = time.monotonic()
    r, took = end(media.cp, call["id"], body)
    assert r.status == 200, r
    _ended, goodbye_ms = split_end(r.json)
    # the deadline is kept on the media engine's 20 ms clock
    assert 460 <= goodbye_ms <= 540, goodbye_ms
    assert 0.45 <= took <= 1.2, took
    assert_bye(media, far)
    assert 0.45 <= closed_at(far) - t_req <= 1.2
    heard = far.dec_samples()
    got = media_audio.tone_seconds(heard, AGENT_HZ)
    assert 0.3 <= got <= 1.0, "heard %.1f s of the tone: 0.1 s before the request and 0.5 s after" % got
    assert log_of(media.cp, "media_goodbye_done", call["id"])[0]["how"] == "deadline"


def test_goodbye_of_an_unanswered_call_cancels_at_once(media):
    media.start()
    far = media.baresip(answermode="manual")
    call = media.dial(far)
    media.wait_status(call["id"], "ringing", 5)
    r, took = end(media.cp, call["id"], {"goodbye": {"text": TEXT}, "max_wait_ms": 5000})
    assert r.status == 200, r
    ended, goodbye_ms = split_end(r.json)
    assert ended["status"] == "canceled" and goodbye_ms == 0, r.json
    assert took < 1.0, took
    assert log_of(media.cp, "call_goodbye_start", call["id"]) == []


# ------------------------------------------------------------------------- concurrency


def test_second_end_during_a_goodbye_joins_it(media):
    agent, far, call = bridged(media)
    agent.send_tone(AGENT_HZ, 2.0, realtime=False)
    time.sleep(0.1)
    results = {}

    def post(name, body, delay):
        time.sleep(delay)
        results[name] = end(media.cp, call["id"], body)

    threads = [threading.Thread(target=post, args=("first", {"after_playout": True, "reason": "first"}, 0)),
               threading.Thread(target=post, args=("plain", {"reason": "second"}, 0.4)),
               threading.Thread(target=post, args=("spoken", {"goodbye": {"text": "Another goodbye."}}, 0.6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert set(results) == {"first", "plain", "spoken"}, results
    bodies = []
    for name in ("first", "plain", "spoken"):
        r, took = results[name]
        assert r.status == 200, (name, r)
        bodies.append(r.json)
    # the same final result for all three: the first end's, after the queued audio
    assert bodies[0] == bodies[1] == bodies[2], bodies
    ended, goodbye_ms = split_end(bodies[0])
    assert ended["end_reason"] == "first" and ended["status"] == "completed", ended
    assert 1700 <= goodbye_ms <= 1960, goodbye_ms
    # one transition, one BYE
    assert db_rows(media.cp, "SELECT count(*) FROM events WHERE call_id = ? AND type = 'call.ended'",
                   call["id"]) == [(1,)]
    assert len([x for x in log_of(media.cp, "call_transition", call["id"]) if x["to"] == "completed"]) == 1
    assert len(log_of(media.cp, "sip_goodbye_bye", call["id"])) == 1
    assert len(log_of(media.cp, "call_end_joined", call["id"])) == 2
    assert log_of(media.cp, "call_goodbye_start", call["id"])[0]["audio_ms"] == 0
    assert_bye(media, far)
    time.sleep(0.3)
    assert len(far.event_list("CALL_CLOSED")) == 1


def test_bulk_end_during_a_goodbye_ends_at_once(media):
    agent, far, call = bridged(media)
    agent.send_tone(AGENT_HZ, 5.0, realtime=False)
    time.sleep(0.1)
    out = {}

    def goodbye():
        out["goodbye"] = end(media.cp, call["id"], {"after_playout": True})

    t = threading.Thread(target=goodbye)
    t.start()
    time.sleep(0.5)
    t_bulk = time.monotonic()
    bulk = media.cp.request("POST", "/v1/calls/end", {"reason": "emergency"}, key=media.cp.key, timeout=10)
    bulk_took = time.monotonic() - t_bulk
    t.join(10)
    assert bulk.status == 200 and bulk.json == {"ended": 1, "already_ended": 0, "failed": 0}, bulk
    assert bulk_took < 1.0, bulk_took
    # the goodbye was cut: its request learns the call was ended by the stop
    r, took = out["goodbye"]
    assert_error(r, 409, "call_not_active")
    assert took < 1.5, took
    assert_bye(media, far, 2)
    assert closed_at(far) - t_bulk < 1.0
    c = media.call(call["id"])
    assert c["status"] == "completed" and c["end_reason"] == "emergency", c
    assert db_rows(media.cp, "SELECT count(*) FROM events WHERE call_id = ? AND type = 'call.ended'",
                   call["id"]) == [(1,)]
    assert log_of(media.cp, "sip_goodbye_bye", call["id"]) == []
    heard = media_audio.tone_seconds(far.dec_samples(), AGENT_HZ)
    assert heard <= 1.0, "heard %.1f s of the 5 s tone: the stop did not cut it" % heard


# ------------------------------------------------------------------------- bad bodies


BAD = [
    ({"goodbye": {"text": ""}}, "goodbye.text must be 1..1000 characters"),
    ({"goodbye": {"text": "a" * 1001}}, "goodbye.text must be 1..1000 characters"),
    ({"goodbye": {"text": "\u00e9" * 1001}}, "goodbye.text must be 1..1000 characters"),
    ({"goodbye": {"text": 5}}, "goodbye.text must be a string"),
    ({"goodbye": {}}, "goodbye.text is required"),
    ({"goodbye": "bye"}, 'goodbye must be an object {"text": "..."}'),
    ({"goodbye": {"text": "bye", "voice": "en"}}, 'unknown field "goodbye.voice"'),
    ({"after_playout": "yes"}, "after_playout must be true or false"),
    ({"after_playout": 1}, "after_playout must be true or false"),
    ({"after_playout": True, "max_wait_ms": -1}, "max_wait_ms must be an integer in 0..60000"),
    ({"after_playout": True, "max_wait_ms": 60001}, "max_wait_ms must be an integer in 0..60000"),
    ({"after_playout": True, "max_wait_ms": 1.5}, "max_wait_ms must be an integer in 0..60000"),
    ({"after_playout": True, "max_wait_ms": "500"}, "max_wait_ms must be an integer in 0..60000"),
    ({"after_playout": True, "max_wait_ms": 2 ** 40}, "max_wait_ms must be an integer in 0..60000"),
    ({"max_wait_ms": 500}, "max_wait_ms needs after_playout or goodbye"),
    ({"after_playout": False, "max_wait_ms": 500}, "max_wait_ms needs after_playout or goodbye"),
    ({"goodbye_text": "bye"}, 'unknown field "goodbye_text"'),
]


@pytest.mark.parametrize("body,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_goodbye_bodies_400(srv, body, message):
    c = srv.create_call()
    r = srv.request("POST", "/v1/calls/%s/end" % c["id"], body, key=srv.key)
    assert_error(r, 400, "invalid_request")
    assert r.json["error"]["message"] == message, r.json
    assert srv.get_call(c["id"])["status"] == "queued"


def test_goodbye_bounds_accepted(srv):
    # 1000 characters (two bytes each here) and both ends of max_wait_ms; a queued call has
    # nothing to say it on, so it ends at once
    for body in ({"goodbye": {"text": "\u00e9" * 1000}, "max_wait_ms": 60000},
                 {"after_playout": True, "max_wait_ms": 0},
                 {"after_playout": False}):
        c = srv.create_call()
        ended = srv.end_call(c["id"], body=body)
        assert ended["status"] == "canceled", ended


# ----------------------------------------------------------------- agents' goodbyes


def test_agent_goodbye_options_cli(cp):
    t = cp.tenant_create("t")
    a = cp.cli("agent", "create", "--tenant", t, "--name", "polite", "--goodbye-text", TEXT,
               "--max-duration", "60", "--max-duration-goodbye", "Time is up.")["id"]
    plain = cp.agent_create(t, "plain")
    by_id = {x["id"]: x for x in cp.agent_list()["data"]}
    assert by_id[a]["goodbye_text"] == TEXT and by_id[a]["max_duration_goodbye"] == "Time is up.", by_id[a]
    assert by_id[plain]["goodbye_text"] is None and by_id[plain]["max_duration_goodbye"] is None
    assert cp.cli("agent", "update", plain, "--goodbye-text", "Bye \u00e9.") == \
        {"id": plain, "goodbye_text": "Bye \u00e9."}
    assert cp.cli("agent", "update", a, "--no-goodbye-text", "--max-duration-goodbye", "Later.") == \
        {"id": a, "goodbye_text": None, "max_duration_goodbye": "Later."}
    assert cp.cli("agent", "update", a, "--no-max-duration-goodbye") == {"id": a, "max_duration_goodbye": None}
    by_id = {x["id"]: x for x in cp.agent_list()["data"]}
    assert by_id[a]["goodbye_text"] is None and by_id[a]["max_duration_goodbye"] is None
    assert by_id[plain]["goodbye_text"] == "Bye \u00e9."
    # the bounds: 1000 characters, not 1001; a usage error (exit 2) otherwise
    assert cp.cli("agent", "update", a, "--goodbye-text", "x" * 1000)["goodbye_text"] == "x" * 1000
    usage = "error: --goodbye-text must be 1..1000 characters of UTF-8"
    assert_cli_error(cp.cli_raw("agent", "update", a, "--goodbye-text", "x" * 1001), 2, usage)
    assert_cli_error(cp.cli_raw("agent", "update", a, "--goodbye-text", ""), 2, usage)
    assert_cli_error(cp.cli_raw("agent", "create", "--tenant", t, "--name", "n", "--max-duration-goodbye", ""),
                     2, "error: --max-duration-goodbye must be 1..1000 characters of UTF-8")
    both = ("error: agent update needs the agent id and at least one change, each option at most once:"
            " --stream-url URL or --no-stream-url, --record or --no-record, --goodbye-text TEXT or"
            " --no-goodbye-text, --max-duration-goodbye TEXT or --no-max-duration-goodbye, --trunk ID"
            " or --no-trunk")
    assert_cli_error(cp.cli_raw("agent", "update", a, "--goodbye-text", "x", "--no-goodbye-text"), 2, both)
    assert_cli_error(cp.cli_raw("agent", "update", a), 2, both)
    assert by_id[a]["goodbye_text"] is None       # nothing changed by the refused updates
    assert {x["id"]: x for x in cp.agent_list()["data"]}[a]["goodbye_text"] == "x" * 1000


def test_dialect_end_says_the_agents_goodbye(media):
    _agent, far, call = bridged(media, agent_args=["--goodbye-text", TEXT])
    t0 = time.monotonic()
    r = media.cp.request("POST", "/api/v1/end-web-call/%s" % call["id"], None, key=media.cp.key, timeout=20)
    took = time.monotonic() - t0
    assert r.status == 200 and r.json == {"success": True, "call_id": call["id"], "status": "completed",
                                          "end_reason": "api_ended", "progress": "ended"}, r
    start = log_of(media.cp, "call_goodbye_start", call["id"])
    assert len(start) == 1 and start[0]["audio_ms"] >= 1000, start
    # the response waited for the whole goodbye: played, every millisecond, then the BYE
    done = log_of(media.cp, "media_goodbye_done", call["id"])
    bye = log_of(media.cp, "sip_goodbye_bye", call["id"])
    assert len(done) == 1 and done[0]["how"] == "played", done
    assert done[0]["goodbye_ms"] == start[0]["audio_ms"], (done, start)
    assert len(bye) == 1 and bye[0]["mono_us"] >= done[0]["mono_us"], (done, bye)
    assert took >= earliest_last_frame_s(start[0]["audio_ms"]), (took, start)
    assert_bye(media, far)
    span = speech_span(far.dec_samples())
    assert span is not None and (span[1] - span[0]) * 20 >= start[0]["audio_ms"] - 200, span


def test_dialect_end_without_agent_goodbye_is_immediate(media):
    _agent, far, call = bridged(media)
    t0 = time.monotonic()
    r = media.cp.request("POST", "/api/v1/end-web-call/%s" % call["id"], None, key=media.cp.key)
    assert r.status == 200 and r.json["progress"] == "ended", r
    assert time.monotonic() - t0 < 1.0
    assert log_of(media.cp, "call_goodbye_start", call["id"]) == []
    assert_bye(media, far)


def test_max_duration_goodbye_is_said_before_the_bye(media):
    _agent, far, call = bridged(media, agent_args=["--max-duration", "2", "--max-duration-goodbye", TEXT])
    t0 = time.monotonic()
    c = media.wait_ended(call["id"], 10)
    assert c["status"] == "completed" and c["end_reason"] == "max_duration", c
    start = log_of(media.cp, "call_goodbye_start", call["id"])
    assert len(start) == 1 and start[0]["audio_ms"] >= 1000, start
    assert_bye(media, far)
    # answered at ~t0, the goodbye from 2 s on: the BYE after its speech
    assert closed_at(far) - t0 >= 1.5 + start[0]["audio_ms"] / 1000.0
    span = speech_span(far.dec_samples())
    assert span is not None and (span[1] - span[0]) * 20 >= start[0]["audio_ms"] - 200, span
    assert [x["goodbye"] for x in log_of(media.cp, "sip_max_duration", call["id"])] == [True]


def test_schema_3_database_gains_the_goodbye_columns(cp):
    """A database of schema 3 (before goodbyes) opens, migrates, and keeps its agents. It is
    today's with every later step undone: a later migration is undone here too."""
    cp.setup_world()
    latest = db_rows(cp, "PRAGMA user_version")
    con = sqlite3.connect(cp.db)
    for table, column in (("agents", "goodbye_text"), ("agents", "max_duration_goodbye"),
                          ("agents", "record"), ("calls", "record")):   # migrations 4 and 5
        con.execute("ALTER TABLE %s DROP COLUMN %s" % (table, column))
    con.execute("DROP TABLE dialogs")                                   # migration 6
    con.executescript(UNDO_SIGNING_AND_DIAL)                            # migrations 9, 10
    con.executescript(UNDO_OPERATOR_KEYS)                               # migration 7
    con.executescript(UNDO_TRUNKS)                                      # migration 8
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    lst = cp.agent_list()["data"]     # the CLI migrates
    assert [(a["id"], a["goodbye_text"], a["max_duration_goodbye"]) for a in lst] == [(cp.agent, None, None)], lst
    assert latest == [(12,)] and db_rows(cp, "PRAGMA user_version") == latest
    assert cp.cli("agent", "update", cp.agent, "--goodbye-text", TEXT) == {"id": cp.agent, "goodbye_text": TEXT}
