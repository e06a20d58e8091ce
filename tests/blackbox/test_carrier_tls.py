"""Kamailio as a carrier over TLS (docs/CARRIERS.md, "SIP over TLS"): its tls module
(Debian `kamailio-tls-modules`) listens next to its UDP port, presenting a certificate of the
test's CA (test_tls.py's `pki`), and callplane's trunk says `--transport tls`.

What test_carrier.py checks over UDP is checked here over TLS: the REGISTER with its digest
challenge, the un-REGISTER at shutdown, a call out challenged by the proxy and relayed to a
sipp far end (ACK and BYE along the Record-Route, back over the TLS connection), and a call in
that Kamailio relays to callplane's registered TLS contact, verifying callplane's certificate
(--sip-tls-cert) against the same CA. Then the refusals: callplane trusting another CA sends
Kamailio nothing (its registration and calls fail at once), and Kamailio trusting another CA
never delivers the call in.

Kamailio's side is configured as tests/blackbox/kamailio_peer.py writes it (a [server:default]
and a [client:default] profile, TLSv1.2+, an EC P-256 certificate); with Debian 12's
kamailio-tls-modules 5.6.3 and OpenSSL 3.0 it needs nothing else.

Every request Kamailio sees is logged with the transport it came over (Request.proto), which
the tests read.
"""

import os

import pytest

from cp import ACTIVE_STATUSES
from kamailio_peer import Kamailio
from sipp_peer import SERVER_SIP_PORTS, Sipp, free_port
from test_carrier import DEST, NUMBER, PASSWORD, PW_ENV, USER, Carrier, registration
from test_tls import openssl, pki  # noqa: F401  (pki: a fixture)


class TlsCarrier(Carrier):
    """Carrier (test_carrier.py) whose Kamailio also listens on TLS, and whose callplane
    has a TLS listener of its own (serve --sip-tls) with the test's certificate."""

    def __init__(self, cp, tmp_path, monkeypatch, pki):
        super().__init__(cp, tmp_path, monkeypatch)
        self.pki = pki
        lo, hi = SERVER_SIP_PORTS
        self.tls_port = free_port(udp=False, tcp=True, lo=lo, hi=hi)
        # sofia-sip leaves a TLS connection's SSL objects allocated at nua_destroy; libssl has
        # no frame pointers, so only the slow unwinder reaches libsofia, which lsan.supp names
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                           ":fast_unwind_on_malloc=0")

    def carrier(self, uas=None, ca="ca.pem", **kw):
        """Kamailio presenting server.pem, trusting ca (a file of pki) for the TLS servers it
        connects to."""
        tls = tuple(os.path.join(self.pki, f) for f in ("server.pem", "server.key", ca))
        self.kam = Kamailio(self.dir, self.sip_port, {USER: PASSWORD},
                            uas_uri="sip:%s" % uas.uri_host if uas else "sip:127.0.0.1:9",
                            tls=tls, **kw)
        return self.kam.start()

    def tls_trunk(self, *args):
        """The agent's trunk: to Kamailio's TLS port, registering, From the trunk's user."""
        trunk = self.cp.cli("trunk", "create", "--tenant", self.cp.tenant, "--host",
                            self.kam.tls_host, "--transport", "tls", "--user", USER,
                            "--password-env", PW_ENV, "--from-user", USER, *args)["id"]
        self.use_trunk(trunk)
        return trunk

    def start_tls(self, ca="ca.pem"):
        self.start("--sip-tls", "127.0.0.1:%d" % self.tls_port,
                   "--sip-tls-ca", os.path.join(self.pki, ca),
                   "--sip-tls-cert", os.path.join(self.pki, "server.pem"),
                   "--sip-tls-key", os.path.join(self.pki, "server.key"))

    def ours(self, method=None):
        """What Kamailio received from callplane: whatever came over TLS (callplane's UDP
        port sends nothing here)."""
        return [r for r in self.kam.requests(method)
                if r.proto == "tls" or r.src_port == self.sip_port]


@pytest.fixture
def tworld(cp, tmp_path, monkeypatch, pki):  # noqa: F811
    w = TlsCarrier(cp, tmp_path, monkeypatch, pki)
    yield w
    w.close()


def test_registers_over_tls_and_takes_a_call_in(tworld):
    """The trunk registers over TLS (challenged, then with credentials) with our TLS Contact;
    a call to the agent's number reaches Kamailio over UDP and is relayed to that contact over
    TLS, Kamailio verifying our certificate; the API's end goes back through Kamailio over
    TLS as a BYE; the stopping server un-REGISTERs over TLS."""
    w = tworld
    kam = w.carrier()
    trunk = w.tls_trunk("--register")
    w.start_tls()
    w.must(lambda: (registration(w, trunk) or {}).get("status") == "registered", 15,
           "registered")
    regs = w.ours("REGISTER")
    assert [(r.proto, r.auth_user, r.expires) for r in regs] == \
        [("tls", "", "3600"), ("tls", USER, "3600")], regs
    assert {r.ruri for r in regs} == {"sip:%s;transport=tls" % kam.tls_host}, regs
    assert kam.saved() == 1

    caller = Sipp(w.dir, "uac_via_proxy.xml", remote=kam.uri_host, service=NUMBER,
                  keys={"mode": "to"}, timeout=30)
    w.peers.append(caller.start())
    [call] = w.must(lambda: w.cp.list_calls()["data"], 10, "the inbound call")
    assert (call["direction"], call["agent_id"], call["to"]) == \
        ("inbound", w.cp.agent, "sip:%s@127.0.0.1:%d;transport=tls" % (USER, w.tls_port)), call
    w.wait_call(call["id"], lambda c: c["status"] == "in_progress", 10, "in_progress")
    assert w.cp.end_call(call["id"])["status"] == "completed"
    assert caller.wait(15) == 0, w.diagnostics()
    [bye] = caller.received("BYE")
    assert bye.header("x-callplane-end-reason") == "ended_by_api", bye.text
    assert [(r.method, r.proto) for r in w.ours() if r.method != "REGISTER"] == \
        [("BYE", "tls")], w.ours()

    w.cp.stop()
    regs = w.ours("REGISTER")
    assert (regs[-1].proto, regs[-1].expires) == ("tls", "0"), regs
    assert registration(w, trunk)["status"] == "unregistered"


def test_call_out_through_kamailio_over_tls(tworld):
    """A call to a number through the TLS trunk: Kamailio challenges the INVITE that arrives
    over TLS (407), callplane answers with the credentials on the same connection, Kamailio
    relays it to the sipp far end; the ACK and the API's BYE follow the Record-Route back over
    TLS, and the far end gets the BYE with the end reason."""
    w = tworld
    far = w.uas("uas_rr_answer_wait_bye.xml", timeout=30)
    kam = w.carrier(uas=far)
    w.tls_trunk()
    w.start_tls()
    call = w.cp.create_call(to=DEST)
    up = w.wait_call(call["id"], lambda c: c["status"] == "in_progress", 10, "in_progress")
    assert up["sip_status"] == 200, up
    assert w.cp.end_call(call["id"])["status"] == "completed"
    assert far.wait(15) == 0, "far end did not get its BYE\n" + w.diagnostics()
    ours = w.ours()
    # the BYE carries the credentials nua keeps for the dialog; the ACK of a 2xx none
    assert [(r.method, r.proto, r.auth_user) for r in ours] == \
        [("INVITE", "tls", ""), ("INVITE", "tls", USER), ("ACK", "tls", ""),
         ("BYE", "tls", USER)], ours
    assert len({r.src_port for r in ours}) == 1, "one TLS connection: %r" % ours
    assert {r.ruri for r in ours if r.method == "INVITE"} == \
        {"sip:%s@%s;transport=tls" % (DEST, kam.tls_host)}, ours
    [inv] = far.received("INVITE")
    assert inv.call_id == call["provider_call_id"], inv.text
    [bye] = far.received("BYE")
    assert bye.header("x-callplane-end-reason") == "ended_by_api", bye.text


def test_callplane_trusting_another_ca_sends_kamailio_nothing(tworld):
    """callplane trusts another CA than the one that signed Kamailio's certificate: it
    refuses each handshake, so Kamailio reads no request. The registration fails at once
    with sofia's own 503 and a reason that says the registrar could not be reached, and a
    call out through the trunk fails at once, unreachable (not at the 10 s ring timeout)."""
    w = tworld
    kam = w.carrier()
    trunk = w.tls_trunk("--register")
    w.start_tls(ca="other-ca.pem")
    reg = w.must(lambda: (registration(w, trunk) or {}).get("status") == "failed"
                 and registration(w, trunk), 5, "the registration failed")
    assert (reg["sip_status"], reg["reason"]) == \
        (503, "the registrar could not be reached (no connection, a TLS certificate refused,"
              " or a name that did not resolve)"), reg
    call = w.cp.create_call(to=DEST)
    done = w.wait_call(call["id"], lambda c: c["status"] not in ACTIVE_STATUSES, 5, "an end")
    assert (done["status"], done["end_reason"], done["sip_status"], done["answered_at"]) == \
        ("failed", "unreachable", 503, None), done
    [line] = w.log_events("sip_unreachable")
    assert (line["call_id"], line["tls"]) == (call["id"], True), line
    assert kam.requests() == [], kam.requests()


def test_kamailio_trusting_another_ca_never_delivers_the_call_in(tworld):
    """Kamailio trusts another CA than the one that signed callplane's certificate: the
    registration (callplane connecting, Kamailio's certificate fine) succeeds, but the call
    Kamailio relays to the registered TLS contact fails its check of our certificate, so
    callplane reads no INVITE and makes no call; the caller gets Kamailio's 408."""
    w = tworld
    kam = w.carrier(ca="other-ca.pem")
    trunk = w.tls_trunk("--register")
    w.start_tls()
    w.must(lambda: (registration(w, trunk) or {}).get("status") == "registered", 15,
           "registered")
    caller = Sipp(w.dir, "uac_invite_refused.xml", remote=kam.uri_host, service=NUMBER,
                  timeout=30)
    w.peers.append(caller.start())
    assert caller.wait(40) == 0, w.diagnostics()
    assert [m.status for m in caller.received() if m.status and m.status >= 200] == [408]
    assert "certificate verify failed" in kam.log(), kam.report()
    assert w.cp.list_calls()["data"] == []
    assert [r.method for r in kam.requests() if r.proto == "udp"] == ["INVITE", "ACK"]
