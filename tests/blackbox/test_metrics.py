"""Black-box tests of GET /metrics (docs/OPERATIONS.md, "Metrics"): the Prometheus text
exposition, scraped before and after known actions (calls to sipp far ends ended through each
API dialect and by the far end, a rate limit hit, webhooks that fail, a live-event stream), with
exact deltas asserted; every scrape's text must pass `promtool check metrics` (Debian's
`prometheus` package).  --metrics-token: 401 without the token, 200 with it.
"""

import json
import re
import shutil
import socket
import subprocess
import time

import pytest

from cp import assert_error, free_port as free_tcp_port
from receiver import Receiver, SseReader
from sipp_peer import wait_for
from test_sip import NUMBER, sip, sipp_done  # noqa: F401 (sip is the fixture)

TOKEN = "scrape-token-0123456789abcdef"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CARTESIA_VERSION = "2026-03-01"

# every family /metrics serves, with its type (docs/OPERATIONS.md lists the same)
FAMILIES = {
    "callplane_http_requests_total": "counter",
    "callplane_http_rate_limited_total": "counter",
    "callplane_calls_active": "gauge",
    "callplane_calls_created_total": "counter",
    "callplane_calls_ended_total": "counter",
    "callplane_end_request_seconds": "histogram",
    "callplane_end_to_wire_seconds": "histogram",
    "callplane_sip_responses_total": "counter",
    "callplane_store_commit_seconds": "histogram",
    "callplane_webhook_deliveries_pending": "gauge",
    "callplane_webhook_deliveries_due": "gauge",
    "callplane_webhook_attempts_in_flight": "gauge",
    "callplane_webhook_attempts_total": "counter",
    "callplane_webhook_deliveries_given_up_total": "counter",
    "callplane_sse_clients": "gauge",
    "callplane_sip_inbound_refused_total": "counter",
    "callplane_trunk_registrations_total": "counter",
    "callplane_trunks_registered": "gauge",
    "callplane_media_sessions_total": "counter",
    "callplane_rtp_packets_received_total": "counter",
    "callplane_rtp_packets_sent_total": "counter",
    "callplane_rtp_packets_dropped_total": "counter",
    "callplane_rtp_packets_expected_total": "counter",
    "callplane_rtp_packets_lost_total": "counter",
    "callplane_rtp_jitter_seconds": "histogram",
    "callplane_agent_frames_received_total": "counter",
    "callplane_agent_frames_sent_total": "counter",
    "callplane_dtmf_received_total": "counter",
    "callplane_dtmf_sent_total": "counter",
    "callplane_playout_dropped_bytes_total": "counter",
    "callplane_build_info": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
}

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# ------------------------------------------------------------------------------ helpers


class Metrics:
    """One scrape: the text, and its samples by (name, labels)."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                assert name not in self.types, "family %s announced twice" % name
                self.types[name] = typ
                continue
            if line.startswith("#") or not line:
                continue
            m = SAMPLE_RE.match(line)
            assert m, "not a sample line: %r" % line
            labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
            key = (m.group(1), labels)
            assert key not in self.samples, "series twice: %r" % line
            self.samples[key] = float(m.group(3))

    def get(self, name, **labels):
        """A series' value; 0 when absent (sparse families show only what is not zero)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name, **labels):
        """The sum of every series of name whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


def promtool_check(text):
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0 and out.strip() == "", "promtool check metrics (exit %d):\n%s" % (
        p.returncode, out)


def scrape(cp, token=None, check=True):
    headers = {"Authorization": "Bearer " + token} if token else None
    r = cp.request("GET", "/metrics", headers=headers)
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == CONTENT_TYPE, r.headers.items()
    text = r.raw.decode("utf-8")
    if check:
        promtool_check(text)
    return Metrics(text)


def ended(status, reason, dialect):
    return {"status": status, "reason": reason, "dialect": dialect}


def sip_resp(direction, method, code):
    return {"direction": direction, "method": method, "code": str(code)}


# ------------------------------------------------------------------------- without SIP


def test_metrics_open_well_formed_and_counting(srv):
    cp = srv
    m = scrape(cp)
    # every family, once, with its type; nothing else
    assert m.types == FAMILIES, (set(m.types) ^ set(FAMILIES))
    assert m.get("callplane_build_info", version="dev") == 1
    assert abs(m.get("process_start_time_seconds") - time.time()) < 120
    assert m.get("process_open_fds") > 0 and m.get("process_max_fds") >= m.get("process_open_fds")
    for s in ("queued", "ringing", "in_progress"):
        assert m.get("callplane_calls_active", status=s) == 0
    assert m.total("callplane_calls_ended_total") == 0

    # the scrape itself is counted once answered: the next one sees it and what came between
    for _ in range(3):
        assert cp.request("GET", "/v1/calls", key=cp.key).status == 200
    assert cp.request("GET", "/no/such/route").status == 404
    m2 = scrape(cp)
    req = "callplane_http_requests_total"
    assert m2.get(req, dialect="canonical", **{"class": "2xx"}) - \
        m.get(req, dialect="canonical", **{"class": "2xx"}) == 4
    assert m2.get(req, dialect="canonical", **{"class": "4xx"}) - \
        m.get(req, dialect="canonical", **{"class": "4xx"}) == 1

    # --sip none: a call stays queued until ended, then it is canceled
    call = cp.create_call()
    m3 = scrape(cp)
    assert m3.get("callplane_calls_active", status="queued") == 1
    assert m3.get("callplane_calls_created_total", direction="outbound") == 1
    cp.end_call(call["id"])
    m4 = scrape(cp)
    assert m4.get("callplane_calls_active", status="queued") == 0
    assert m4.get("callplane_calls_ended_total", **ended("canceled", "ended_by_api", "canonical")) == 1
    assert m4.total("callplane_calls_ended_total") == 1
    # no engine: nothing went on the wire
    assert m4.get("callplane_end_to_wire_seconds_count") == 0
    assert m4.get("callplane_end_request_seconds_count") == 1


def test_metrics_token(cp):
    cp.setup_world()
    cp.start(extra_args=["--metrics-token", TOKEN])
    for headers in (None, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": "Bearer " + cp.key},          # an API key is not it
                    {"x-api-key": TOKEN},                            # only as a Bearer token
                    {"Authorization": "Basic " + TOKEN},
                    {"Authorization": "Bearer " + TOKEN + "x"}):
        r = cp.request("GET", "/metrics", headers=headers)
        assert_error(r, 401, "unauthorized")
        assert r.headers.get("WWW-Authenticate") == 'Bearer realm="metrics"', r.headers.items()
        assert b"callplane_" not in r.raw
    m = scrape(cp, token=TOKEN)
    # the scheme is case-insensitive (RFC 7235)
    r = cp.request("GET", "/metrics", headers={"Authorization": "bearer " + TOKEN})
    assert r.status == 200, r
    # the six refusals were answered (and counted) before the scrape that passed
    assert m.get("callplane_http_requests_total", dialect="canonical", **{"class": "4xx"}) == 6
    # the API and /healthz are as before
    assert cp.request("GET", "/healthz").status == 200
    assert cp.request("GET", "/v1/calls", key=cp.key).status == 200
    assert_error(cp.request("GET", "/v1/calls", key=TOKEN), 401, "unauthorized")


def test_metrics_token_from_config_file(cp, tmp_path):
    cp.setup_world()
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"metrics-token": TOKEN}))
    cp.start(extra_args=["--config", str(cfg)])
    assert_error(cp.request("GET", "/metrics"), 401, "unauthorized")
    scrape(cp, token=TOKEN)


def test_metrics_token_from_environment(cp, monkeypatch):
    # CALLPLANE_ + the option's name (docs/API.md): a secret kept out of `ps`
    cp.setup_world()
    monkeypatch.setenv("CALLPLANE_METRICS_TOKEN", TOKEN)
    cp.start()
    assert_error(cp.request("GET", "/metrics"), 401, "unauthorized")
    scrape(cp, token=TOKEN)


@pytest.mark.parametrize("token", ["short-token", "x" * 257, "has a space in it 0123456789",
                                   "tab\tinside-0123456789abc", ""])
def test_metrics_token_invalid_is_a_usage_error(cp, token):
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_tcp_port(), "--sip", "none",
                              "--metrics-token", token, timeout=10)
    assert rc == 2 and out == "", (rc, out, err)
    assert "error: --metrics-token must be 16..256 visible ASCII characters (no spaces)" in err, err


# ------------------------------------------------------------------------------- SIP


def answered(sip, peer):
    c = sip.dial(peer)
    return sip.wait_status(c["id"], "in_progress", timeout=8)


def closed_port():
    """A local TCP port nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_metrics_after_calls_ends_and_failures(sip):
    cp = sip.cp
    limited = cp.cli("key", "create", "--tenant", cp.tenant, "--rate-limit", "1")["key"]
    _nkid, number_key = cp.key_create(cp.tenant, number=NUMBER)
    # a retry only after >= 7.5 min: each delivery gets exactly one attempt during the test
    sip.start("--webhook-retry-initial-ms", "600000")
    answer = sip.uas("uas_answer_wait_bye.xml", calls=7, timeout=120)
    far_bye = sip.uas("uas_answer_send_bye.xml", calls=1, timeout=120, pause_ms=300)
    m0 = scrape(cp)

    # a live-event stream is a client until it goes away
    stream = SseReader(cp.port, path="/v1/events", key=cp.key)
    stream.open()
    assert stream.status == 200, stream.head_raw
    stream.start()
    assert scrape(cp).get("callplane_sse_clients") == 1

    # six answered calls, and one the far end hangs up itself
    calls = [answered(sip, answer) for _ in range(6)]
    by_far_end = sip.dial(far_bye)
    sip.wait_call(by_far_end["id"], lambda c: c["status"] == "completed", 10, "completed")
    m1 = scrape(cp)
    assert m1.get("callplane_calls_active", status="in_progress") == 6
    assert m1.get("callplane_calls_active", status="queued") == 0
    assert m1.get("callplane_calls_active", status="ringing") == 0
    created = "callplane_calls_created_total"
    assert m1.get(created, direction="outbound") - m0.get(created, direction="outbound") == 7
    assert m1.get(created, direction="inbound") == m0.get(created, direction="inbound")
    assert m1.get("callplane_media_sessions_total") - m0.get("callplane_media_sessions_total") == 7

    # each ended through another dialect (docs/dialects.md)
    def ok(r):
        assert r.status == 200, r
    ok(cp.request("POST", "/v1/calls/%s/end" % calls[0]["id"], None, key=cp.key))
    ok(cp.request("POST", "/v1/calls/%s/end" % calls[1]["id"], {"reason": "customer_done"},
                  key=cp.key))
    ok(cp.request("POST", "/api/v1/agents/%s/end-call" % cp.agent, {"call_sid": calls[2]["id"]},
                  key=cp.key))
    ok(cp.request("POST", "/api/v1/end-web-call/%s" % calls[3]["id"], None, key=cp.key))
    ok(cp.request("POST", "/agents/calls/%s/cancel" % calls[4]["id"], None, key=cp.key,
                  headers={"Cartesia-Version": CARTESIA_VERSION}))
    ok(cp.request("POST", "/v1/calls/%s/terminate" % calls[5]["id"], None, key=number_key,
                  header_style="x-api-key"))
    # a second end finds the call ended: nothing more is counted
    assert cp.request("POST", "/v1/calls/%s/end" % calls[0]["id"], None, key=cp.key).status == 409
    m2 = scrape(cp)

    def delta(name, **labels):
        return m2.get(name, **labels) - m0.get(name, **labels)

    end = "callplane_calls_ended_total"
    assert delta(end, **ended("completed", "ended_by_api", "canonical")) == 1
    assert delta(end, **ended("completed", "other", "canonical")) == 1
    assert delta(end, **ended("completed", "ended_by_api", "talkover")) == 1
    assert delta(end, **ended("completed", "api_ended", "voxworks")) == 1
    assert delta(end, **ended("completed", "api_cancelled", "cartesia")) == 1
    assert delta(end, **ended("completed", "ended_by_api", "pilotstatus")) == 1
    assert delta(end, **ended("completed", "remote_hangup", "none")) == 1
    assert m2.total(end) - m0.total(end) == 7
    for s in ("queued", "ringing", "in_progress"):
        assert m2.get("callplane_calls_active", status=s) == 0
    # six API ends put six BYEs on the wire; each answered 200 (the 409 is not an end)
    assert delta("callplane_end_to_wire_seconds_count") == 6
    assert delta("callplane_end_request_seconds_count") == 6
    resp = "callplane_sip_responses_total"
    assert delta(resp, **sip_resp("received", "BYE", 200)) == 6
    assert delta(resp, **sip_resp("received", "INVITE", 180)) == 6     # far_bye sends none
    assert delta(resp, **sip_resp("received", "INVITE", 200)) == 7
    assert delta(resp, **sip_resp("sent", "BYE", 200)) == 1           # the far end's BYE
    assert m2.total(resp, direction="sent", method="INVITE") == m0.total(resp, direction="sent",
                                                                         method="INVITE")
    assert delta("callplane_store_commit_seconds_count", kind="group") > 0
    # media: every call's stream ended, so what was sent is accounted
    assert delta("callplane_rtp_packets_sent_total") > 0

    # a rate limit of 1 request/s: refused requests are counted by their dialect
    refused = 0
    for _ in range(10):
        r = cp.request("GET", "/v1/calls", key=limited)
        assert r.status in (200, 429), r
        refused += r.status == 429
        if refused == 2:
            break
    assert refused == 2
    m3 = scrape(cp)
    rl = "callplane_http_rate_limited_total"
    assert m3.get(rl, dialect="canonical") - m0.get(rl, dialect="canonical") == refused
    assert m3.get(rl, dialect="talkover") == m0.get(rl, dialect="talkover")

    # the event stream goes away; the next event it is woken for finds it gone
    stream.close()

    # two webhooks that fail: one answers 500, one refuses the connection
    rcv = Receiver(default=500).start()
    try:
        for url in (rcv.url, "http://127.0.0.1:%d/hook" % closed_port()):
            r = cp.request("POST", "/v1/webhooks", {"url": url}, key=cp.key)
            assert r.status == 201, r
        last = answered(sip, answer)                      # call.ringing, call.answered
        assert cp.request("POST", "/v1/calls/%s/end" % last["id"], None, key=cp.key).status == 200
        att = "callplane_webhook_attempts_total"

        def attempted():
            m = scrape(cp, check=False)
            done = (m.get(att, outcome="rejected") - m0.get(att, outcome="rejected") == 3 and
                    m.get(att, outcome="unreachable") - m0.get(att, outcome="unreachable") == 3 and
                    m.get("callplane_webhook_attempts_in_flight") == 0)
            return m if done else None

        m4 = wait_for(attempted, 30)
        assert m4, "3 rejected and 3 unreachable attempts expected:\n%s" % scrape(cp).text
        # ringing, answered, ended: one attempt each at the receiver, none delivered
        assert len(rcv.requests) == 3, rcv.requests
        assert m4.get(att, outcome="delivered") == m0.get(att, outcome="delivered")
        # the backlog: six deliveries wait for their retry, none due now, none given up
        assert m4.get("callplane_webhook_deliveries_pending") == 6
        assert m4.get("callplane_webhook_deliveries_due") == 0
        given_up = "callplane_webhook_deliveries_given_up_total"
        assert m4.get(given_up) == m0.get(given_up)
    finally:
        rcv.stop()

    # woken by the events since, the closed stream has noticed (bounded by its 15 s keepalive)
    gone = wait_for(lambda: scrape(cp, check=False).get("callplane_sse_clients") == 0, 30)
    assert gone, scrape(cp).text
    final = scrape(cp)
    assert final.get("callplane_end_request_seconds_count") - \
        m0.get("callplane_end_request_seconds_count") == 7
    sipp_done(answer)
    sipp_done(far_bye)


def test_metrics_sip_responses_sent(sip):
    cp = sip.cp
    sip.start()
    m0 = scrape(cp)
    caller = sip.uac("uac_invite_answered.xml", service=NUMBER)
    data = wait_for(lambda: [c for c in cp.list_calls()["data"] if c["status"] == "in_progress"], 8)
    assert data, sip.diagnostics()
    assert wait_for(lambda: caller.sent("ACK"), 4), caller.report()
    cp.end_call(data[0]["id"])
    sipp_done(caller)
    unknown = sip.uac("uac_invite_expect_404.xml", service="+15559998888")
    sipp_done(unknown)
    m1 = scrape(cp)

    def delta(name, **labels):
        return m1.get(name, **labels) - m0.get(name, **labels)

    resp = "callplane_sip_responses_total"
    assert delta(resp, **sip_resp("sent", "INVITE", 200)) == 1
    assert delta(resp, **sip_resp("sent", "INVITE", 404)) == 1
    assert delta(resp, **sip_resp("received", "BYE", 200)) == 1
    assert delta("callplane_calls_created_total", direction="inbound") == 1
    assert delta("callplane_calls_ended_total", **ended("completed", "ended_by_api", "canonical")) == 1
    assert delta("callplane_end_to_wire_seconds_count") == 1
