"""Bridged-call benchmark: N concurrent answered calls, each with RTP both ways (sipp's uas
echoes our RTP, -rtp_echo) and an agent stream both ways (bench/agent/echo.js, node with npm's
ws, echoes every media frame on its own 20 ms clock, as a real agent speaks), held for a measured window. Reports callplane's CPU per call (from
/proc/PID/stat over the window), RSS per call (above the idle server's), and the frame rates the agent saw against
the 50 frames/s per call a 20 ms ptime gives, then ends every call.

    python3 bench/media.py [--calls N] [--hold SECONDS] [--no-agent] [--immediate] [--out NAME]

--no-agent holds calls with RTP only (no stream URL), as a call without an agent is. --immediate
makes the agent echo each frame on arrival: a loop closed on callplane's own playout clock (see
bench/agent/echo.js). The media engine's log line at stop gives both latency histograms: RTP-in ->
agent-out and agent-in -> RTP-out (the latter for frames that found the playout queue empty).
Results go to bench/results/media.json (media_rtp_only.json with --no-agent, or --out NAME). Run from the project root after `make`."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
AGENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent")


def agent_ready():
    """The echo agent's one npm package, installed from its lock file on first use."""
    if not os.path.isdir(os.path.join(AGENT_DIR, "node_modules", "ws")):
        subprocess.check_call(["npm", "ci", "--no-audit", "--no-fund"], cwd=AGENT_DIR, stdout=sys.stderr)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def agent_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run(n, hold, agent_on=True, immediate=False):
    work = tempfile.mkdtemp(prefix="cpbench-media-")
    agent_port = B.free_port()
    stats_path = os.path.join(work, "agent.json")
    agent_ready()
    agent = subprocess.Popen(["node", os.path.join(AGENT_DIR, "echo.js"), str(agent_port), stats_path]
                             + (["--immediate"] if immediate else []),
                             stderr=open(os.path.join(work, "agent.err"), "wb"))
    sipp_port = B.free_port(B.socket.SOCK_DGRAM)
    sipp = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port),
                             "-rtp_echo", "-m", str(n), "-nostdin", "-buff_size", "4194304",
                             "-max_socket", "65000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=work)
    time.sleep(0.5)
    cp = B.Callplane(work)
    result = {"calls": n, "hold_s": hold, "agent": agent_on,
              "agent_clock": "immediate" if immediate else "own 20 ms clock"}
    try:
        url = "ws://127.0.0.1:%d/agent" % agent_port
        rss0 = cp.rss_kb()           # the server before any call: per-call figures are above it
        ids = []
        t0 = time.time()
        for i in range(n):
            body = {"agent_id": cp.agent, "to": "sip:bench@127.0.0.1:%d" % sipp_port}
            if agent_on:
                body["stream_url"] = url
            st, body = cp.req("POST", "/v1/calls", body)
            if st == 201:
                ids.append(body["id"])
            if i % 50 == 49:
                time.sleep(0.2)      # a paced ramp: 250 calls/s at most
        deadline = time.time() + 60
        while time.time() < deadline and cp.count("in_progress") < len(ids):
            time.sleep(0.5)
        up = cp.count("in_progress")
        result["up"] = up
        result["setup_s"] = round(time.time() - t0, 1)
        time.sleep(3)                # streams open, queues settle
        a0, c0, w0 = agent_stats(stats_path), cpu_s(cp.proc.pid), time.time()
        time.sleep(hold)
        a1, c1, w1 = agent_stats(stats_path), cpu_s(cp.proc.pid), time.time()
        wall = w1 - w0
        cpu = c1 - c0
        result.update({
            "streams_open": a1.get("open"),
            "cpu_core_fraction": round(cpu / wall, 3),
            "cpu_pct_of_core_per_call": round(100 * cpu / wall / max(up, 1), 3),
            "rss_kb_idle": rss0,
            "rss_kb": cp.rss_kb(),
            "rss_kb_per_call": round((cp.rss_kb() - rss0) / max(up, 1), 1),
            "agent_frames_in_per_s": round((a1.get("in", 0) - a0.get("in", 0)) / wall, 1),
            "agent_frames_out_per_s": round((a1.get("out", 0) - a0.get("out", 0)) / wall, 1),
            "expected_frames_per_s": 50 * up,
        })
        result["agent_in_ratio"] = round(result["agent_frames_in_per_s"] /
                                         max(result["expected_frames_per_s"], 1), 3)
        still = cp.count("in_progress")
        result["still_in_progress_after_hold"] = still
        for cid in ids:
            cp.req("POST", "/v1/calls/%s/end" % cid)
        time.sleep(1)
        result["ended_reasons"] = {}
        db = B.sqlite3.connect("file:%s?mode=ro" % cp.db, uri=True)
        for reason, count in db.execute("SELECT end_reason, count(*) FROM calls GROUP BY 1"):
            result["ended_reasons"][reason or "none"] = count
        db.close()
    finally:
        cp.stop()
        sipp.kill()
        agent.kill()
    # what the media engine counted, logged when it stopped: the RTP-in -> agent-out latency
    # of in-order frames (docs/ARCHITECTURE.md), packets dropped, audio dropped
    for line in cp.log_lines():
        if line.get("event") == "media_stats":
            result["media_stats"] = {k: v for k, v in line.items() if k not in ("ts", "level", "event")}
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--hold", type=int, default=10)
    ap.add_argument("--no-agent", action="store_true", help="RTP only: no stream URL")
    ap.add_argument("--immediate", action="store_true",
                    help="the agent echoes each frame on arrival (a loop closed on our clock)")
    ap.add_argument("--out", help="result file name under bench/results (default by mode)")
    a = ap.parse_args()
    r = run(a.calls, a.hold, not a.no_agent, a.immediate)
    os.makedirs(B.RESULTS, exist_ok=True)
    name = a.out or ("media_rtp_only.json" if a.no_agent else "media.json")
    with open(os.path.join(B.RESULTS, name), "w") as f:
        json.dump(r, f, indent=2)
    print(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
