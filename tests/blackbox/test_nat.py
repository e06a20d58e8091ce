"""Black-box NAT test: callplane behind a 1:1 NAT, far ends outside it (docs/CARRIERS.md, "NAT").

The test builds the network itself, in two network namespaces of its own (root, `ip netns`,
veth pairs, iptables in the router's namespace):

    callplane ns  10.203.0.2 --veth-- 10.203.0.1  router ns  198.51.100.1 --veth-- 198.51.100.2
                                                  + 198.51.100.10            (this namespace:
                                   DNAT 198.51.100.10 -> 10.203.0.2           pytest, sipp,
                                   SNAT 10.203.0.2 -> 198.51.100.10           the RTP socket)

callplane binds its private address (--sip 10.203.0.2:PORT, --http 10.203.0.2:PORT) and is
told its public one (--sip-advertise 198.51.100.10 --rtp-advertise 198.51.100.10); the test,
sipp and the test's RTP socket are outside, on 198.51.100.2, and reach it (the API too) only
through the NAT. Asserted exactly, from what sipp logged: the Via of every request callplane
sends (INVITE, ACK, BYE) names 198.51.100.10:PORT with rport (RFC 3581), every Contact it sends
(INVITE, 200 to an INVITE, 200 to a re-INVITE) is <sip:callplane@198.51.100.10:PORT>, every
SDP's o= and c= carry 198.51.100.10; the audio flows both ways (packets from callplane arrive
from 198.51.100.10 at the SDP's port; the packets the test sends to that address reach
callplane: its received-packet counter moves by exactly that many); and callplane's BYE reaches
the far end. Skipped (with the reason) where namespaces or iptables' NAT are not available.

Run alone (root): `CALLPLANE_BIN=build/asan/callplane /usr/bin/python3 -m pytest -q
tests/blackbox/test_nat.py`.
"""

import os
import re
import socket
import struct
import time

import pytest

from netns import Routed, Unavailable, built
from sipp_peer import Sipp, free_port, wait_for, wait_for_call
from test_tls import openssl, pki  # noqa: F401  (pki: a fixture)
from tls_sip_peer import TlsUas

PUBLIC = "198.51.100.10"       # callplane's address as the outside sees it
OUTSIDE = "198.51.100.2"       # the test's (and sipp's) address
PRIVATE = "10.203.0.2"         # callplane's own address
NUMBER = "+15550001111"
PACKETS = 25                   # RTP packets the test sends to callplane


class Nat(Routed):
    """The two namespaces (netns.Routed) and the router's NAT."""

    def __init__(self):
        super().__init__("cpnat", "cpn", inner=PRIVATE + "/24", gateway="10.203.0.1",
                         router_in="10.203.0.1/24", router_out=["198.51.100.1/24", PUBLIC + "/32"],
                         outside=OUTSIDE + "/24")

    def create(self):
        super().create()
        self.on(self.router, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", PUBLIC, "-j",
                "DNAT", "--to-destination", PRIVATE)
        self.on(self.router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", PRIVATE, "-j",
                "SNAT", "--to-source", PUBLIC)


@pytest.fixture(scope="module")
def nat():
    # one NAT at a time on this host: the outside address lives in this namespace
    try:
        with built(Nat(), "/tmp/callplane-test-nat.lock") as n:
            yield n
    except Unavailable as e:
        pytest.skip("no NAT between network namespaces here: %s" % e)


@pytest.fixture
def natcp(cp, nat):
    """callplane in the inner namespace, reached through the NAT."""
    cp.setup_world(number=NUMBER)
    cp.argv_prefix = ["ip", "netns", "exec", nat.inner]
    cp.http_bind = PRIVATE
    cp.http_host = PUBLIC
    cp.sip_port = free_port(udp=True, tcp=True)
    cp.start(extra_args=["--sip", "%s:%d" % (PRIVATE, cp.sip_port), "--sip-advertise", PUBLIC,
                         "--rtp-advertise", PUBLIC, "--rtp-ports", "30000-30100"])
    return cp


def rtp_packet(seq):
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x4E415454) + bytes([0xFF]) * 160


def rtp_received(cp):
    r = cp.request("GET", "/metrics")
    assert r.status == 200, r
    text = r.raw.decode()
    m = re.search(r"^callplane_rtp_packets_received_total (\d+)$", text, re.M)
    assert m, "no callplane_rtp_packets_received_total in /metrics"
    return int(m.group(1))


def exchange_audio(cp, sock):
    """Waits for callplane's RTP (from the public address), sends PACKETS back to where it
    came from, and asserts callplane counted exactly those. Returns callplane's RTP port."""
    sock.settimeout(5.0)
    data, src = sock.recvfrom(2048)
    assert src[0] == PUBLIC, "RTP from %r, not from the public address" % (src,)
    assert len(data) == 12 + 160 and data[0] == 0x80 and data[1] & 0x7F == 0, data[:12]
    before = rtp_received(cp)
    for seq in range(1, PACKETS + 1):
        sock.sendto(rtp_packet(seq), src)
        time.sleep(0.02)
    wait_for(lambda: rtp_received(cp) - before == PACKETS, 5, what="callplane counts %d "
             "RTP packets (counted %d)" % (PACKETS, rtp_received(cp) - before))
    return src[1]


def assert_sdp(body, port):
    lines = body.replace("\r\n", "\n").split("\n")
    assert [ln for ln in lines if ln.startswith("c=")] == ["c=IN IP4 " + PUBLIC], body
    o = [ln for ln in lines if ln.startswith("o=")]
    assert len(o) == 1 and o[0].endswith(" IN IP4 " + PUBLIC), body
    assert [ln.split()[1] for ln in lines if ln.startswith("m=audio")] == [str(port)], body


def assert_via(msg, sip_port, transport="UDP"):
    """One Via, naming the public address and port; over UDP with rport (over TLS the
    answers come back on the connection, and nta asks for no rport there)."""
    via = msg.header_all("via")
    assert len(via) == 1, msg.text
    m = re.match(r"^SIP/2\.0/%s ([^;]+)((?:;[^;]+)*)$" % transport, via[0])
    assert m and m.group(1) == "%s:%d" % (PUBLIC, sip_port), via[0]
    params = m.group(2).split(";")[1:]
    assert ("rport" in params) == (transport == "UDP"), via[0]


def test_outbound_call_behind_nat(natcp, peers, tmp_path):
    cp = natcp
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((OUTSIDE, 0))
    try:
        far = Sipp(tmp_path, "uas_nat_answer_wait_bye.xml", local_ip=OUTSIDE, timeout=30,
                   keys={"rtp_port": sock.getsockname()[1]})
        peers.append(far)
        far.start()
        call = cp.create_call(to="sip:bob@%s:%d" % (OUTSIDE, far.port))
        wait_for_call(lambda i: cp.request("GET", "/v1/calls/" + i, key=cp.key)[2], call["id"],
                      lambda c: c["status"] == "in_progress", 10, "the call is answered",
                      lambda: cp.stderr_text())
        port = exchange_audio(cp, sock)
        st, _h, _b = cp.request("POST", "/v1/calls/%s/end" % call["id"], key=cp.key, body={})
        assert st == 200
        assert far.wait(15) == 0, far.report()
    finally:
        sock.close()
    invite, = far.received("INVITE")
    assert invite.header("contact") == "<sip:callplane@%s:%d>" % (PUBLIC, cp.sip_port)
    assert_via(invite, cp.sip_port)
    assert_sdp(invite.body, port)
    for method in ("ACK", "BYE"):
        msgs = far.received(method)
        assert len(msgs) == 1, (method, far.messages())
        assert_via(msgs[0], cp.sip_port)
    assert re.match(r"^sip:bob@%s:%d(;|$)" % (re.escape(OUTSIDE), far.port),
                    far.received("BYE")[0].first_line.split()[1])


def test_inbound_call_behind_nat(natcp, peers, tmp_path):
    cp = natcp
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((OUTSIDE, 0))
    try:
        far = Sipp(tmp_path, "uac_nat_reinvite.xml", local_ip=OUTSIDE, timeout=30,
                   remote="%s:%d" % (PUBLIC, cp.sip_port), service=NUMBER, pause_ms=300,
                   keys={"rtp_port": sock.getsockname()[1]})
        peers.append(far)
        far.start()
        calls = []

        def answered():
            st, _h, body = cp.request("GET", "/v1/calls?status=in_progress", key=cp.key)
            calls[:] = body["data"] if st == 200 else []
            return len(calls) == 1
        wait_for(answered, 10, what="the inbound call is answered")
        port = exchange_audio(cp, sock)
        # the re-INVITE (after -d 300 ms) has been answered once sipp sent its ACK
        wait_for(lambda: len(far.sent("ACK")) == 2, 10, what="the re-INVITE is answered")
        st, _h, _b = cp.request("POST", "/v1/calls/%s/end" % calls[0]["id"], key=cp.key,
                                body={})
        assert st == 200
        assert far.wait(15) == 0, far.report()
    finally:
        sock.close()
    oks = [m for m in far.received(status=200) if m.cseq[1] == "INVITE"]
    assert sorted(set(m.cseq[0] for m in oks)) == [1, 2], far.messages()
    for ok in oks:
        assert ok.header("contact") == "<sip:callplane@%s:%d>" % (PUBLIC, cp.sip_port), ok.text
        assert_sdp(ok.body, port)
    bye, = far.received("BYE")
    assert_via(bye, cp.sip_port)


def test_register_behind_nat(natcp, peers, tmp_path):
    """A trunk's REGISTER (and its removal at shutdown) names the public address in Via (with
    rport) and Contact."""
    cp = natcp
    # the registrar sees us where we say we are: no sip_nat_detected
    registrar = Sipp(tmp_path, "uas_nat_registrar_rport.xml", local_ip=OUTSIDE, timeout=30,
                     keys={"received": PUBLIC, "rport": cp.sip_port})
    peers.append(registrar)
    registrar.start()
    cp.cli("trunk", "create", "--tenant", cp.tenant, "--host", registrar.uri_host, "--user",
           "natuser", "--password-env", "CP_NAT_PASSWORD", "--register")
    assert wait_for(lambda: [e for e in cp.log_events("sip_registration")
                             if e["status"] == "registered"], 15), cp.stderr_text()
    cp.stop()
    assert registrar.wait(15) == 0, registrar.report()
    regs = registrar.received("REGISTER")
    assert len(regs) == 2, registrar.messages()
    assert [r.header("expires") for r in regs] == ["3600", "0"], registrar.messages()
    assert cp.log_events("sip_nat_detected") == []
    for reg in regs:
        assert_via(reg, cp.sip_port)
        assert reg.header("contact") == "<sip:natuser@%s:%d>" % (PUBLIC, cp.sip_port), reg.text


def test_register_nat_detected(cp, nat, peers, tmp_path, monkeypatch):
    """Behind the NAT without --sip-advertise, the registrar's received/rport (RFC 3581) tell
    callplane it is not where its Contact says: it says so once, with the address to give."""
    cp.setup_world(number=NUMBER)
    cp.argv_prefix = ["ip", "netns", "exec", nat.inner]
    cp.http_bind = PRIVATE
    cp.http_host = PUBLIC
    sip_port = free_port(udp=True, tcp=True)
    monkeypatch.setenv("CP_NAT_PASSWORD", "secret")
    cp.start(extra_args=["--sip", "%s:%d" % (PRIVATE, sip_port)])
    registrar = Sipp(tmp_path, "uas_nat_registrar_rport.xml", local_ip=OUTSIDE, timeout=30,
                     keys={"received": PUBLIC, "rport": sip_port})
    peers.append(registrar)
    registrar.start()
    trunk = cp.cli("trunk", "create", "--tenant", cp.tenant, "--host", registrar.uri_host,
                   "--user", "natuser", "--password-env", "CP_NAT_PASSWORD", "--register")["id"]
    assert wait_for(lambda: [e for e in cp.log_events("sip_registration")
                             if e["status"] == "registered"], 15), cp.stderr_text()
    cp.stop()
    assert registrar.wait(15) == 0, registrar.report()
    ev, = cp.log_events("sip_nat_detected")
    assert (ev["trunk_id"], ev["received"], ev["rport"], ev["contact_port"]) == \
        (trunk, PUBLIC, str(sip_port), sip_port), ev
    reg = registrar.received("REGISTER")[0]
    assert reg.header("contact") == "<sip:natuser@%s:%d>" % (PRIVATE, sip_port), reg.text


def test_tls_call_behind_nat(cp, nat, pki, monkeypatch):  # noqa: F811
    """--sip-advertise holds for the TLS listener too (--sip-tls on the private address): a
    call out over TLS to a far end outside names the public address, with the TLS port, in
    the Via of its INVITE, ACK and BYE and in its Contact; its SDP carries the
    public address. The far end's certificate names its address outside, signed by the test's
    CA."""
    # sofia-sip leaves a TLS connection's SSL objects at nua_destroy (tests/lsan.supp)
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":fast_unwind_on_malloc=0")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "outside.key", "-out", "outside.csr", "-subj", "/CN=" + OUTSIDE, cwd=pki)
    with open(os.path.join(pki, "outside.cnf"), "w") as f:
        f.write("subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n" % OUTSIDE)
    openssl("x509", "-req", "-in", "outside.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "outside.pem", "-days", "2", "-extfile", "outside.cnf",
            cwd=pki)
    uas = TlsUas(os.path.join(pki, "outside.pem"), os.path.join(pki, "outside.key"),
                 host=OUTSIDE)
    try:
        cp.setup_world(number=NUMBER)
        cp.argv_prefix = ["ip", "netns", "exec", nat.inner]
        cp.http_bind = PRIVATE
        cp.http_host = PUBLIC
        sip_port = free_port(udp=True, tcp=True)
        tls_port = free_port(udp=False, tcp=True)
        cp.start(extra_args=["--sip", "%s:%d" % (PRIVATE, sip_port), "--sip-tls",
                             "%s:%d" % (PRIVATE, tls_port), "--sip-tls-ca",
                             os.path.join(pki, "ca.pem"), "--sip-advertise", PUBLIC,
                             "--rtp-advertise", PUBLIC, "--rtp-ports", "30000-30100"])
        call = cp.create_call(to="sip:uas@%s:%d;transport=tls" % (OUTSIDE, uas.port))
        wait_for_call(lambda i: cp.request("GET", "/v1/calls/" + i, key=cp.key)[2], call["id"],
                      lambda c: c["status"] == "in_progress", 10, "the call is answered",
                      lambda: cp.stderr_text())
        st, _h, _b = cp.request("POST", "/v1/calls/%s/end" % call["id"], key=cp.key, body={})
        assert st == 200
        [bye] = uas.wait_for("BYE")
        [invite] = uas.received("INVITE")
        assert invite.header("contact") == "<sip:callplane@%s:%d;transport=tls>" % (
            PUBLIC, tls_port), invite.text
        body = invite.text.split("\r\n\r\n", 1)[1]
        assert [ln for ln in body.split("\r\n") if ln.startswith("c=")] == \
            ["c=IN IP4 " + PUBLIC], invite.text
        for msg in [invite] + uas.received("ACK") + [bye]:
            assert_via(msg, tls_port, transport="TLS")
        assert [r.method for r in uas.requests] == ["INVITE", "ACK", "BYE"]
        assert uas.handshake_errors == []
    finally:
        uas.stop()
