"""The dashboard (GET /dashboard, issue 12 item 8; docs/OPERATIONS.md, Dashboard) in a real
browser: headless Chromium (Debian's `chromium`) driven by playwright-core
(tests/blackbox/browser_driver.py, tests/browser/driver.mjs), against a callplane with its SIP
engine and a sipp far end that answers and waits for the BYE.

What is checked:
- the three files are served with their types, the Content-Security-Policy and nosniff, and
  the script renders no value as HTML (no innerHTML, no document.write);
- a refused key shows 401 in the page and stops it (<body data-conn="refused">), and the key is
  never in a URL the server logged;
- with a tenant key pasted: a call placed through the API appears in the live table; its End
  button ends it: sipp gets its BYE (X-Callplane-End-Reason ended_by_api) and the row moves to
  the ended table with the reason;
- the charts count those ends, and the latency chart gets the server's API -> BYE measure of
  them (GET /metrics);
- "End all": a dismissed confirm ends nothing (the calls stay up, no BYE); an accepted one ends
  every live call (a BYE each) and the page shows them ended;
- an operator key sees the calls of every tenant, and the webhook deliveries of a tenant other
  than the first's;
- failed webhook deliveries (a webhook on a closed port) are listed, and Replay and "Replay
  every failed" reach their routes;
- the server gone: the page shows the network error and that it is reconnecting.
Screenshots are kept in build/dashboard/ (ARTEFACTS): dashboard-live.png with calls up,
dashboard.png after the ends.
"""

import json
import os
import re

import pytest

import cp as cpmod
from browser_driver import Driver
from dialect_helpers import raw_request
from sipp_peer import free_port, wait_for
from test_sip import SipWorld

NUMBER = "+15550001111"
ARTEFACTS = os.path.join(cpmod.ROOT, "build", "dashboard")
# bounds, not expectations: a loaded machine with sanitizers is slow
PAGE_MS = 20000
CALL_S = 20


@pytest.fixture
def world(cp, tmp_path):
    cp.setup_world(number=NUMBER)
    w = SipWorld(cp, tmp_path)
    # webhook deliveries that fail fast, for the deliveries table
    w.start("--webhook-max-age-s", "1", "--webhook-retry-initial-ms", "100", ring_timeout=60)
    yield w
    w.close()


@pytest.fixture
def browser():
    d = Driver()
    yield d
    d.quit()


def open_dashboard(world, browser, key):
    page = browser.call("open", url="http://127.0.0.1:%d/dashboard" % world.cp.port, timeout=60)
    assert page["status"] == 200, page
    n = page["page"]
    browser.call("fill", page=n, selector="#key", text=key)
    browser.call("click", page=n, selector="#connect")
    return n


def wait(browser, n, selector, state="attached", timeout_ms=PAGE_MS):
    browser.call("wait", page=n, selector=selector, state=state, timeout_ms=timeout_ms,
                 timeout=timeout_ms / 1000 + 20)


def texts(browser, n, selector):
    return browser.call("texts", page=n, selector=selector)["texts"]


def answered_call(world, far):
    call = world.dial(far)
    world.wait_status(call["id"], "in_progress", CALL_S)
    return call


def byes(far):
    return far.received("BYE")


def requests(cp, method, path):
    """The statuses of the requests the server logged with this method and path, in order."""
    out = []
    for ln in cp.stderr_text().splitlines():
        if '"http_request"' in ln:
            x = json.loads(ln)
            if x.get("method") == method and x.get("path") == path:
                out.append(x["status"])
    return out


def test_files_are_served_with_their_types_and_policy(world):
    port = world.cp.port
    want = {"/dashboard": "text/html; charset=utf-8",
            "/dashboard/app.js": "application/javascript; charset=utf-8",
            "/dashboard/app.css": "text/css; charset=utf-8"}
    for path, ctype in want.items():
        r = raw_request(port, "GET", path)
        assert r.status == 200, (path, r)
        assert r.headers.get("Content-Type") == ctype, (path, r.headers)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (path, r.headers)
        csp = r.headers.get("Content-Security-Policy") or ""
        assert "script-src 'self';" in csp and "default-src 'none';" in csp, (path, csp)
        assert "unsafe-inline" not in csp, csp
        with open(os.path.join(cpmod.ROOT, "src", "http", "dashboard" + os.path.splitext(
                path if "." in path else path + ".html")[1]), "rb") as f:
            assert r.raw == f.read(), "%s is not the file in the tree" % path
    page = raw_request(port, "GET", "/dashboard").raw.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "an inline script in the page"
    assert "style=" not in page and "<style" not in page, "an inline style in the page"
    js = raw_request(port, "GET", "/dashboard/app.js").raw.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, "the script uses %s" % sink


def test_refused_key_is_shown_and_never_logged(world, browser):
    bad = "cp_live_" + "x" * 40
    n = open_dashboard(world, browser, bad)
    wait(browser, n, 'body[data-conn="refused"]')
    wait(browser, n, '#error[data-status="401"]')
    (error,) = texts(browser, n, "#error")
    assert "401 unauthorized" in error, error
    assert bad not in world.cp.stderr_text(), "the key is in the server's log"


def test_live_call_end_and_end_all(world, browser):
    cp = world.cp
    far = world.uas("uas_answer_wait_bye.xml", calls=3, timeout=300)
    n = open_dashboard(world, browser, cp.key)
    wait(browser, n, 'body[data-conn="live"]')

    # a call placed through the API shows up live (from the event stream: the page was open)
    call = answered_call(world, far)
    row = '#live tr[data-call-id="%s"]' % call["id"]
    wait(browser, n, row + '[data-status="in_progress"]')

    # its End button: the BYE reaches sipp, the row moves to the ended table with its reason
    browser.call("click", page=n, selector=row + " button.end")
    wait(browser, n, '#ended tr[data-call-id="%s"]' % call["id"])
    wait(browser, n, row, state="detached")
    assert texts(browser, n, '#ended tr[data-call-id="%s"] .reason' % call["id"]) == ["ended_by_api"]
    assert texts(browser, n, '#ended tr[data-call-id="%s"] .status' % call["id"]) == ["completed"]
    got = wait_for(lambda: byes(far), CALL_S)
    assert len(got) == 1, far.report()
    assert got[0].call_id == call["provider_call_id"], got[0]
    assert got[0].header("x-callplane-end-reason") == "ended_by_api", got[0].text
    ended = cp.get_call(call["id"])
    assert ended["status"] == "completed" and ended["end_reason"] == "ended_by_api", ended

    # End all, dismissed: nothing ends
    calls = [answered_call(world, far) for _ in range(2)]
    for c in calls:
        wait(browser, n, '#live tr[data-call-id="%s"][data-status="in_progress"]' % c["id"])
    os.makedirs(ARTEFACTS, exist_ok=True)
    browser.call("screenshot", page=n, path=os.path.join(ARTEFACTS, "dashboard-live.png"))
    browser.call("dialogs", page=n, answer="dismiss")
    browser.call("click", page=n, selector="#end-all")
    wait(browser, n, '#notice:has-text("End all canceled")')
    seen = browser.call("dialogs", page=n, answer="accept")["seen"]
    assert seen == ["End every active call this key can see (2 shown here)?"], seen
    assert sorted(c["id"] for c in world.active()) == sorted(c["id"] for c in calls)
    assert len(byes(far)) == 1, far.report()
    assert requests(cp, "POST", "/v1/calls/end") == []

    # End all, accepted: both end, each with a BYE, and the page shows them ended
    browser.call("click", page=n, selector="#end-all")
    wait(browser, n, '#notice:has-text("End all: 2 ended, 0 already ended, 0 failed")')
    for c in calls:
        wait(browser, n, '#ended tr[data-call-id="%s"]' % c["id"])
        wait(browser, n, '#live tr[data-call-id="%s"]' % c["id"], state="detached")
        assert texts(browser, n, '#ended tr[data-call-id="%s"] .reason' % c["id"]) == ["ended_by_api"]
    assert world.active() == []
    got = wait_for(lambda: len(byes(far)) == 3 and byes(far), CALL_S)
    assert got and sorted(b.call_id for b in got[1:]) == \
        sorted(c["provider_call_id"] for c in calls), far.report()
    seen = browser.call("dialogs", page=n, answer="dismiss")["seen"]
    assert len(seen) == 2, seen
    assert texts(browser, n, "#live-count") == ["(0)"]
    assert requests(cp, "POST", "/v1/calls/end") == [200]
    # the charts: three ends counted (once each, from the events) within the last two minutes,
    # no call active
    wait(browser, n, '#chart-ends[data-total="3"]')
    wait(browser, n, '#chart-active[data-last="0"]')
    # the latency chart has the server's measure of these ends (GET /metrics, every 2 s)
    wait(browser, n, '#latency-now:has-text(" ms")')
    (latency,) = texts(browser, n, "#latency-now")
    assert re.match(r"^[0-9]+\.[0-9] ms$", latency) and float(latency.split()[0]) < 10000, latency
    browser.call("screenshot", page=n, path=os.path.join(ARTEFACTS, "dashboard.png"), full=True)
    assert cp.key not in cp.stderr_text(), "the key is in the server's log"


def test_operator_key_sees_every_tenant(world, browser):
    cp = world.cp
    other = cp.tenant_create("tenant-b")
    other_agent = cp.agent_create(other, "agent-b", number="+15550002222")
    _kid, other_key = cp.key_create(other)
    _oid, operator = cp.key_create_operator()
    closed = "http://127.0.0.1:%d/hook" % free_port(udp=False, tcp=True)
    hook = cp.cli("webhook", "create", "--tenant", other, "--url", closed)
    far = world.uas("uas_answer_wait_bye.xml", calls=2, timeout=300)
    a = answered_call(world, far)
    b = world.cp.create_call(key=other_key, agent=other_agent, to="sip:bob@%s" % far.uri_host)
    assert wait_for(lambda: cp.get_call(b["id"], key=other_key)["status"] == "in_progress",
                    CALL_S), world.diagnostics()

    n = open_dashboard(world, browser, operator)
    wait(browser, n, 'body[data-conn="live"]')
    for c in (a, b):
        wait(browser, n, '#live tr[data-call-id="%s"][data-status="in_progress"]' % c["id"])
    # tenant B's deliveries (the only webhook's), listed for the operator, as its calls are
    wait(browser, n, '#deliveries tr[data-delivery-id]')
    r = cp.request("GET", "/v1/webhooks/deliveries", key=other_key)
    assert r.status == 200 and {d["webhook_id"] for d in r.json["data"]} == {hook["id"]}, r
    assert texts(browser, n, "#deliveries-note") == [""]
    browser.call("click", page=n, selector='#live tr[data-call-id="%s"] button.end' % b["id"])
    wait(browser, n, '#ended tr[data-call-id="%s"]' % b["id"])
    got = wait_for(lambda: byes(far), CALL_S)
    assert [x.call_id for x in got] == [b["provider_call_id"]], far.report()
    assert cp.get_call(b["id"], key=other_key)["end_reason"] == "ended_by_api"
    assert cp.get_call(a["id"])["status"] == "in_progress"


def test_failed_deliveries_replayed(world, browser):
    cp = world.cp
    closed = "http://127.0.0.1:%d/hook" % free_port(udp=False, tcp=True)
    cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", closed)
    far = world.uas("uas_answer_wait_bye.xml", calls=1, timeout=300)
    call = answered_call(world, far)
    cp.end_call(call["id"])

    def failed():
        r = cp.request("GET", "/v1/webhooks/deliveries?status=failed", key=cp.key)
        assert r.status == 200, r
        return len(r.json["data"]) == 3 and r.json["data"]
    got = wait_for(failed, CALL_S)
    assert got, "no 3 failed deliveries (ringing, answered, ended)\n" + world.diagnostics()

    n = open_dashboard(world, browser, cp.key)
    wait(browser, n, 'body[data-conn="live"]')
    first = got[0]["id"]
    row = '#deliveries tr[data-delivery-id="%d"][data-status="failed"]' % first
    wait(browser, n, row + " button")
    assert len(texts(browser, n, '#deliveries tr[data-status="failed"]')) == 3
    browser.call("click", page=n, selector=row + " button")
    wait(browser, n, '#notice:has-text("delivery %d replayed: pending again")' % first)
    assert requests(cp, "POST", "/v1/webhooks/deliveries/%d/replay" % first) == [200]

    # the replayed one fails again (the port is still closed); then every failed one at once
    assert wait_for(lambda: len(failed() or []) == 3, CALL_S), world.diagnostics()
    browser.call("click", page=n, selector="#replay-all")
    wait(browser, n, '#notice:has-text("3 failed deliveries replayed")')
    assert requests(cp, "POST", "/v1/webhooks/deliveries/replay") == [200]


def test_server_gone_is_shown(world, browser):
    cp = world.cp
    n = open_dashboard(world, browser, cp.key)
    wait(browser, n, 'body[data-conn="live"]')
    cp.stop()
    wait(browser, n, 'body[data-conn="reconnecting"]')
    wait(browser, n, '#error[data-status="0"]')
    (error,) = texts(browser, n, "#error")
    assert error.startswith("live events: network: "), error
