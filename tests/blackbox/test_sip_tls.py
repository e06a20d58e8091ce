"""SIP over TLS: serve --sip-tls HOST:PORT [--sip-tls-ca FILE] and trunks with --transport tls
(docs/CARRIERS.md, "SIP over TLS").

Each test makes its own CA with the openssl command line (test_tls.py's `pki`: a CA, a server
certificate it signed for IP 127.0.0.1, a second CA that signed nothing) and a TLS far end
(tls_sip_peer.py, Python's ssl) presenting that server certificate. callplane verifies the far
end against --sip-tls-ca: with the right CA the call goes up and down over TLS; with the
other CA the handshake is refused, the far end reads no request and the call fails.
"""

import os

from cp import ACTIVE_STATUSES
from sipp_peer import SERVER_SIP_PORTS, free_port, wait_for_call
from test_tls import pki  # noqa: F401  (a fixture)
from tls_sip_peer import TlsUas

NUMBER = "+15550001111"
DEST = "+15557654321"


def start(cp, pki, ca, monkeypatch):
    # sofia-sip leaves a TLS connection's SSL objects allocated at nua_destroy; libssl has no
    # frame pointers, so only the slow unwinder reaches libsofia, which tests/lsan.supp names
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":fast_unwind_on_malloc=0")
    lo, hi = SERVER_SIP_PORTS
    sip_port = free_port(udp=True, tcp=True, lo=lo, hi=hi)
    tls_port = free_port(udp=False, tcp=True, lo=lo, hi=hi)
    cp.start(extra_args=["--sip", "127.0.0.1:%d" % sip_port, "--sip-tls",
                         "127.0.0.1:%d" % tls_port, "--sip-tls-ca", os.path.join(pki, ca),
                         "--ring-timeout", "10"])
    return sip_port, tls_port


def tls_world(cp, pki):
    cp.setup_world(number=NUMBER)
    uas = TlsUas(os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"))
    trunk = cp.cli("trunk", "create", "--tenant", cp.tenant, "--host",
                   "127.0.0.1:%d" % uas.port, "--transport", "tls")["id"]
    cp.cli("agent", "update", cp.agent, "--trunk", trunk)
    return uas


def test_call_over_tls_with_the_ca(cp, pki, monkeypatch):  # noqa: F811
    """A call through a TLS trunk: the INVITE, ACK and BYE reach the far end over TLS, the
    Request-URI says transport=tls, our Contact names our TLS listener, the BYE carries the
    end reason."""
    uas = tls_world(cp, pki)
    try:
        _sip_port, tls_port = start(cp, pki, "ca.pem", monkeypatch)
        call = cp.create_call(to=DEST)
        up = wait_for_call(cp.get_call, call["id"], lambda c: c["status"] == "in_progress", 15,
                           "in_progress", cp.stderr_text)
        assert up["sip_status"] == 200, up
        ended = cp.end_call(call["id"])
        assert ended["status"] == "completed", ended
        [bye] = uas.wait_for("BYE")
        [inv] = uas.received("INVITE")
        assert inv.first_line == "INVITE sip:%s@127.0.0.1:%d;transport=tls SIP/2.0" % (
            DEST, uas.port), inv.text
        assert inv.header("via").startswith("SIP/2.0/TLS "), inv.text
        assert inv.header("contact") == "<sip:callplane@127.0.0.1:%d;transport=tls>" % tls_port, \
            inv.text
        assert len(uas.received("ACK")) == 1
        assert bye.header("x-callplane-end-reason") == "ended_by_api", bye.text
        assert bye.header("via").startswith("SIP/2.0/TLS "), bye.text
        assert [r.method for r in uas.requests] == ["INVITE", "ACK", "BYE"]
        assert uas.handshake_errors == []
    finally:
        uas.stop()


def test_call_over_tls_with_another_ca_is_refused(cp, pki, monkeypatch):  # noqa: F811
    """The far end's certificate was signed by a CA callplane does not trust: the handshake
    completes on the far end's side, callplane checks the chain, closes the connection and
sends nothing: the far end reads no request. sofia-sip reports no transport error for the
    INVITE, so the call ends at the ring timeout (10 s here), no_answer, never up."""
    uas = tls_world(cp, pki)
    try:
        start(cp, pki, "other-ca.pem", monkeypatch)
        call = cp.create_call(to=DEST)
        done = wait_for_call(cp.get_call, call["id"],
                             lambda c: c["status"] not in ACTIVE_STATUSES, 40, "an end",
                             cp.stderr_text)
        assert (done["status"], done["end_reason"], done["answered_at"]) == \
            ("no_answer", "no_answer", None), done
        assert uas.requests == [], [r.first_line for r in uas.requests]
    finally:
        uas.stop()
