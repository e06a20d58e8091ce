"""Web calls in a real browser (issue 11, section 3): headless Chromium (Debian's `chromium`)
driven by playwright-core (tests/browser/driver.mjs, installed from its lock file by
scripts/browser-deps.sh, which this module runs), with a fake microphone fed from a WAV.

What is checked, in the page callplane serves (src/http/web_call.html):
- the agent hears the microphone's tone (440 Hz, measured with Goertzel at 8 kHz);
- the page receives the agent's audio (its 1000 Hz, measured in what the page received);
- `<body data-call-state>` goes connecting -> in_progress -> ended;
- Voxworks `end-web-call` ends the call and the page shows it ended;
- closing the page ends the call with end_reason remote_hangup;
- the set-up time in the browser (page load -> in_progress, the page's own clock) over
  SETUP_RUNS runs: p50 and max are printed and written to build/webcall/setup-times.json.
Screenshots of the page during and after the call are kept in build/webcall/ (ARTEFACTS).
"""

import json
import os
import struct
import time
import wave

import pytest

import cp as cpmod
import media_audio
from browser_driver import Driver
from media_world import NUMBER

MIC_HZ = 440
AGENT_HZ = 1000
SETUP_RUNS = 10
ARTEFACTS = os.path.join(cpmod.ROOT, "build", "webcall")


@pytest.fixture
def browser(tmp_path):
    wav = str(tmp_path / "mic-440.wav")
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(struct.pack("<%dh" % (48000 * 4), *media_audio.tone(MIC_HZ, 4.0, rate=48000)))
    d = Driver(wav)
    yield d
    d.quit()


@pytest.fixture
def world(media):
    media.start("--agent-grace-ms", "500")
    agent = media.agent()
    agent_id = media.agent_create("web-agent", number=NUMBER, stream_url=agent.url)
    return media, agent, agent_id


def create(media, agent_id):
    r = media.cp.request("POST", "/v1/web-calls", {"agent_id": agent_id}, key=media.cp.key)
    assert r.status == 201, r
    return r.json


def open_call(media, browser, call):
    page = browser.call("open", url="http://127.0.0.1:%d%s" % (media.cp.port, call["web_url"]))
    assert page["status"] == 200, page
    browser.call("wait_state", page=page["page"], state="in_progress", timeout_ms=15000)
    media.wait_status(call["id"], "in_progress", 5)
    return page["page"]


def page_audio(browser, page, rate):
    """What the page received last, as 16-bit samples at its rate."""
    return [int(round(x * 32767)) for x in browser.call("recent", page=page)["samples"]]


def test_web_call_in_chromium(world, browser):
    media, agent, agent_id = world
    os.makedirs(ARTEFACTS, exist_ok=True)
    call = create(media, agent_id)
    page = open_call(media, browser, call)

    # the agent hears the microphone: the WAV's 440 Hz, at 8 kHz
    start = agent.wait_event("start", 5, pred=lambda m: m["start"]["callSid"] == call["id"])[0]
    assert start["start"]["mediaFormat"]["sampleRate"] == 8000
    heard = agent.wait_audio(2.0, timeout=10)
    media_audio.assert_frequency(heard[-8000:], MIC_HZ, what="the agent's audio from Chromium's microphone")

    # the page receives the agent's 1000 Hz (the screenshot while it plays)
    playing = agent.send_tone(AGENT_HZ, 2.0, background=True)
    time.sleep(1.0)
    browser.call("screenshot", page=page, path=os.path.join(ARTEFACTS, "in-call.png"))
    playing.result(10)
    stats = browser.call("stats", page=page)["stats"]
    assert stats["state"] == "in_progress" and stats["framesIn"] > 0, stats
    rate = stats["sampleRate"]
    got = page_audio(browser, page, rate)
    media_audio.assert_frequency(got, AGENT_HZ, rate=rate, what="what the page received from the agent")
    assert stats["framesOut"] > 50, stats          # the microphone went out, 20 ms a message

    # Voxworks' end-web-call ends it; the page says so
    r = media.cp.request("POST", "/api/v1/end-web-call/%s" % call["id"], None, key=media.cp.key)
    assert r.status == 200 and r.json["progress"] == "ended" and r.json["status"] == "completed", r
    browser.call("wait_state", page=page, state="ended", timeout_ms=5000)
    browser.call("screenshot", page=page, path=os.path.join(ARTEFACTS, "ended.png"))
    ended = media.cp.get_call(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "api_ended", ended
    assert browser.call("stats", page=page)["stats"]["state"] == "ended"
    browser.call("close", page=page)
    time.sleep(0.3)
    assert media.cp.get_call(call["id"]) == ended      # closing the ended page changes nothing


def test_closing_the_page_ends_the_call_remote_hangup(world, browser):
    media, agent, agent_id = world
    call = create(media, agent_id)
    page = open_call(media, browser, call)
    browser.call("close", page=page)
    ended = media.wait_ended(call["id"], 5)
    assert ended["status"] == "completed" and ended["end_reason"] == "remote_hangup", ended
    agent.wait_event("stop", 5, pred=lambda m: m["stop"]["callSid"] == call["id"])


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


def test_setup_time_in_the_browser(world, browser):
    """Page load to in_progress, measured by the page (performance.now() when callplane says
    the call started), over SETUP_RUNS web calls, each ended by closing its page."""
    media, _agent, agent_id = world
    runs = []
    for _ in range(SETUP_RUNS):
        call = create(media, agent_id)
        page = open_call(media, browser, call)
        stats = browser.call("stats", page=page)["stats"]
        runs.append({"setup_ms": stats["setupMs"], "marks": stats["marks"]})
        browser.call("close", page=page)
        ended = media.wait_ended(call["id"], 5)
        assert ended["end_reason"] == "remote_hangup", ended
    setup = [r["setup_ms"] for r in runs]
    assert all(isinstance(ms, (int, float)) and ms > 0 for ms in setup), runs
    result = {"runs": len(setup), "p50_ms": percentile(setup, 0.5), "max_ms": max(setup),
              "chromium": browser.version, "each": runs}
    os.makedirs(ARTEFACTS, exist_ok=True)
    with open(os.path.join(ARTEFACTS, "setup-times.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("\nweb call set-up in the browser over %d runs: p50 %d ms, max %d ms (Chromium %s)"
          % (len(setup), result["p50_ms"], result["max_ms"], browser.version))
