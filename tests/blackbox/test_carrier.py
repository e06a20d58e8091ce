"""Trunks against a real carrier: Kamailio (tests/blackbox/kamailio/carrier.cfg) as registrar
and as a proxy that challenges callplane's INVITEs, sipp as the far ends behind it
(docs/CARRIERS.md).

Each test starts Kamailio on a free loopback port, with the subscriber `trunkuser` / `s3cret`
in its db_text table, then callplane with a stored trunk pointing at it (the password in an
environment variable of the server's), and sipp where a far end is needed. What each side
received is read from sipp's traces and Kamailio's request log; every wait is bounded.
"""

import json
import sqlite3
import time

import pytest

from cp import ACTIVE_STATUSES
from kamailio_peer import Kamailio
from sipp_peer import SERVER_SIP_PORTS, Sipp, free_port, wait_for, wait_for_call
from test_metrics import scrape

NUMBER = "+15550001111"
DEST = "+15557654321"
USER, PASSWORD = "trunkuser", "s3cret"
PW_ENV = "CP_TEST_TRUNK_PASSWORD"


class Carrier:
    """callplane (not started), a Kamailio carrier and the sipp peers of one test."""

    def __init__(self, cp, tmp_path, monkeypatch):
        self.cp = cp
        self.dir = tmp_path
        self.monkeypatch = monkeypatch
        lo, hi = SERVER_SIP_PORTS
        self.sip_port = free_port(udp=True, tcp=True, lo=lo, hi=hi)
        self.kam = None
        self.peers = []
        cp.setup_world(number=NUMBER)
        # the server reads a trunk's password from its own environment: set before it starts
        monkeypatch.setenv(PW_ENV, PASSWORD)

    def carrier(self, uas=None, **kw):
        self.kam = Kamailio(self.dir, self.sip_port, {USER: PASSWORD},
                            uas_uri="sip:%s" % uas.uri_host if uas else "sip:127.0.0.1:9", **kw)
        return self.kam.start()

    def uas(self, scenario, **kw):
        s = Sipp(self.dir, scenario, **kw)
        self.peers.append(s)
        return s.start()

    def trunk(self, *args, env=PW_ENV):
        """A trunk of the world's tenant at the carrier, its password in the variable env."""
        return self.cp.cli("trunk", "create", "--tenant", self.cp.tenant, "--host",
                           self.kam.uri_host, "--user", USER, "--password-env", env,
                           *args)["id"]

    def use_trunk(self, trunk_id):
        self.cp.cli("agent", "update", self.cp.agent, "--trunk", trunk_id)

    def start(self, *extra):
        """The server as it runs by default: INVITEs only from what a trunk admits."""
        self.cp.start(extra_args=["--sip", "127.0.0.1:%d" % self.sip_port, "--ring-timeout", "10"]
                      + list(extra), allow_any_inbound=False)

    def log_events(self, event):
        out = []
        for line in self.cp.stderr_text().splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("event") == event:
                out.append(j)
        return out

    def diagnostics(self):
        lines = [ln for ln in self.cp.stderr_text().splitlines() if '"http_request"' not in ln]
        out = ["server stderr (no http_request lines):"] + lines[-40:]
        if self.kam:
            out.append(self.kam.report())
        for p in self.peers:
            out.append(p.report())
        return "\n".join(out)

    def wait_call(self, call_id, pred, timeout, what):
        return wait_for_call(self.cp.get_call, call_id, pred, timeout, what, self.diagnostics)

    def must(self, pred, timeout, what):
        """Polls pred until it holds (returns its value) or fails naming what."""
        v = wait_for(pred, timeout, interval=0.1)
        assert v, "%s: not within %ss\n%s" % (what, timeout, self.diagnostics())
        return v

    def close(self):
        for p in self.peers:
            p.stop()
        if self.kam:
            self.kam.stop()


@pytest.fixture
def world(cp, tmp_path, monkeypatch):
    w = Carrier(cp, tmp_path, monkeypatch)
    yield w
    w.close()


# -------------------------------------------------------------------------- calls out


@pytest.mark.parametrize("via", ["host", "outbound_proxy"])
def test_call_out_through_trunk_answers_the_challenge(world, via):
    """A number the agent dials goes to its trunk: Kamailio challenges the INVITE (407) and
    checks that the From user is the authenticated one; callplane answers with the trunk's
    credentials, From as the trunk says, the caller's number in P-Asserted-Identity, the
    trunk's extra headers. With an outbound proxy the Request-URI names the carrier's domain
    (which does not resolve) and the INVITE reaches it only through the proxy. The BYE carries
    the end reason twice: RFC 3326 Reason and X-Callplane-End-Reason."""
    far = world.uas("uas_rr_answer_wait_bye.xml", timeout=30)
    kam = world.carrier(uas=far)
    args = ["--from-user", USER, "--caller-id-header", "pai", "--header", "X-Account: 42"]
    if via == "outbound_proxy":
        trunk = world.cp.cli("trunk", "create", "--tenant", world.cp.tenant, "--host",
                             "carrier.test", "--outbound-proxy", "sip:" + kam.uri_host,
                             "--user", USER, "--password-env", PW_ENV, *args)["id"]
        target = "carrier.test"
    else:
        trunk = world.trunk(*args)
        target = kam.uri_host
    world.use_trunk(trunk)
    world.start()
    call = world.cp.create_call(to=DEST)
    up = world.wait_call(call["id"], lambda c: c["status"] == "in_progress", 10, "in_progress")
    assert up["sip_status"] == 200, up
    ended = world.cp.end_call(call["id"])
    assert ended["status"] == "completed", ended
    rc = far.wait(15)
    assert rc == 0, "far end did not get its BYE\n" + world.diagnostics()

    ours = [r for r in kam.requests("INVITE") if r.src_port == world.sip_port]
    assert len(ours) == 2, "the INVITE and its authenticated retry\n" + world.diagnostics()
    assert {r.ruri for r in ours} == {"sip:%s@%s" % (DEST, target)}, ours
    assert {r.from_user for r in ours} == {USER}, ours
    [inv] = far.received("INVITE")
    assert inv.first_line == "INVITE sip:%s@%s SIP/2.0" % (DEST, target), inv.first_line
    assert inv.call_id == call["provider_call_id"], inv.text
    assert inv.header("from").startswith("<sip:%s@127.0.0.1:%d>;tag=" % (USER, world.sip_port)), inv.text
    assert inv.header("p-asserted-identity") == "<sip:%s@127.0.0.1:%d>" % (NUMBER, world.sip_port), inv.text
    assert inv.header("x-account") == "42", inv.text
    assert inv.header("proxy-authorization") is None, "the carrier consumes its credentials"
    assert PASSWORD not in inv.text
    [bye] = far.received("BYE")
    assert bye.header("reason") == 'Q.850;cause=16;text="ended_by_api"', bye.text
    assert bye.header("x-callplane-end-reason") == "ended_by_api", bye.text
    assert [r.method for r in kam.requests() if r.src_port == world.sip_port] == \
        ["INVITE", "INVITE", "ACK", "BYE"], "ACK and BYE follow the carrier's Record-Route"


def test_call_out_from_user_refused_by_carrier(world):
    """Without --from-user the From is the caller's number, which this carrier does not
    accept for the authenticated user: it challenges again, and callplane does not retry."""
    kam = world.carrier()
    world.use_trunk(world.trunk())
    world.start()
    call = world.cp.create_call(to=DEST)
    done = world.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 10, "an end")
    assert (done["status"], done["end_reason"], done["sip_status"]) == ("failed", "failed", 407), done
    ours = [r for r in kam.requests("INVITE") if r.src_port == world.sip_port]
    assert [r.from_user for r in ours] == [NUMBER, NUMBER], ours


def test_trunk_changes_reach_a_running_server(world):
    """A trunk created and given to the agent while the server runs is used within a few
    seconds (the server polls the store), with the password the server's environment holds;
    once the agent leaves it and it is deleted, a number has no route."""
    far = world.uas("uas_rr_answer_wait_bye.xml", timeout=30)
    kam = world.carrier(uas=far)
    world.start()
    assert world.log_events("sip_trunks") == []
    trunk = world.trunk("--from-user", USER)
    world.use_trunk(trunk)
    world.must(lambda: [e["trunks"] for e in world.log_events("sip_trunks")] == [1], 10,
               "the server loaded the trunk")
    call = world.cp.create_call(to=DEST)
    world.wait_call(call["id"], lambda c: c["status"] == "in_progress", 10, "in_progress")
    assert world.cp.end_call(call["id"])["status"] == "completed"
    assert far.wait(15) == 0, world.diagnostics()
    assert len([r for r in kam.requests("INVITE") if r.src_port == world.sip_port]) == 2
    # the agent leaves the trunk and the trunk goes: a number has no route any more
    world.cp.cli("agent", "update", world.cp.agent, "--no-trunk")
    world.cp.cli("trunk", "delete", trunk)
    world.must(lambda: [e["trunks"] for e in world.log_events("sip_trunks")] == [1, 0], 10,
               "the server dropped the trunk")
    call = world.cp.create_call(to=DEST)
    done = world.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 10, "an end")
    assert (done["status"], done["end_reason"]) == ("failed", "no_route"), done


# ----------------------------------------------------------------------- registration


def registration(world, trunk):
    """The trunk's registration as `trunk list` shows it (None until the server reports)."""
    return {t["id"]: t for t in world.cp.cli("trunk", "list")["data"]}[trunk]["registration"]


def registration_events(world):
    """(status, sip_status) of every trunk.registration event, in order (read from the
    outbox, where webhooks and GET /v1/events read them)."""
    db = sqlite3.connect(world.cp.db)
    try:
        rows = db.execute("SELECT payload FROM events WHERE type = 'trunk.registration'"
                          " ORDER BY seq").fetchall()
    finally:
        db.close()
    out = []
    for (payload,) in rows:
        ev = json.loads(payload)
        assert set(ev) == {"id", "type", "created_at", "data"}, ev
        assert set(ev["data"]) == {"trunk_id", "tenant_id", "status", "sip_status", "reason",
                                   "expires_at", "updated_at"}, ev
        out.append((ev["data"]["status"], ev["data"]["sip_status"]))
    return out


def test_registers_refreshes_and_unregisters(world):
    """The trunk registers with digest auth (a challenge, then the credentials), the registrar
    grants 20 s and nua refreshes before they run out; `trunk list` shows the registration
    and one trunk.registration event says it was gained (refreshes make none). A stopping
    server unregisters (Expires: 0) and reports it."""
    kam = world.carrier(max_expires=20)
    trunk = world.trunk("--register")
    world.start()
    reg = world.must(lambda: (registration(world, trunk) or {}).get("status") == "registered"
                     and registration(world, trunk), 15, "registered")
    assert reg["sip_status"] == 200 and reg["reason"] is None, reg
    first = reg["updated_at"]
    world.must(lambda: kam.saved() >= 2, 30, "a refresh within the 20 s granted")
    regs = [r for r in kam.requests("REGISTER") if r.src_port == world.sip_port]
    # the first REGISTER is challenged; later ones carry the credentials nua kept
    assert [r.auth_user for r in regs[:2]] == ["", USER], regs
    assert all(r.auth_user == USER for r in regs[2:]), regs
    assert all(r.ruri == "sip:" + kam.uri_host and r.from_user == USER for r in regs), regs
    assert all(r.expires == "3600" for r in regs), regs
    gap = regs[-1].at - regs[1].at
    assert 4 <= gap <= 20, "refreshed %.1f s after the first registration (granted 20 s)" % gap
    reg = world.must(lambda: registration(world, trunk)["updated_at"] != first
                     and registration(world, trunk), 10, "the refresh reported")
    assert reg["status"] == "registered", reg
    assert registration_events(world) == [("registered", 200)]
    m = scrape(world.cp)
    assert m.get("callplane_trunks_registered") == 1
    # the registration and its refresh (or more of them, 20 s apart)
    assert m.get("callplane_trunk_registrations_total", status="registered") >= 2
    assert m.get("callplane_trunk_registrations_total", status="failed") == 0
    world.cp.stop()
    regs = [r for r in kam.requests("REGISTER") if r.src_port == world.sip_port]
    assert regs[-1].expires == "0", "no un-REGISTER at shutdown: %r" % regs
    assert registration(world, trunk)["status"] == "unregistered"
    assert registration_events(world) == [("registered", 200)]


def test_wrong_password_fails_and_backs_off(world, monkeypatch):
    """A password the registrar refuses: the registration is reported failed (401, the
    credentials refused) once per attempt, the next attempt waits 10 s (+-20 %), the one
    after twice that: two REGISTERs (challenge, refused credentials) per attempt, never a
    loop. One trunk.registration event says it failed."""
    monkeypatch.setenv("CP_TEST_WRONG_PASSWORD", "not-" + PASSWORD)
    kam = world.carrier()
    trunk = world.trunk("--register", env="CP_TEST_WRONG_PASSWORD")
    world.start()
    reg = world.must(lambda: (registration(world, trunk) or {}).get("status") == "failed"
                     and registration(world, trunk), 15, "failed")
    assert (reg["sip_status"], reg["reason"]) == (401, "the credentials were refused"), reg
    t0 = [r for r in kam.requests("REGISTER") if r.src_port == world.sip_port][0].at
    # stay until 20 s after the first REGISTER: the third attempt is due 24 s at the soonest
    time.sleep(max(0.0, t0 + 20 - time.time()))
    regs = [r for r in kam.requests("REGISTER") if r.src_port == world.sip_port]
    offsets = [round(r.at - t0, 1) for r in regs]
    assert len(regs) == 4, "REGISTERs at %r s" % offsets
    assert [r.auth_user for r in regs] == ["", USER, "", USER], regs
    assert offsets[1] < 2 and 7.5 <= offsets[2] <= 14 and offsets[3] - offsets[2] < 2, offsets
    assert kam.saved() == 0
    assert registration(world, trunk)["status"] == "failed"
    assert registration_events(world) == [("failed", 401)]
    m = scrape(world.cp)
    assert m.get("callplane_trunk_registrations_total", status="failed") == 2   # 2 attempts
    assert m.get("callplane_trunk_registrations_total", status="registered") == 0
    assert m.get("callplane_trunks_registered") == 0


def test_missing_password_is_reported(world, monkeypatch):
    """The password's variable is not in the server's environment: the challenge cannot be
    answered, and the status says why."""
    monkeypatch.delenv("CP_TEST_UNSET", raising=False)
    kam = world.carrier()
    trunk = world.trunk("--register", env="CP_TEST_UNSET")
    world.start()
    reg = world.must(lambda: (registration(world, trunk) or {}).get("status") == "failed"
                     and registration(world, trunk), 15, "failed")
    assert (reg["sip_status"], reg["reason"]) == \
        (401, "the environment variable CP_TEST_UNSET is not set"), reg
    assert [r.auth_user for r in kam.requests("REGISTER")] == [""]
    assert [e["problem"] for e in world.log_events("trunk_password")] == \
        ["the environment variable CP_TEST_UNSET is not set"]


def test_registration_follows_trunk_changes(world):
    """A trunk with --register created while the server runs registers within seconds;
    deleted, it is unregistered (Expires: 0) at once."""
    kam = world.carrier()
    world.start()
    trunk = world.trunk("--register")
    world.must(lambda: (registration(world, trunk) or {}).get("status") == "registered", 15,
               "registered")
    world.cp.cli("trunk", "delete", trunk)
    world.must(lambda: [r.expires for r in kam.requests("REGISTER")][-1:] == ["0"], 10,
               "an un-REGISTER")
    assert world.cp.cli("trunk", "list") == {"data": []}
    time.sleep(1)    # nothing follows the removal
    assert [r.expires for r in kam.requests("REGISTER")].count("0") == 1
    assert [r.expires for r in kam.requests("REGISTER")][-1] == "0"
    statuses = [e["status"] for e in world.log_events("sip_registration")]
    assert statuses[:2] == ["registering", "registered"] and statuses[-1] == "unregistered" \
        and set(statuses[2:-1]) <= {"registered"}, statuses


# ------------------------------------------------------------------------- calls in


@pytest.mark.parametrize("mode", ["to", "ruri"])
def test_call_in_on_the_registration(world, mode):
    """A call to the agent's number reaches callplane through the carrier, on its
    registration: the Request-URI is the registered contact (the number only in To), or the
    number at the contact's host. Either way the agent's number is found, the call is the
    agent's, and callplane's BYE goes back through the carrier."""
    kam = world.carrier()
    trunk = world.trunk("--register")
    world.use_trunk(trunk)
    world.start()
    world.must(lambda: (registration(world, trunk) or {}).get("status") == "registered", 15,
               "registered")
    caller = Sipp(world.dir, "uac_via_proxy.xml", remote=kam.uri_host, service=NUMBER,
                  keys={"mode": mode}, timeout=30)
    world.peers.append(caller.start())
    calls = world.must(lambda: world.cp.list_calls()["data"], 10, "the inbound call")
    [call] = calls
    assert (call["direction"], call["agent_id"], call["from"]) == \
        ("inbound", world.cp.agent, "sip:alice@127.0.0.1:%d" % caller.port), call
    contact = "127.0.0.1:%d" % world.sip_port
    assert call["to"] == ("sip:%s@%s" % (USER, contact) if mode == "to"
                          else "sip:%s@%s" % (NUMBER, contact)), call
    world.wait_call(call["id"], lambda c: c["status"] == "in_progress", 10, "in_progress")
    assert world.cp.end_call(call["id"])["status"] == "completed"
    assert caller.wait(15) == 0, world.diagnostics()
    [bye] = caller.received("BYE")
    assert bye.header("x-callplane-end-reason") == "ended_by_api", bye.text
    ours = [r.method for r in kam.requests() if r.src_port == world.sip_port]
    assert ours.count("BYE") == 1, "the BYE follows the carrier's Record-Route: %r" % ours
    assert world.log_events("sip_inbound_refused") == []


def refused_call(world, source_ip, service=NUMBER):
    """An INVITE from source_ip straight to callplane; returns the final status it got."""
    s = Sipp(world.dir, "uac_invite_refused.xml", remote="127.0.0.1:%d" % world.sip_port,
             service=service, local_ip=source_ip, timeout=15)
    world.peers.append(s.start())
    assert s.wait(20) == 0, world.diagnostics()
    finals = [m.status for m in s.received() if m.status and m.status >= 200]
    assert len(set(finals)) == 1, finals
    return finals[0]


def test_strangers_are_refused(world):
    """By default an INVITE is taken only from a trunk's --inbound-cidr (or its
    registration's far end): from anywhere else it gets 403, and nothing is made of it: no
    call row, no webhook delivery; it is counted and logged. A source a trunk admits reaches
    that trunk's tenant's agents, and no other tenant's (404, no call either)."""
    world.carrier()
    other_tenant = world.cp.tenant_create("other")
    world.cp.agent_create(other_tenant, "theirs", number="+15550002222")
    world.cp.cli("trunk", "create", "--tenant", world.cp.tenant, "--host", "192.0.2.1",
                 "--inbound-cidr", "127.0.0.3/32,10.0.0.0/8")
    world.cp.cli("webhook", "create", "--tenant", world.cp.tenant, "--url", "http://127.0.0.1:9/h")
    world.cp.cli("webhook", "create", "--tenant", other_tenant, "--url", "http://127.0.0.1:9/h")
    world.start()
    assert refused_call(world, "127.0.0.2") == 403
    assert refused_call(world, "127.0.0.2", service="+15550002222") == 403
    assert world.cp.list_calls()["data"] == []
    [first, second] = world.log_events("sip_inbound_refused")
    assert (first["source"], first["why"], first["user"], first["refused_source"]) == \
        ("127.0.0.2", "source", NUMBER, 1), first
    assert (second["user"], second["refused_source"]) == ("+15550002222", 2), second
    m = scrape(world.cp)
    assert (m.get("callplane_sip_inbound_refused_total", why="source"),
            m.get("callplane_sip_inbound_refused_total", why="rate")) == (2, 0)
    # from inside the trunk's range: the tenant's agent answers, the other tenant's is unknown
    assert refused_call(world, "127.0.0.3", service="+15550002222") == 404
    caller = Sipp(world.dir, "uac_invite_answered.xml", remote="127.0.0.1:%d" % world.sip_port,
                  service=NUMBER, local_ip="127.0.0.3", timeout=20)
    world.peers.append(caller.start())
    [call] = world.must(lambda: world.cp.list_calls()["data"], 10, "the admitted call")
    assert call["agent_id"] == world.cp.agent and call["from"].startswith("sip:alice@127.0.0.3:")
    world.wait_call(call["id"], lambda c: c["status"] == "in_progress", 10, "in_progress")
    world.cp.end_call(call["id"])
    assert caller.wait(15) == 0, world.diagnostics()
    world.must(lambda: len(world.cp.cli("webhook", "deliveries")["data"]) == 2, 10,
               "the admitted call's deliveries")
    types = sorted(d["event_type"] for d in world.cp.cli("webhook", "deliveries")["data"])
    assert types == ["call.answered", "call.ended"], types
    assert len(world.log_events("sip_inbound_refused")) == 2


def test_invites_over_a_sources_rate_get_503(world):
    """--inbound-rate 1: a source may send 2 INVITEs at once (the burst) and one a second
    after; ten sent within a second get at most three answers of their own (here 404: no such
    number) and 503 with Retry-After for the rest, without a call."""
    world.carrier()
    world.cp.cli("trunk", "create", "--tenant", world.cp.tenant, "--host", "192.0.2.1",
                 "--inbound-cidr", "127.0.0.3")
    world.start("--inbound-rate", "1")
    s = Sipp(world.dir, "uac_invite_refused.xml", remote="127.0.0.1:%d" % world.sip_port,
             service="+15559990000", local_ip="127.0.0.3", calls=10, rate=50, timeout=20)
    world.peers.append(s.start())
    assert s.wait(25) == 0, world.diagnostics()
    finals = [m for m in s.received() if m.status and m.status >= 200]
    by_status = {}
    for m in finals:
        by_status.setdefault(m.status, set()).add(m.call_id)
    assert set(by_status) == {404, 503}, by_status
    assert 2 <= len(by_status[404]) <= 3 and len(by_status[404]) + len(by_status[503]) == 10, \
        {k: len(v) for k, v in by_status.items()}
    assert all(m.header("retry-after") == "1" for m in finals if m.status == 503)
    refused = world.log_events("sip_inbound_refused")
    assert refused and all(e["why"] == "rate" and e["source"] == "127.0.0.3" for e in refused)
    m = scrape(world.cp)
    assert (m.get("callplane_sip_inbound_refused_total", why="rate"),
            m.get("callplane_sip_inbound_refused_total", why="source")) == \
        (len(by_status[503]), 0)
    assert world.cp.list_calls()["data"] == []
