"""SIP over TLS: serve --sip-tls HOST:PORT [--sip-tls-ca FILE] and trunks with --transport tls
(docs/CARRIERS.md, "SIP over TLS").

Each test makes its own CA with the openssl command line (test_tls.py's `pki`: a CA, a server
certificate it signed for IP 127.0.0.1, a second CA that signed nothing) and a TLS far end
presenting that server certificate: a real baresip (its TLS listener), or, where the test
reads what arrived on the wire, tls_sip_peer.py (Python's ssl). callplane verifies the far
end against --sip-tls-ca: with the right CA the call goes up and down over TLS; with the
other CA the handshake is refused, the far end reads no request and the call fails.
"""

import os

import pytest

from cp import ACTIVE_STATUSES, parse_ts
from sipp_peer import SERVER_SIP_PORTS, free_port, wait_for, wait_for_call
from test_tls import openssl, pki  # noqa: F401  (pki: a fixture)
from baresip_peer import Baresip
from tls_sip_peer import TlsUac, TlsUas
from test_crash import restart_log

NUMBER = "+15550001111"
DEST = "+15557654321"


def serve_args(pki, ca, monkeypatch, *extra):
    """serve's arguments: SIP and TLS on free ports, ca (a file of pki) trusted; and the
    ports."""
    # sofia-sip leaves a TLS connection's SSL objects allocated at nua_destroy; libssl has no
    # frame pointers, so only the slow unwinder reaches libsofia, which tests/lsan.supp names
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":fast_unwind_on_malloc=0")
    lo, hi = SERVER_SIP_PORTS
    sip_port = free_port(udp=True, tcp=True, lo=lo, hi=hi)
    tls_port = free_port(udp=False, tcp=True, lo=lo, hi=hi)
    return ["--sip", "127.0.0.1:%d" % sip_port, "--sip-tls", "127.0.0.1:%d" % tls_port,
            "--sip-tls-ca", os.path.join(pki, ca), "--ring-timeout", "10", *extra], \
        sip_port, tls_port


def start(cp, pki, ca, monkeypatch, *extra):
    args, sip_port, tls_port = serve_args(pki, ca, monkeypatch, *extra)
    cp.start(extra_args=args)
    return sip_port, tls_port


def unreachable(cp, call_id):
    """The call fails unanswered, unreachable with sofia's own 503 (the TLS connection closed
    for a refused certificate fails the INVITE at once), well before the ring timeout (10 s),
    and the log says why, over TLS."""
    done = wait_for_call(cp.get_call, call_id, lambda c: c["status"] not in ACTIVE_STATUSES, 40,
                         "an end", cp.stderr_text)
    assert (done["status"], done["end_reason"], done["sip_status"], done["answered_at"]) == \
        ("failed", "unreachable", 503, None), done
    took = parse_ts(done["ended_at"]) - parse_ts(done["created_at"])
    assert took.total_seconds() < 5, "ended %s after it was created, not at once" % took
    [line] = cp.log_events("sip_unreachable")
    assert (line["call_id"], line["tls"], line["why"]) == \
        (call_id, True, "Service Unavailable"), line


def refused_call(cp, uas):
    """A call through the world's TLS trunk to uas, whose certificate callplane refuses:
    callplane connects, sends no request, and the call fails unreachable."""
    call = cp.create_call(to=DEST)
    unreachable(cp, call["id"])
    assert uas.connections >= 1, "callplane never connected"
    assert uas.requests == [], [r.first_line for r in uas.requests]


def tls_world(cp, pki, cert="server", **kw):
    """The world, a TlsUas presenting pki's CERT.pem (kw: TlsUas's), and the agent's TLS
    trunk to it."""
    cp.setup_world(number=NUMBER)
    uas = TlsUas(os.path.join(pki, cert + ".pem"), os.path.join(pki, cert + ".key"), **kw)
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
    sends nothing: the far end reads no request, and the call fails at once, unreachable."""
    uas = tls_world(cp, pki)
    try:
        start(cp, pki, "other-ca.pem", monkeypatch)
        refused_call(cp, uas)
    finally:
        uas.stop()


def call_in_and_hang_up(cp, uac, uri, tls_port):
    """An INVITE to uri for NUMBER (in To) over uac's connection: the 200's Contact names our
    TLS listener; the ACK, then the caller's BYE on the same connection; the call is recorded
    inbound, ended by the far end."""
    sdp = ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    common = ("Via: SIP/2.0/TLS 127.0.0.1:%d;branch=z9hG4bK-tls-%%s\r\n"
              "Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=c1\r\n"
              "To: <sip:%s@127.0.0.1>%%s\r\nCall-ID: tls-in-1@127.0.0.1\r\n"
              % (uac.local_port, NUMBER))
    uac.send("INVITE %s SIP/2.0\r\n" % uri + common % ("1", "") +
             "CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:%d;transport=tls>\r\n"
             "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
             % (uac.local_port, len(sdp), sdp))
    ok = uac.final_response()
    assert ok.first_line == "SIP/2.0 200 OK", ok.text
    assert ok.header("contact") == "<sip:callplane@127.0.0.1:%d;transport=tls>" % tls_port, \
        ok.text
    to_tag = ok.header("to")[ok.header("to").index(";tag="):]
    uac.send("ACK %s SIP/2.0\r\n" % uri + common % ("2", to_tag) +
             "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    [call] = wait_for(lambda: [c for c in cp.list_calls()["data"]
                               if c["status"] == "in_progress"], 10, interval=0.05)
    uac.send("BYE %s SIP/2.0\r\n" % uri + common % ("3", to_tag) +
             "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    bye_ok = uac.final_response()
    assert (bye_ok.first_line, bye_ok.header("cseq")) == ("SIP/2.0 200 OK", "2 BYE"), bye_ok.text
    done = wait_for_call(cp.get_call, call["id"], lambda c: c["status"] == "completed", 10,
                         "completed", cp.stderr_text)
    assert (done["direction"], done["end_reason"]) == ("inbound", "remote_hangup"), done


def with_our_certificate(pki):
    return ("--sip-tls-cert", os.path.join(pki, "server.pem"),
            "--sip-tls-key", os.path.join(pki, "server.key"))


def test_call_in_over_tls(cp, pki, monkeypatch):  # noqa: F811
    """A caller reaches our TLS listener (--sip-tls-cert/--sip-tls-key, verified against the
    test's CA) and calls the agent's number: answered with our TLS Contact, ACK and BYE on
    that connection."""
    cp.setup_world(number=NUMBER)
    _sip, tls_port = start(cp, pki, "ca.pem", monkeypatch, *with_our_certificate(pki))
    uac = TlsUac(tls_port, os.path.join(pki, "ca.pem"))
    try:
        call_in_and_hang_up(cp, uac, "sip:%s@127.0.0.1:%d;transport=tls" % (NUMBER, tls_port),
                            tls_port)
    finally:
        uac.close()


def test_register_over_tls_and_a_call_in_on_it(cp, pki, monkeypatch):  # noqa: F811
    """A TLS trunk with --register: the REGISTER goes over TLS to the registrar with our TLS
    Contact; the registrar's call to that contact (the number only in To) comes in over TLS
    and is answered; a stopping server un-REGISTERs over TLS."""
    monkeypatch.setenv("CP_TEST_TLS_PASSWORD", "s3cret")
    cp.setup_world(number=NUMBER)
    registrar = TlsUas(os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"))
    try:
        trunk = cp.cli("trunk", "create", "--tenant", cp.tenant, "--host",
                       "127.0.0.1:%d" % registrar.port, "--transport", "tls", "--user",
                       "trunkuser", "--password-env", "CP_TEST_TLS_PASSWORD", "--register")["id"]
        _sip, tls_port = start(cp, pki, "ca.pem", monkeypatch, *with_our_certificate(pki))
        [reg] = registrar.wait_for("REGISTER")
        assert reg.first_line == "REGISTER sip:127.0.0.1:%d;transport=tls SIP/2.0" % \
            registrar.port, reg.text
        assert reg.header("via").startswith("SIP/2.0/TLS "), reg.text
        assert reg.header("contact") == "<sip:trunkuser@127.0.0.1:%d;transport=tls>" % \
            tls_port, reg.text
        # the row reads "registering" from the REGISTER's sending until its 200 is handled
        def reg_state():
            return {t["id"]: t for t in cp.cli("trunk", "list")["data"]}[trunk]["registration"]

        wait_for(lambda: (reg_state() or {}).get("status") == "registered", 10, interval=0.1)
        status = reg_state()
        assert status and status["status"] == "registered", status
        uac = TlsUac(tls_port, os.path.join(pki, "ca.pem"))
        try:
            call_in_and_hang_up(cp, uac, "sip:trunkuser@127.0.0.1:%d;transport=tls" % tls_port,
                                tls_port)
        finally:
            uac.close()
        cp.stop()
        regs = registrar.received("REGISTER")
        assert [r.header("expires") for r in regs] == ["3600", "0"], [r.text for r in regs]
    finally:
        registrar.stop()


def test_bad_tls_files_stop_the_start(cp, pki, monkeypatch):  # noqa: F811
    """A TLS file that cannot be read exits 1, one that does not hold what it must exits 2,
    each naming the option and the file, before anything listens; the options come from the
    environment as well."""
    cert, key = os.path.join(pki, "server.pem"), os.path.join(pki, "server.key")
    missing = os.path.join(pki, "missing.pem")

    def serve(*args):
        return cp.cli_raw("serve", "--http", "127.0.0.1:0", "--sip", "127.0.0.1:0",
                          "--sip-tls", "127.0.0.1:0" if args[:1] == ("x",) else "127.0.0.1:1",
                          *[a for a in args if a != "x"])

    rc, out, err = serve("--sip-tls-ca", missing)
    assert (rc, out) == (1, "") and \
        "error: --sip-tls-ca %s: cannot read it: No such file or directory\n" % missing in err, err
    rc, out, err = serve("--sip-tls-cert", missing, "--sip-tls-key", key)
    assert (rc, out) == (1, "") and \
        "error: --sip-tls-cert %s: cannot read it: No such file or directory\n" % missing in err, err
    rc, out, err = serve("--sip-tls-cert", cert, "--sip-tls-key", os.path.join(pki, "other.key"))
    assert (rc, out) == (2, "") and "error: --sip-tls-key %s is not the key of the certificate" \
        " in %s\n" % (os.path.join(pki, "other.key"), cert) in err, err
    rc, out, err = serve("--sip-tls-cert", key, "--sip-tls-key", key)
    assert (rc, out) == (2, "") and \
        "error: --sip-tls-cert %s holds no PEM certificate\n" % key in err, err
    rc, out, err = serve("--sip-tls-ca", key)
    assert (rc, out) == (2, "") and \
        "error: --sip-tls-ca %s holds no PEM certificate\n" % key in err, err
    rc, out, err = serve("--sip-tls-cert", cert)
    assert (rc, out) == (2, "") and "error: --sip-tls-cert and --sip-tls-key go together: give" \
        " both or neither\n" in err, err
    rc, out, err = serve("x")
    assert (rc, out) == (2, "") and \
        "error: --sip-tls must be HOST:PORT (a port above 0), got '127.0.0.1:0'\n" in err, err
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:0", "--sip", "127.0.0.1:0",
                              "--sip-tls-ca", cert)
    assert (rc, out) == (2, "") and "error: --sip-tls-cert, --sip-tls-key and --sip-tls-ca need" \
        " --sip-tls HOST:PORT\n" in err, err
    monkeypatch.setenv("CALLPLANE_SIP_TLS", "127.0.0.1:1")
    monkeypatch.setenv("CALLPLANE_SIP_TLS_CA", missing)
    rc, out, err = cp.cli_raw("serve", "--http", "127.0.0.1:0", "--sip", "127.0.0.1:0")
    assert (rc, out) == (1, "") and \
        "error: --sip-tls-ca %s: cannot read it: No such file or directory\n" % missing in err, err


def baresip_tls(pki, tmp_path):
    """A baresip whose TLS listener presents the test's server certificate."""
    both = os.path.join(pki, "server-and-key.pem")
    with open(both, "w") as f:
        for name in ("server.pem", "server.key"):
            with open(os.path.join(pki, name)) as g:
                f.write(g.read())
    return Baresip(tmp_path, tls_certificate=both, rtp_timeout=30).start()


def test_call_to_baresip_over_tls(cp, pki, tmp_path, monkeypatch):  # noqa: F811
    """A sip: URI with transport=tls is dialled over TLS: a real baresip answers on its TLS
    listener, and the API's end reaches it as a BYE."""
    cp.setup_world(number=NUMBER)
    far = baresip_tls(pki, tmp_path)
    try:
        start(cp, pki, "ca.pem", monkeypatch)
        call = cp.create_call(to=far.tls_uri)
        wait_for_call(cp.get_call, call["id"], lambda c: c["status"] == "in_progress", 15,
                      "in_progress", lambda: cp.stderr_text() + far.report())
        far.wait_established(timeout=10)
        assert cp.end_call(call["id"])["status"] == "completed"
        far.wait_closed(timeout=10)
        assert far.bye_received(), far.report()
    finally:
        far.stop()


def test_baresip_with_another_ca_never_rings(cp, pki, tmp_path, monkeypatch):  # noqa: F811
    """The same baresip, callplane trusting another CA: baresip never sees the INVITE and the
    call fails unreachable."""
    cp.setup_world(number=NUMBER)
    far = baresip_tls(pki, tmp_path)
    try:
        start(cp, pki, "other-ca.pem", monkeypatch)
        call = cp.create_call(to=far.tls_uri)
        unreachable(cp, call["id"])
        assert far.event_list() == [], far.event_list()
    finally:
        far.stop()


def test_certificate_for_another_name_is_refused(cp, pki, monkeypatch):  # noqa: F811
    """The far end's certificate is signed by the trusted CA but names carrier.test only
    (subjectAltName and CN), while the trunk dials 127.0.0.1: the name check refuses it and
    no request reaches the far end (test_call_over_tls_with_the_ca is the same far end with a
    certificate that names 127.0.0.1)."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "named.key", "-out", "named.csr", "-subj", "/CN=carrier.test", cwd=pki)
    with open(os.path.join(pki, "named.cnf"), "w") as f:
        f.write("subjectAltName=DNS:carrier.test\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "named.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "named.pem", "-days", "2", "-extfile", "named.cnf", cwd=pki)
    uas = tls_world(cp, pki, cert="named")
    try:
        start(cp, pki, "ca.pem", monkeypatch)
        refused_call(cp, uas)
    finally:
        uas.stop()


@pytest.mark.parametrize("contact_params", [";transport=tls", ""])
def test_restart_byes_a_call_left_up_over_tls(cp, pki, monkeypatch, contact_params):  # noqa: F811
    """A call up over TLS when the server is killed (SIGKILL): the restarted server sends
    its BYE over TLS (a new connection, the far end's certificate verified again), with the
    dialog's Call-ID and tags, before it reports ready; the call is completed node_restart.
    Also when the far end's Contact names no transport: the dialog was kept as one over TLS,
    so its BYE goes over TLS to the Contact's address rather than over UDP."""
    uas = tls_world(cp, pki, contact_params=contact_params)
    try:
        args, _sip_port, _tls_port = serve_args(pki, "ca.pem", monkeypatch)
        cp.start(extra_args=args)
        call = cp.create_call(to=DEST)
        wait_for_call(cp.get_call, call["id"], lambda c: c["status"] == "in_progress", 15,
                      "in_progress", cp.stderr_text)
        [inv] = uas.received("INVITE")
        cp.kill9()
        assert uas.received("BYE") == []
        cp.start(extra_args=args)
        [bye] = uas.wait_for("BYE")
        assert bye.first_line == "BYE sip:uas@127.0.0.1:%d%s SIP/2.0" % (uas.port, contact_params), \
            bye.text
        assert bye.header("via").startswith("SIP/2.0/TLS "), bye.text
        assert bye.header("call-id") == inv.header("call-id") == call["provider_call_id"]
        assert bye.header("from") == inv.header("from"), (bye.text, inv.text)
        assert bye.header("to") == inv.header("to") + ";tag=uas1", (bye.text, inv.text)
        assert bye.header("x-callplane-end-reason") == "node_restart", bye.text
        assert uas.connections == 2 and uas.handshake_errors == []
        # serve logs ready a moment after /healthz answers
        names = wait_for(lambda: (lambda n: "ready" in n and n)(
            [name for name, _e in restart_log(cp)]), 5)
        assert names and names.index("sip_restart_hangup_result") < names.index("ready"), \
            restart_log(cp)
        [result] = cp.log_events("sip_restart_hangup_result")
        assert (result["call_id"], result["request"], result["status"], result["from_far_end"]) \
            == (call["id"], "BYE", 200, True), result
        done = cp.get_call(call["id"])
        assert (done["status"], done["end_reason"]) == ("completed", "node_restart"), done
    finally:
        uas.stop()
