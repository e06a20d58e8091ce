"""Black-box tests of webhook targets (docs/API.md, "Webhook targets"; docs/SECURITY.md): by
default a webhook URL must resolve to public addresses, at creation (API and CLI: 400 / exit 1)
and at delivery (the address connected to, so a name that resolves elsewhere later, as with DNS
rebinding, is still refused); `serve --webhook-allow-private` lets private ones through.

No traffic leaves the machine: refusals at creation only resolve names (literals, and
`localhost` from /etc/hosts), the one public address accepted (203.0.113.7, a documentation
range) never gets an event, and every delivery goes to a receiver on 127.0.0.1.  The harness
starts servers with --webhook-allow-private (cp.py); these tests turn it off where they test
the default.
"""

import json
import subprocess

import pytest

from cp import assert_cli_error, assert_error, free_port
from receiver import Receiver
from sipp_peer import wait_for

REFUSED = ("refused to connect to %s: a private address "
           "(serve --webhook-allow-private allows it)")
FAST = ["--webhook-retry-initial-ms", "100"]


def private_message(host, addr):
    return ("url host %s resolves to %s, a private address; a webhook must resolve to a public "
            "address (serve --webhook-allow-private allows private ones)" % (host, addr))


@pytest.fixture
def rcv():
    r = Receiver().start()
    yield r
    r.stop()


def hooks(cp):
    r = cp.request("GET", "/v1/webhooks", key=cp.key)
    assert r.status == 200, r
    return r.json["data"]


def end_queued_call(cp):
    c = cp.create_call()
    assert cp.end_call(c["id"])["status"] == "canceled"
    return c["id"]


def deliveries(cp):
    r = cp.request("GET", "/v1/webhooks/deliveries?status=failed", key=cp.key)
    assert r.status == 200, r
    failed = r.json["data"]
    r = cp.request("GET", "/v1/webhooks/deliveries?status=delivered", key=cp.key)
    assert r.status == 200, r
    r2 = cp.request("GET", "/v1/webhooks/deliveries?status=pending", key=cp.key)
    assert r2.status == 200, r2
    return failed, r.json["data"], r2.json["data"]


def private_cases(port):
    """(url, host as the message names it, the address it resolves to)"""
    return [
        ("http://127.0.0.1:%d/hook" % port, "127.0.0.1", "127.0.0.1"),
        ("http://10.20.30.40/hook", "10.20.30.40", "10.20.30.40"),
        ("http://[::1]:%d/hook" % port, "::1", "::1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254"),
        ("http://localhost:%d/hook" % port, "localhost", "127.0.0.1"),
        ("https://[::ffff:192.168.1.1]/hook", "::ffff:192.168.1.1", "::ffff:192.168.1.1"),
        ("http://100.64.0.1/hook", "100.64.0.1", "100.64.0.1"),
        ("http://0.0.0.0:%d/hook" % port, "0.0.0.0", "0.0.0.0"),
    ]


def test_api_refuses_private_targets_by_default(cp, rcv):
    cp.webhook_allow_private = False
    cp.setup_world()
    cp.start()
    for url, host, addr in private_cases(rcv.port):
        r = cp.request("POST", "/v1/webhooks", {"url": url}, key=cp.key)
        assert_error(r, 400, "webhook_target_not_allowed")
        assert r.json["error"]["message"] == private_message(host, addr), (url, r)
    # other schemes: refused whatever the host
    for url in ("ftp://203.0.113.7/x", "file:///etc/passwd", "gopher://203.0.113.7/"):
        assert_error(cp.request("POST", "/v1/webhooks", {"url": url}, key=cp.key), 400, "invalid_request")
    assert hooks(cp) == []
    # a public address is accepted (no event is made: nothing is ever sent to it)
    r = cp.request("POST", "/v1/webhooks", {"url": "https://203.0.113.7/hook"}, key=cp.key)
    assert r.status == 201, r
    assert [w["url"] for w in hooks(cp)] == ["https://203.0.113.7/hook"]
    assert rcv.snapshot() == []


def test_cli_refuses_private_targets_without_the_switch(cp, rcv):
    cp.webhook_allow_private = False
    cp.setup_world()
    for url, host, addr in private_cases(rcv.port):
        assert_cli_error(cp.cli_raw("webhook", "create", "--tenant", cp.tenant, "--url", url),
                         1, "error: " + private_message(host, addr))
    assert cp.cli("webhook", "list")["data"] == []
    made = cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", rcv.url, "--webhook-allow-private")
    assert [w["id"] for w in cp.cli("webhook", "list")["data"]] == [made["id"]]


def test_switch_allows_private_targets_and_delivers(cp, rcv):
    assert cp.webhook_allow_private      # the harness's default: --webhook-allow-private
    cp.setup_world()
    cp.start()
    urls = [rcv.url_for("/ip"), "http://localhost:%d/name" % rcv.port]
    for url in urls:
        r = cp.request("POST", "/v1/webhooks", {"url": url}, key=cp.key)
        assert r.status == 201, r
    call_id = end_queued_call(cp)
    got = rcv.wait_for(2, 15, pred=lambda q: q.json["data"]["id"] == call_id)
    assert sorted(q.path for q in got) == ["/ip", "/name"], got
    assert all(q.json["type"] == "call.ended" for q in got), got


def test_delivery_refuses_a_private_connect(cp, rcv):
    """A webhook that reached the store while private targets were allowed (the API of a
    server run with the switch; the CLI with it) meets a server without it: each delivery
    fails at its first attempt, at the address libcurl was about to connect to, and nothing
    reaches the receiver.  The name `localhost` stands in for a name rebound to 127.0.0.1
    after it was checked."""
    cp.setup_world()
    cp.start()
    api_hook = cp.request("POST", "/v1/webhooks", {"url": "http://localhost:%d/api" % rcv.port},
                          key=cp.key)
    assert api_hook.status == 201, api_hook
    cp.stop()
    cli_hook = cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", rcv.url_for("/cli"))
    cp.webhook_allow_private = False
    cp.start(extra_args=FAST)
    call_id = end_queued_call(cp)

    state = {}

    def both_failed():
        state["failed"], state["delivered"], state["pending"] = deliveries(cp)
        return len(state["failed"]) == 2

    assert wait_for(both_failed, 15, interval=0.05), state
    assert state["delivered"] == [] and state["pending"] == [], state
    by_hook = {d["webhook_id"]: d for d in state["failed"]}
    assert set(by_hook) == {api_hook.json["id"], cli_hook["id"]}, state
    for d in state["failed"]:
        assert d["call_id"] == call_id and d["event_type"] == "call.ended", d
        assert d["attempts"] == 1 and d["last_status"] is None, d
    assert by_hook[cli_hook["id"]]["last_error"] == REFUSED % "127.0.0.1", state
    # libcurl resolves localhost itself, to ::1 and 127.0.0.1; the error names the first tried
    assert by_hook[api_hook.json["id"]]["last_error"] in (REFUSED % "127.0.0.1", REFUSED % "::1"), state
    # a permanent failure, not a retry storm: with retries 100 ms apart a retried delivery
    # would have several attempts by now
    assert rcv.quiet(1.0) == []
    failed, _delivered, _pending = deliveries(cp)
    assert sorted(d["attempts"] for d in failed) == [1, 1], failed
    assert rcv.snapshot() == []
    lines = [json.loads(ln) for ln in cp.stderr_text().splitlines() if '"webhook_attempt"' in ln]
    refusals = [ln for ln in lines if ln.get("error") in (REFUSED % "127.0.0.1", REFUSED % "::1")]
    assert len(refusals) == 2 and all(ln["status"] == "failed" for ln in refusals), lines

    # replayed under a server with the switch, they are delivered
    cp.stop()
    cp.webhook_allow_private = True
    cp.start()
    r = cp.request("POST", "/v1/webhooks/deliveries/replay", key=cp.key)
    assert r.status == 200 and r.json == {"replayed": 2}, r
    got = rcv.wait_for(2, 15)
    assert sorted(q.path for q in got) == ["/api", "/cli"], got


def test_switch_from_config_file(cp, tmp_path):
    """The switch is an option of serve's table (serve_config.c): a boolean in --config."""
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"webhook-allow-private": "yes"}))
    p = subprocess.run([cp.bin, "serve", "--db", cp.db, "--http", "127.0.0.1:%d" % free_port(),
                        "--sip", "none", "--config", str(cfg)], cwd=cp.dir, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=15)
    assert p.returncode == 2, p
    assert p.stderr.decode().splitlines()[-1] == \
        'error: config %s: "webhook-allow-private" must be true or false' % cfg, p.stderr
    cp.webhook_allow_private = False
    cp.setup_world()
    for value, status in ((True, 201), (False, 400)):
        cfg.write_text(json.dumps({"webhook-allow-private": value}))
        cp.start(extra_args=["--config", str(cfg)])
        r = cp.request("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, key=cp.key)
        assert r.status == status, (value, r)
        cp.stop()
