#!/usr/bin/env python3
"""Goodbye benchmark: how soon the BYE follows a goodbye's last packet.

N answered calls to a sipp UAS (`-sn uas -rtp_echo`: answers, echoes our RTP, waits for the
BYE) are ended, `--batch` at a time, with `POST /v1/calls/{id}/end {"goodbye": {"text": ...}}`.
For each call the media engine logs `media_goodbye_done` when the frame that completes the
goodbye has been sent, and the SIP engine logs `sip_goodbye_bye` right after it handed the
BYE to nua; both carry `mono_us` (CLOCK_MONOTONIC, microseconds), so their difference is the
gap between the goodbye's last RTP packet and the BYE, across the media thread's hook, the
message to the SIP thread and nua_bye(). Reports its p50/p99/max over the calls, the
goodbye_ms the responses carried, and the request -> response time beside the speech's
length. Checks: every end answered 200 with goodbye_ms > 0, every goodbye ended by its last
frame (not its deadline), sipp answered every BYE.

    python3 bench/goodbye.py [--calls N] [--batch B] [--text TEXT] [--out NAME]

Run from the project root after `make build/callplane` (sipp from `make deps-bench`). Results go
to bench/results/goodbye.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def end_batch(cp, ids, text, out):
    """Ends ids at once, one thread each; out[id] = (status, body, seconds)."""
    def one(cid):
        t0 = time.monotonic()
        try:
            st, body = cp.req("POST", "/v1/calls/%s/end" % cid, {"goodbye": {"text": text}}, timeout=60)
        except OSError as e:
            st, body = None, repr(e)
        out[cid] = (st, body, time.monotonic() - t0)
    threads = [threading.Thread(target=one, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)


def run(n, batch, text):
    work = tempfile.mkdtemp(prefix="cpbench-goodbye-")
    sipp_port = B.free_port(B.socket.SOCK_DGRAM)
    sipp = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port),
                             "-rtp_echo", "-m", str(n), "-nostdin"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    time.sleep(0.5)
    cp = B.Callplane(work)
    result = {"calls": n, "batch": batch, "text": text}
    responses = {}
    try:
        ids = []
        for i in range(n):
            st, body = cp.req("POST", "/v1/calls", {"agent_id": cp.agent,
                                                    "to": "sip:bench@127.0.0.1:%d" % sipp_port})
            if st == 201:
                ids.append(body["id"])
            if i % 20 == 19:
                time.sleep(0.1)
        deadline = time.time() + 60
        while time.time() < deadline and cp.count("in_progress") < len(ids):
            time.sleep(0.2)
        result["answered"] = cp.count("in_progress")
        time.sleep(1)                # RTP flowing both ways on every call
        t0 = time.time()
        for i in range(0, len(ids), batch):
            end_batch(cp, ids[i:i + batch], text, responses)
        result["ending_s"] = round(time.time() - t0, 1)
        time.sleep(1)
        result["still_active"] = cp.count("active")
    finally:
        cp.stop()
        try:
            sipp.wait(15)
        except subprocess.TimeoutExpired:
            sipp.kill()
            sipp.wait()

    done, bye, start = {}, {}, {}
    for line in cp.log_lines():
        ev = line.get("event")
        if ev == "media_goodbye_done":
            done[line["call_id"]] = line
        elif ev == "sip_goodbye_bye":
            bye[line["call_id"]] = line
        elif ev == "call_goodbye_start":
            start[line["call_id"]] = line
    gaps = sorted(bye[c]["mono_us"] - done[c]["mono_us"] for c in bye if c in done)
    ok = [c for c, (st, body, _s) in responses.items()
          if st == 200 and isinstance(body, dict) and body.get("goodbye_ms", 0) > 0]
    goodbye_ms = sorted(responses[c][1]["goodbye_ms"] for c in ok)
    # how much longer than its speech an end took: rendering (serialised), the BYE, the commit
    over_ms = sorted(int(responses[c][2] * 1000) - responses[c][1]["goodbye_ms"] for c in ok)
    hows = {}
    for d in done.values():
        hows[d["how"]] = hows.get(d["how"], 0) + 1
    result.update({
        "ended_200_with_speech": len(ok),
        "other_responses": sorted({str(st) for st, _b, _s in responses.values() if st != 200}),
        "goodbyes_done": hows,
        "measured": len(gaps),
        "gap_us": {"p50": B.pct(gaps, 50), "p99": B.pct(gaps, 99), "max": gaps[-1] if gaps else None,
                   "min": gaps[0] if gaps else None},
        "goodbye_ms": {"p50": B.pct(goodbye_ms, 50), "min": goodbye_ms[0] if goodbye_ms else None,
                       "max": goodbye_ms[-1] if goodbye_ms else None},
        "audio_ms": sorted({s["audio_ms"] for s in start.values()}),
        "render_ms": {"p50": B.pct([s["render_ms"] for s in start.values()], 50),
                      "max": max([s["render_ms"] for s in start.values()], default=None)},
        "request_minus_speech_ms": {"p50": B.pct(over_ms, 50), "p99": B.pct(over_ms, 99)},
        "sipp_exit": sipp.returncode,
    })
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=120)
    ap.add_argument("--batch", type=int, default=20, help="ends in flight at once")
    ap.add_argument("--text", default="Thank you for calling. Goodbye.")
    ap.add_argument("--out", default="goodbye.json", help="result file name under bench/results")
    a = ap.parse_args()
    r = run(a.calls, a.batch, a.text)
    os.makedirs(B.RESULTS, exist_ok=True)
    with open(os.path.join(B.RESULTS, a.out), "w") as f:
        json.dump(r, f, indent=2)
    print(json.dumps(r, indent=2))
    good = (r["ended_200_with_speech"] == a.calls and r["measured"] == a.calls and
            r["goodbyes_done"] == {"played": a.calls} and r["sipp_exit"] == 0)
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
