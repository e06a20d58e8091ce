"""Drain, readiness and the service manager's protocol (docs/OPERATIONS.md, "Drain").

With `--drain-timeout SECONDS`, SIGTERM (or `callplane drain`) stops new calls -- POST /v1/calls
and inbound INVITEs get 503 with Retry-After -- and turns /readyz to 503 while /healthz stays
200; the live calls go on until they end, then the server exits 0. Calls still up at the
timeout are ended (end_reason drain_timeout); a second SIGTERM ends them at once
(node_shutdown). The far ends are sipp (tests/blackbox/sipp/): uas_answer_bye_on_info.xml hangs
up when the test sends it an INFO in the call's dialog, so the call's end is the test's to
choose. Timings are printed (pytest -s) and bounded only by orderings and generous deadlines.
"""

import json
import os
import random
import signal
import socket
import subprocess
import time

import pytest

from cp import assert_error, parse_ts
from sipp_peer import reason_text, wait_for
from test_sip import NUMBER, sip, sipp_done  # noqa: F401 (sip: the SIP world fixture)

DRAIN_S = 5
RETRY_AFTER = "5"     # CP_RETRY_AFTER_S
EXIT_TIMEOUT = 30     # a generous bound on any wait for the server's exit


def hang_up_far_end(peer, call_id):
    """Send the sipp UAS running uas_answer_bye_on_info.xml an INFO in the call `call_id`
    (the SIP Call-ID): it answers it and sends its BYE."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        tag = "%08x" % random.getrandbits(32)
        msg = ("INFO sip:bob@127.0.0.1:%d SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
               "From: <sip:test@127.0.0.1:%d>;tag=%s\r\n"
               "To: <sip:bob@127.0.0.1:%d>\r\n"
               "Call-ID: %s\r\n"
               "CSeq: 7 INFO\r\n"
               "Max-Forwards: 70\r\n"
               "Content-Length: 0\r\n\r\n") % (peer.port, port, tag, port, tag, peer.port, call_id)
        s.sendto(msg.encode(), ("127.0.0.1", peer.port))
    finally:
        s.close()


def sigterm(cp):
    os.kill(cp.proc.pid, signal.SIGTERM)
    return time.monotonic()


def wait_exit(cp, timeout=EXIT_TIMEOUT):
    """Wait (bounded) for the server to exit by itself; returns (monotonic, wall) times then.
    cp.stop() afterwards asserts exit 0 and no sanitizer report."""
    try:
        cp.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("server still running %ss after SIGTERM\n%s" % (timeout, cp.stderr_text()[-3000:]))
    return time.monotonic(), time.time()


def log_events(cp, event):
    out = []
    for ln in cp.stderr_text().splitlines():
        try:
            j = json.loads(ln)
        except ValueError:
            continue
        if j.get("event") == event:
            out.append(j)
    return out


def wait_draining(cp):
    """Poll /readyz until it says draining (the signal was taken); returns its response."""
    last = [None]

    def check():
        last[0] = cp.request("GET", "/readyz")
        return last[0].status == 503

    assert wait_for(check, 10), "readyz never turned 503: %r" % (last[0],)
    return last[0]


def live_call(sip, drain_timeout, scenario):
    """Starts the server with --drain-timeout and a far end running scenario; returns (the far
    end, the call answered by it)."""
    sip.start("--drain-timeout", str(drain_timeout))
    far = sip.uas(scenario, timeout=30)
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=5)
    return far, call


def test_readyz_checks_store_and_engine(sip):
    sip.start()
    r = sip.cp.request("GET", "/readyz")
    assert r.status == 200, r
    assert r.json == {"status": "ready", "store": "ok", "sip": "ok"}, r
    assert sip.cp.request("GET", "/healthz").json == {"status": "ok"}


def test_readyz_without_engine(srv):
    r = srv.request("GET", "/readyz")
    assert r.status == 200, r
    assert r.json == {"status": "ready", "store": "ok", "sip": "none"}, r


def test_drain_waits_for_the_live_call_then_exits(sip):
    far, call = live_call(sip, DRAIN_S, "uas_answer_bye_on_info.xml")

    t_term = sigterm(sip.cp)
    r = wait_draining(sip.cp)
    assert_error(r, 503, "unavailable")
    assert r.json["error"]["message"] == "draining: this server takes no new calls", r
    assert r.headers.get("Retry-After") == RETRY_AFTER, r.headers
    # no new calls, in the canonical error shape, with Retry-After
    r = sip.cp.request("POST", "/v1/calls", {"agent_id": sip.cp.agent, "to": "sip:x@127.0.0.1:9"},
                       key=sip.cp.key)
    assert_error(r, 503, "unavailable")
    assert r.headers.get("Retry-After") == RETRY_AFTER, r.headers
    # the process is alive, and the live call goes on: readable, and endable by its far end
    assert sip.cp.request("GET", "/healthz").status == 200
    assert sip.call(call["id"])["status"] == "in_progress"
    assert sip.cp.running

    hang_up_far_end(far, call["provider_call_id"])
    t_exit, wall_exit = wait_exit(sip.cp)
    sip.cp.stop()     # exit 0, no sanitizer report
    sipp_done(far, timeout=10)
    assert far.received("BYE") == [], "the server hung up a call the drain should have waited for\n" + far.report()
    assert len(far.sent("BYE")) == 1, far.report()
    assert t_exit - t_term < DRAIN_S, "exit %.2f s after SIGTERM: the drain waited for its timeout" % (t_exit - t_term)

    drained = log_events(sip.cp, "drained")
    assert len(drained) == 1 and log_events(sip.cp, "drain_timeout") == [], sip.cp.stderr_text()[-3000:]
    sip.restart()
    got = sip.call(call["id"])
    assert got["status"] == "completed" and got["end_reason"] == "remote_hangup", got
    ended = parse_ts(got["ended_at"]).timestamp()
    print("\ndrain: last call ended (ended_at) -> process exit: %.0f ms; SIGTERM -> exit %.0f ms"
          % ((wall_exit - ended) * 1000, (t_exit - t_term) * 1000))


def test_drain_timeout_ends_the_calls_left(sip):
    far, call = live_call(sip, DRAIN_S, "uas_answer_wait_bye.xml")

    t_term = sigterm(sip.cp)
    wait_draining(sip.cp)
    # an inbound call is refused with 503 and Retry-After
    caller = sip.uac("uac_invite_expect_503.xml", timeout=10)
    sipp_done(caller, timeout=15)
    refused = caller.received(status=503)
    assert len(refused) == 1, caller.report()
    assert refused[0].header("retry-after") == RETRY_AFTER, refused[0].text
    assert sip.cp.running, "the server left before its drain timeout"

    t_exit, _wall = wait_exit(sip.cp)
    sip.cp.stop()
    sipp_done(far, timeout=10)
    byes = far.received("BYE")
    assert len(byes) == 1 and byes[0].call_id == call["provider_call_id"], far.report()
    assert reason_text(byes[0]) == "drain_timeout"
    assert t_exit - t_term >= DRAIN_S, "exit %.2f s after SIGTERM, before the drain timeout" % (t_exit - t_term)
    timeouts = log_events(sip.cp, "drain_timeout")
    assert len(timeouts) == 1 and timeouts[0]["calls"] == 1, timeouts
    sip.restart()
    got = sip.call(call["id"])
    assert got["status"] == "completed" and got["end_reason"] == "drain_timeout", got
    # no inbound call was made during the drain
    assert [c["id"] for c in sip.cp.list_all()] == [call["id"]]
    print("\ndrain timeout (%d s): SIGTERM -> exit %.0f ms, i.e. %.0f ms after the timeout"
          % (DRAIN_S, (t_exit - t_term) * 1000, (t_exit - t_term - DRAIN_S) * 1000))


def test_second_sigterm_ends_the_drain_at_once(sip):
    far, call = live_call(sip, 600, "uas_answer_wait_bye.xml")
    sigterm(sip.cp)
    wait_draining(sip.cp)
    t_second = sigterm(sip.cp)
    t_exit, _wall = wait_exit(sip.cp)
    sip.cp.stop()
    sipp_done(far, timeout=10)
    byes = far.received("BYE")
    assert len(byes) == 1 and reason_text(byes[0]) == "node_shutdown", far.report()
    assert len(log_events(sip.cp, "drain_forced")) == 1
    sip.restart()
    got = sip.call(call["id"])
    assert got["end_reason"] == "node_shutdown", got
    print("\ndrain: second SIGTERM -> exit %.0f ms" % ((t_exit - t_second) * 1000))


def test_drain_without_calls_exits_at_once(sip):
    sip.start("--drain-timeout", "600")
    t_term = sigterm(sip.cp)
    t_exit, _wall = wait_exit(sip.cp)
    sip.cp.stop()
    drained = log_events(sip.cp, "drained")
    assert len(drained) == 1, sip.cp.stderr_text()[-2000:]
    print("\ndrain with no call: SIGTERM -> exit %.0f ms" % ((t_exit - t_term) * 1000))


# ------------------------------------------------------------------- callplane drain, pid file


def test_drain_command_through_the_pid_file(cp):
    cp.setup_world()
    pid_file = os.path.join(cp.dir, "run", "callplane.pid")
    os.makedirs(os.path.dirname(pid_file))
    cp.start(extra_args=["--pid-file", pid_file, "--drain-timeout", "600"])
    with open(pid_file) as f:
        assert f.read() == "%d\n" % cp.proc.pid
    # a second server cannot take the same pid file
    other = cp.cli_raw("serve", "--db", os.path.join(cp.dir, "other.db"), "--http", "127.0.0.1:0",
                       "--sip", "none", "--pid-file", pid_file, db=False)
    assert other[0] == 1 and "error: the pid file %s is held by another running server" % pid_file in other[2], other

    rc, out, err = cp.cli_raw("drain", "--pid-file", pid_file, db=False)
    assert rc == 0, (rc, out, err)
    body = json.loads(out)
    assert body["pid"] == cp.proc.pid and body["stopped"] is True, body
    # the lock goes as the process exits: it is gone, or a reap away
    cp.proc.wait(timeout=5)
    cp.stop()
    assert not os.path.exists(pid_file)
    # nothing holds it now
    rc, out, err = cp.cli_raw("drain", "--pid-file", pid_file, db=False)
    assert (rc, out) == (1, "") and err == "error: no server is running: %s does not exist\n" % pid_file, err


def test_drain_command_refuses_a_stale_pid_file(cp):
    pid_file = os.path.join(cp.dir, "stale.pid")
    with open(pid_file, "w") as f:
        f.write("%d\n" % os.getpid())    # a live process, but no server holds the file
    rc, out, err = cp.cli_raw("drain", "--pid-file", pid_file, db=False)
    assert (rc, out) == (1, "") and err == "error: no server is running: no server holds %s\n" % pid_file, err
    rc, out, err = cp.cli_raw("drain", db=False, env={"CALLPLANE_PID_FILE": ""})
    assert rc == 2 and err.startswith("error: no pid file: give --pid-file FILE or set CALLPLANE_PID_FILE"), err


def test_drain_timeout_option_is_checked(cp):
    rc, out, err = cp.cli_raw("serve", "--sip", "none", "--drain-timeout", "86401")
    assert (rc, out) == (2, "") and "error: --drain-timeout must be 0..86400 seconds" in err, err
    rc, out, err = cp.cli_raw("serve", "--sip", "none", "--pid-file", "")
    assert (rc, out) == (2, "") and "error: --pid-file must be a file path" in err, err


# --------------------------------------------------------------------------- sd_notify


def test_service_manager_hears_ready_watchdog_and_stopping(cp, tmp_path, monkeypatch):
    """Type=notify: READY=1 once serving, WATCHDOG=1 every half WATCHDOG_USEC while healthy,
    STOPPING=1 at SIGTERM (systemd's protocol, read from a socket of our own)."""
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "600000")
    cp.setup_world()
    try:
        cp.start(extra_args=["--drain-timeout", "30"])
        msgs = []

        def collect(pred, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not pred():
                try:
                    msgs.append(s.recv(4096).decode())
                except socket.timeout:
                    pass
            return pred()

        assert collect(lambda: sum("WATCHDOG=1" in m.split("\n") for m in msgs) >= 3, 10), msgs
        ready = [m for m in msgs if "READY=1" in m.split("\n")]
        assert len(ready) == 1, msgs
        assert msgs.index(ready[0]) == 0, msgs
        sigterm(cp)
        assert collect(lambda: any("STOPPING=1" in m.split("\n") for m in msgs), 10), msgs
        stopping = [m for m in msgs if "STOPPING=1" in m.split("\n")][0].split("\n")
        assert "STATUS=draining: 0 calls live" in stopping, stopping
        assert "EXTEND_TIMEOUT_USEC=%d" % ((30 + 30) * 1000000) in stopping, stopping
        wait_exit(cp)
        cp.stop()
    finally:
        s.close()
