"""Black-box tests of webhook fairness (docs/API.md, "Webhooks"; docs/ARCHITECTURE.md, "Webhook
fairness"): one tenant's hanging receivers never delay another tenant's deliveries, SIGTERM
does not wait for deliveries (they are sent after the restart), a hanging receiver never slows
ending calls, a failing webhook's circuit opens and is probed, and the cap on webhooks per
tenant.

The hostile receiver is a `Tarpit` (receiver.py): it accepts connections and never answers.
The server runs without a SIP engine (`--sip none`): ending a queued call cancels it, which
emits `call.ended`.  Every wait is bounded.
"""

import concurrent.futures
import json
import sqlite3
import statistics
import time

from cp import assert_cli_error, assert_error, parse_ts
from receiver import HANG, Receiver, Tarpit
from test_webhooks import (SECRET, api_create, deliveries, end_queued_call, log_tail, rcv,  # noqa: F401
                           wait_deliveries, world)

CAP_MESSAGE = "the tenant has %d webhooks, the most it may have; delete one first"


def second_tenant(cp):
    """Tenant B with an agent and a tenant-scoped key: (tenant, agent, key)."""
    tb = cp.tenant_create("tenant-b")
    agent_b = cp.agent_create(tb, "agent-b", number="+15550003333")
    _kid, key_b = cp.key_create(tb)
    return tb, agent_b, key_b


def log_events(cp, event):
    """The server's JSON log lines of one event, in order."""
    out = []
    for ln in cp.stderr_text().splitlines():
        if ('"event":"%s"' % event) in ln:
            out.append(json.loads(ln))
    return out


def log_time(entry):
    return parse_ts(entry["ts"]).timestamp()


# ------------------------------------------------------------------------------ shares


def test_tarpit_tenant_does_not_delay_another_tenant(cp):
    """Tenant A has 40 webhooks on a tarpit, tenant B one on a prompt receiver: while A's
    attempts hang (the default 10 s timeout), each of B's deliveries arrives within 1 s of
    the end of its call (it used to wait for A's attempts to time out: 29.6 s)."""
    cp.setup_world()
    _tb, agent_b, key_b = second_tenant(cp)
    pit, rcv_b = Tarpit().start(), Receiver().start()
    try:
        cp.start(extra_args=["--webhooks-per-tenant", "40"])
        for i in range(40):
            api_create(cp, {"url": pit.url_for("/a%d" % i)})
        api_create(cp, {"url": rcv_b.url}, key=key_b)

        for _ in range(2):          # 80 deliveries for A, all into the tarpit
            end_queued_call(cp)
        # alone, A may take every one of the worker's 32 slots, and does
        assert pit.wait_accepted(32, 5) == 32, "tarpit took %d connections" % pit.accepted

        lat = []
        for i in range(5):
            t0 = time.monotonic()
            ended = end_queued_call(cp, key=key_b, agent=agent_b)
            got = rcv_b.wait_for(i + 1, 5, what="tenant B's delivery %d" % (i + 1))
            mine = [r for r in got if r.json["data"]["id"] == ended["id"]]
            assert len(mine) == 1 and mine[0].answered == 200, got
            lat.append(mine[0].mono - t0)
        print("tenant B delivery latency with A's tarpit holding: %s ms"
              % [round(x * 1000) for x in lat])
        assert max(lat) < 1.0, "tenant B waited %.2f s behind tenant A's tarpit (all: %r)" % (max(lat), lat)
        # A's attempts were hanging all along, and A started none beyond its slots since
        assert pit.held() == 32, "the tarpit holds %d connections" % pit.held()
        assert pit.accepted == 32, "tenant A started %d attempts" % pit.accepted
        done = wait_deliveries(cp, lambda ds: len(ds) == 5, 3, status="delivered", key=key_b)
        assert all(d["attempts"] == 1 and d["last_status"] == 200 for d in done), done
    finally:
        rcv_b.stop()
        pit.stop()


# ---------------------------------------------------------------------------- shutdown


def test_sigterm_with_a_tarpit_in_flight_then_delivered_after_restart(world):
    """SIGTERM does not wait for an attempt that hangs (the default 10 s timeout): the server
    exits within 2 s, the delivery stays pending, due at once, with no attempt counted, and
    it is delivered after the restart with the same event id."""
    cp, rcv = world, world.rcv
    rcv.hang_s = 60
    rcv.set_default(HANG)
    cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", rcv.url, "--secret", SECRET)
    cp.start()
    ended = end_queued_call(cp)
    first = rcv.wait_for(1, 5, what="the hanging attempt")[0]
    t0 = time.monotonic()
    cp.stop()                  # asserts exit code 0, no sanitizer report
    took = time.monotonic() - t0
    print("SIGTERM with an attempt hanging: exit after %.2f s" % took)
    assert took < 2.0, "SIGTERM took %.2f s with one attempt hanging" % took

    con = sqlite3.connect(cp.db, timeout=10)
    try:
        rows = con.execute("SELECT status, attempts, next_attempt_at, last_error FROM deliveries").fetchall()
    finally:
        con.close()
    now_ms = time.time() * 1000
    assert len(rows) == 1, rows
    status, attempts, next_at, last_error = rows[0]
    assert (status, attempts, last_error) == ("pending", 0, None), rows
    assert next_at <= now_ms, "the abandoned delivery is due at %d, now is %d" % (next_at, now_ms)
    assert "webhook_abandoned" in cp.stderr_text(), log_tail(cp)

    rcv.set_default(200)
    t1 = time.monotonic()
    cp.start()
    got = rcv.wait_for(2, 5, what="the delivery after the restart")
    assert got[1].event_id == first.event_id and got[1].answered == 200, got
    assert got[1].json["data"]["id"] == ended["id"], got[1]
    print("delivered %.2f s after the restart" % (got[1].mono - t1))
    done = wait_deliveries(cp, lambda ds: len(ds) == 1, 3, status="delivered")
    assert done[0]["event_id"] == first.event_id and done[0]["attempts"] == 1, done


# ------------------------------------------------------------------------ ending calls


def test_ending_calls_not_slowed_by_a_hanging_receiver(cp):
    """Fault injection: the webhook receiver hangs.  Ending calls takes about as long with 20
    webhooks on a tarpit (every attempt hanging, the worker's slots full) as without."""
    cp.setup_world()
    pit = Tarpit().start()
    try:
        cp.start()

        def end_latencies(n):
            out = []
            for _ in range(n):
                c = cp.create_call()
                t0 = time.monotonic()
                ended = cp.end_call(c["id"])
                out.append(time.monotonic() - t0)
                assert ended["status"] == "canceled", ended
            return out

        base = end_latencies(30)
        for i in range(20):
            api_create(cp, {"url": pit.url_for("/%d" % i)})
        hanging = end_latencies(30)
        assert pit.wait_accepted(32, 5) == 32 and pit.held() == 32, \
            "the tarpit should hold every slot: %d accepted, %d held" % (pit.accepted, pit.held())
        more = end_latencies(30)      # with every slot hanging
        with_pit = hanging + more
        p50_base, p50_pit = statistics.median(base), statistics.median(with_pit)
        print("end latency p50 %.1f ms (max %.1f) without, %.1f ms (max %.1f) with the tarpit"
              % (p50_base * 1000, max(base) * 1000, p50_pit * 1000, max(with_pit) * 1000))
        assert p50_pit < 3 * p50_base + 0.05, (base, with_pit)
        assert max(with_pit) < 1.0, "an end took %.2f s with the receiver hanging" % max(with_pit)
    finally:
        pit.stop()


# ------------------------------------------------------------------------------ breaker


def test_circuit_opens_after_five_failures_probes_and_closes(world):
    """Five failed attempts in a row open the webhook's circuit for --webhook-retry-initial-ms
    (2.5 s here): a new delivery is held (not attempted, no attempt counted).  Then one probe;
    it fails, so the circuit stays open twice as long; the next probe succeeds and closes it,
    and every held delivery is delivered once.

    The probe is whichever pending delivery is due first when the period ends: one of the five
    whose retries (2.5 s +-25% after each failure) the circuit held to its end, or, when all
    five retries fall after it, the delivery made while it was open."""
    cp, rcv = world, world.rcv
    rcv.set_default(500)
    hook = cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", rcv.url)
    cp.start(extra_args=["--webhook-retry-initial-ms", "2500"])
    calls = []
    for i in range(5):
        calls.append(end_queued_call(cp))
        rcv.wait_for(i + 1, 5, what="failed attempt %d" % (i + 1))
        wait_deliveries(cp, lambda ds: sum(d["attempts"] for d in ds) == i + 1, 3,
                        what="%d attempts recorded" % (i + 1))
    opened = log_events(cp, "webhook_circuit")
    assert [(e["state"], e["failures"], e["open_ms"], e["webhook_id"]) for e in opened] == \
        [("open", 5, 2500, hook["id"])], opened
    t_open = log_time(opened[0])

    # open: a new delivery waits, not attempted
    calls.append(end_queued_call(cp))
    assert rcv.quiet(1.0) == [], "attempts while the circuit is open"
    held = [d for d in deliveries(cp) if d["call_id"] == calls[-1]["id"]]
    assert len(held) == 1 and held[0]["attempts"] == 0 and held[0]["status"] == "pending", held
    assert parse_ts(held[0]["next_attempt_at"]).timestamp() >= t_open + 2.5 - 0.05, (held, t_open)

    # the first probe, when the period ends: one attempt, failed
    probe1 = rcv.wait_for(6, 4, what="the first probe")[5]
    assert probe1.t >= t_open + 2.5 - 0.05, "probe %.3f s after the circuit opened" % (probe1.t - t_open)
    assert probe1.t < t_open + 2.5 + 1.0, "probe %.3f s after the circuit opened" % (probe1.t - t_open)
    assert probe1.answered == 500
    # reopened for twice as long: nothing meanwhile; then the second probe, answered 200
    rcv.set_default(200)
    assert rcv.quiet(4.0) == [], "attempts while the circuit is open again"
    probe2 = rcv.wait_for(7, 3, what="the second probe")[6]
    gap = probe2.t - probe1.t
    assert 5.0 - 0.05 <= gap < 5.0 + 1.0, "second probe %.3f s after the first (5 s expected)" % gap
    assert probe2.answered == 200

    # closed: all six delivered, each once; the held one with a single attempt
    done = wait_deliveries(cp, lambda ds: len(ds) == 6, 5, status="delivered", what="6 delivered")
    ok = rcv.snapshot(lambda r: r.answered == 200)
    assert sorted(r.event_id for r in ok) == sorted(d["event_id"] for d in done), (ok, done)
    assert len(rcv.snapshot()) == 12, "5 failures, 1 failed probe, 6 deliveries: %r" % rcv.snapshot()
    assert sum(d["attempts"] for d in done) == 12, done
    # each delivered once: the five after their failure, the held one at once, and the probe
    # after its failed attempt too
    event_of = {d["call_id"]: d["event_id"] for d in done}
    assert {d["call_id"]: d["attempts"] for d in done} == \
        {c["id"]: (1 if c is calls[-1] else 2) + (event_of[c["id"]] == probe1.event_id)
         for c in calls}, (probe1, done)
    states = [e["state"] for e in log_events(cp, "webhook_circuit")]
    assert states == ["open", "half_open", "open", "half_open", "closed"], states


# ------------------------------------------------------------------------------- cap


def test_api_webhooks_per_tenant_cap(cp, rcv):
    cp.setup_world()
    _tb, _agent_b, key_b = second_tenant(cp)
    cp.start(extra_args=["--webhooks-per-tenant", "3"])
    made = [api_create(cp, {"url": rcv.url_for("/%d" % i)}).json["id"] for i in range(2)]
    made.append(api_create(cp, {"url": rcv.url_for("/agent"), "agent_id": cp.agent}).json["id"])
    r = api_create(cp, {"url": rcv.url_for("/4")}, expect=None)
    assert_error(r, 409, "limit_reached")
    assert r.json["error"]["message"] == CAP_MESSAGE % 3, r
    listed = cp.request("GET", "/v1/webhooks", key=cp.key).json["data"]
    assert sorted(w["id"] for w in listed) == sorted(made), listed
    # per tenant: B has its own three
    for i in range(3):
        api_create(cp, {"url": rcv.url_for("/b%d" % i)}, key=key_b)
    assert_error(api_create(cp, {"url": rcv.url_for("/b3")}, key=key_b, expect=None), 409, "limit_reached")
    # deleting one makes room for one
    r = cp.request("DELETE", "/v1/webhooks/%s" % made[0], key=cp.key)
    assert r.status == 200, r
    api_create(cp, {"url": rcv.url_for("/again")})
    assert_error(api_create(cp, {"url": rcv.url_for("/5")}, expect=None), 409, "limit_reached")


def test_api_webhooks_per_tenant_cap_under_concurrent_creation(cp, rcv):
    cp.setup_world()
    cp.start(extra_args=["--webhooks-per-tenant", "3"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        res = list(ex.map(lambda i: api_create(cp, {"url": rcv.url_for("/%d" % i)}, expect=None),
                          range(16), timeout=60))
    assert sorted(r.status for r in res) == [201] * 3 + [409] * 13, res
    for r in res:
        if r.status == 409:
            assert_error(r, 409, "limit_reached")
    assert len(cp.request("GET", "/v1/webhooks", key=cp.key).json["data"]) == 3


def test_cli_webhooks_per_tenant_cap(cp):
    cp.setup_world()
    for i in range(20):       # the default cap
        cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/%d" % i)
    assert_cli_error(cp.cli_raw("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/x"),
                     1, "error: " + CAP_MESSAGE % 20)
    assert len(cp.cli("webhook", "list", "--tenant", cp.tenant)["data"]) == 20
    cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/x",
           "--webhooks-per-tenant", "21")
    assert_cli_error(cp.cli_raw("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/y",
                                "--webhooks-per-tenant", "21"), 1, "error: " + CAP_MESSAGE % 21)
    assert_cli_error(cp.cli_raw("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/y",
                                "--webhooks-per-tenant", "0"), 2, "error: --webhooks-per-tenant must be 1..10000")
    assert len(cp.cli("webhook", "list", "--tenant", cp.tenant)["data"]) == 21


def test_serve_webhooks_per_tenant_option_is_checked(cp):
    for bad in ("0", "10001", "many"):
        rc, _out, err = cp.cli_raw("serve", "--http", "127.0.0.1:1", "--sip", "none",
                                   "--webhooks-per-tenant", bad)
        assert (rc, err.strip()) == (2, "error: --webhooks-per-tenant must be 1..10000"), (bad, rc, err)
