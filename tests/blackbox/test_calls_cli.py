"""`callplane calls list|get|end|end-all|tail` (docs/API.md, "Calls from the command line"):
the operator's CLI over a running server's API, against calls to real sipp far ends. The key
comes from CALLPLANE_KEY, the server from --url or CALLPLANE_URL."""

import json
import os
import subprocess
import threading
import time

import pytest

from sipp_peer import reason_text, wait_for
from test_sip import NUMBER, sip, sipp_done  # noqa: F401 (sip: the fixture of test_sip.py)


def calls_cli(cp, *args, key=None, url=None, timeout=30):
    env = dict(os.environ, CALLPLANE_KEY=key if key is not None else cp.key)
    env.pop("CALLPLANE_URL", None)
    if url is not False:
        env["CALLPLANE_URL"] = url or "http://127.0.0.1:%d" % cp.port
    p = subprocess.run([cp.bin, "calls"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_list_get_end_as_json(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)

    rc, out, err = calls_cli(sip.cp, "list", "--status", "active", "--json")
    assert rc == 0, err
    listed = json.loads(out)
    assert [c["id"] for c in listed["data"]] == [call["id"]]
    assert listed["data"][0]["status"] == "in_progress"

    rc, out, err = calls_cli(sip.cp, "get", call["id"], "--json")
    assert rc == 0, err
    assert json.loads(out) == sip.cp.get_call(call["id"])

    rc, out, err = calls_cli(sip.cp, "end", call["id"], "--reason", "operator_cli", "--json")
    assert rc == 0, err
    ended = json.loads(out)
    assert (ended["id"], ended["status"], ended["end_reason"]) == (
        call["id"], "completed", "operator_cli")
    sipp_done(far)
    byes = far.received("BYE")
    assert len(byes) == 1 and reason_text(byes[0]) == "operator_cli", far.report()

    # the same end again: the API's 409, told as one error line, exit 1
    rc, out, err = calls_cli(sip.cp, "end", call["id"])
    assert (rc, out) == (1, "")
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [
        "error: call_not_active: " + sip.cp.request(
            "POST", "/v1/calls/%s/end" % call["id"], {}, key=sip.cp.key).json["error"]["message"]]


def test_end_all_ends_every_call_of_the_key(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", calls=3)
    calls = [sip.dial(far) for _ in range(3)]
    for c in calls:
        sip.wait_status(c["id"], "in_progress", timeout=4)
    rc, out, err = calls_cli(sip.cp, "end-all", "--reason", "emergency", "--json")
    assert rc == 0, err
    assert json.loads(out) == {"ended": 3, "already_ended": 0, "failed": 0}
    for c in calls:
        got = sip.call(c["id"])
        assert (got["status"], got["end_reason"]) == ("completed", "emergency")
    sipp_done(far)
    assert len(far.received("BYE")) == 3, far.report()


def test_table_output_on_a_terminal(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml")
    call = sip.dial(far)
    sip.wait_status(call["id"], "in_progress", timeout=4)
    # a pseudo-terminal as stdout: the table, not JSON
    import pty
    master, slave = pty.openpty()
    env = dict(os.environ, CALLPLANE_KEY=sip.cp.key,
               CALLPLANE_URL="http://127.0.0.1:%d" % sip.cp.port)
    p = subprocess.Popen([sip.cp.bin, "calls", "list"], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    assert p.wait(timeout=20) == 0
    os.close(master)
    lines = b"".join(chunks).decode().replace("\r\n", "\n").splitlines()
    assert lines[0].split() == ["id", "status", "direction", "to", "from", "created_at",
                                "duration_s", "end_reason"]
    assert lines[1].split()[:5] == [call["id"], "in_progress", "outbound", call["to"],
                                    call["from"]]
    assert len(lines) == 2
    sip.cp.end_call(call["id"])
    sipp_done(far)


def test_tail_follows_the_event_stream(sip):
    sip.start()
    env = dict(os.environ, CALLPLANE_KEY=sip.cp.key)
    p = subprocess.Popen([sip.cp.bin, "calls", "tail", "--json",
                          "--url", "http://127.0.0.1:%d/" % sip.cp.port],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    events = []
    reader = threading.Thread(target=lambda: events.extend(
        json.loads(ln) for ln in p.stdout), daemon=True)
    reader.start()
    try:
        time.sleep(1.0)      # the stream starts with the next event: let it connect first
        far = sip.uas("uas_answer_wait_bye.xml")
        call = sip.dial(far)
        sip.wait_status(call["id"], "in_progress", timeout=4)
        sip.cp.end_call(call["id"], body={"reason": "tail_test"})
        sipp_done(far)

        def ended():
            mine = [e for e in events if e["data"]["id"] == call["id"]]
            return mine if mine and mine[-1]["type"] == "call.ended" else None
        mine = wait_for(ended, 10)
        assert mine, events
        assert [e["type"] for e in mine] == ["call.ringing", "call.answered", "call.ended"], mine
        assert mine[-1]["data"]["end_reason"] == "tail_test"
    finally:
        p.terminate()
        rc = p.wait(timeout=10)
    assert rc == 0, p.stderr.read()


@pytest.mark.parametrize("args,key,message,code", [
    (["list"], "", "error: CALLPLANE_KEY must hold the API key (it is never taken from the "
                   "command line)", 2),
    (["get"], None, "error: calls get needs the call id", 2),
    (["list", "--url", "ftp://x"], None,
     "error: --url must be http://HOST:PORT or https://… (at most 511 bytes), got 'ftp://x'", 2),
    (["bogus"], None, "error: unknown calls command 'bogus'", 2),
    (["list"], "not-a-key", "error: unauthorized: ", 1),
])
def test_bad_use(cp, args, key, message, code):
    cp.setup_world(number=NUMBER)
    cp.start()
    rc, out, err = calls_cli(cp, *args, key=key)
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert (rc, out) == (code, "") and len(errors) == 1 and errors[0].startswith(message), \
        (rc, out, err)


def test_unreachable_server(cp):
    cp.setup_world(number=NUMBER)
    rc, out, err = calls_cli(cp, "list", key="k", url="http://127.0.0.1:1")
    assert (rc, out) == (1, "")
    assert err.startswith("error: cannot reach http://127.0.0.1:1: "), err
