"""Trunks against a real carrier: Kamailio (tests/blackbox/kamailio/carrier.cfg) as registrar
and as a proxy that challenges callplane's INVITEs, sipp as the far ends behind it
(docs/CARRIERS.md).

Each test starts Kamailio on a free loopback port, with the subscriber `trunkuser` / `s3cret`
in its db_text table, then callplane with a stored trunk pointing at it (the password in an
environment variable of the server's), and sipp where a far end is needed. What each side
received is read from sipp's traces and Kamailio's request log; every wait is bounded.
"""

import json

import pytest

from cp import ACTIVE_STATUSES
from kamailio_peer import Kamailio
from sipp_peer import SERVER_SIP_PORTS, Sipp, free_port, wait_for, wait_for_call

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
        self.cp.start(extra_args=["--sip", "127.0.0.1:%d" % self.sip_port, "--ring-timeout", "10"]
                      + list(extra))

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
