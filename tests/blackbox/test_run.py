"""`make run` as a newcomer meets it (README, first lines): scripts/run.sh on a new database
creates the demo tenant, prints a call to try, starts the demo far end (a real baresip that
answers) and the server. The call the README shows reaches that far end, is answered, and ends.
Ports and the var directory are moved through the script's environment so the test runs beside
anything else on the machine."""

import json
import os
import signal
import subprocess
import time

from cp import binary_path
from sipp_peer import SERVER_SIP_PORTS, free_port, udp_free, wait_for

import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def request(port, method, path, key=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


def test_make_run_demo_call_reaches_the_demo_far_end(tmp_path):
    var = tmp_path / "var"
    # above the ephemeral range: the script binds them seconds later, and a client connection
    # of anything else on the machine must not take one in between
    lo, hi = SERVER_SIP_PORTS
    http_port = free_port(udp=False, tcp=True, lo=lo, hi=hi)
    sip_port = free_port(udp=True, tcp=True, lo=lo, hi=hi)
    peer_port = free_port(udp=True, tcp=True, lo=lo, hi=hi)
    env = dict(os.environ, VAR=str(var), HTTP="127.0.0.1:%d" % http_port,
               SIP="127.0.0.1:%d" % sip_port, PEER="127.0.0.1:%d" % peer_port,
               BIN=binary_path())
    out = open(tmp_path / "run.out", "w+")
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "run.sh")], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        def healthy():
            try:
                return request(http_port, "GET", "/healthz")[0] == 200
            except OSError:
                return False

        assert wait_for(healthy, 60), open(tmp_path / "run.out").read()
        demo = dict(line.split("=", 1) for line in (var / "demo.env").read_text().split())
        assert set(demo) == {"TENANT", "AGENT", "KEY"}
        printed = open(tmp_path / "run.out").read()
        # the call the script tells the newcomer to try, with their ids filled in
        assert ('-d \'{"agent_id":"%s","to":"sip:bob@127.0.0.1:%d"}\''
                % (demo["AGENT"], peer_port)) in printed, printed
        assert "demo far end sip:bob@127.0.0.1:%d answers every call" % peer_port in printed
        peer_log = var / "demo-peer.log"
        assert wait_for(lambda: not udp_free(peer_port), 10), \
            "the demo far end never bound: %s" % (peer_log.read_text() if peer_log.exists() else "")

        st, call = request(http_port, "POST", "/v1/calls", demo["KEY"],
                           {"agent_id": demo["AGENT"], "to": "sip:bob@127.0.0.1:%d" % peer_port})
        assert st == 201, call

        def answered():
            c = request(http_port, "GET", "/v1/calls/" + call["id"], demo["KEY"])[1]
            return c if c["status"] == "in_progress" else None

        up = wait_for(answered, 15)
        assert up and up["sip_status"] == 200, request(http_port, "GET",
                                                       "/v1/calls/" + call["id"], demo["KEY"])
        st, ended = request(http_port, "POST", "/v1/calls/%s/end" % call["id"], demo["KEY"], {})
        assert st == 200 and ended["status"] == "completed", ended
    finally:
        os.killpg(proc.pid, signal.SIGINT)          # Ctrl-C, as the script says
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        out.close()
    assert rc == 0, open(tmp_path / "run.out").read()
    # the demo far end went with the server
    assert wait_for(lambda: udp_free(peer_port), 5)
