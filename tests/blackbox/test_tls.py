"""HTTPS for the API: serve --tls-cert FILE --tls-key FILE (docs/OPERATIONS.md, "TLS").

Each test makes its own certificate authority with the openssl command line (a CA, a server
certificate it signs for 127.0.0.1, a second CA that signed nothing of ours, a key that is not
the server's) and talks to the server with curl as a client would: --cacert with the right CA
works, the wrong CA is refused, plain HTTP to the TLS port gets no HTTP answer; the live event
stream (SSE) and the end route work over TLS. A wrong file stops the start: exit 1 when it
cannot be read, 2 when it is not what it must be (docs/API.md).
"""

import json
import os
import ssl
import subprocess
import time

import pytest

from cp import split_end

CURL_TIMEOUT = 20


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, "openssl %s: %s" % (" ".join(args), p.stderr.decode())


@pytest.fixture
def pki(tmp_path):
    """ca.pem/ca.key, server.pem (for IP 127.0.0.1, signed by ca) with server.key, other-ca.pem
    (a CA that signed nothing here) and other.key (a key of no certificate)."""
    d = str(tmp_path / "pki")
    os.makedirs(d)
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
                "-subj", "/CN=callplane test %s" % name,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "other.key", cwd=d)
    return d


def start_tls(cp, pki, *extra):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    cp.ssl_context = ctx
    cp.start(extra_args=["--tls-cert", os.path.join(pki, "server.pem"),
                         "--tls-key", os.path.join(pki, "server.key")] + list(extra))
    return cp


def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=CURL_TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def test_curl_with_the_ca_and_without(cp, pki):
    cp.setup_world()
    start_tls(cp, pki)
    url = "https://127.0.0.1:%d" % cp.port
    rc, out, err = curl("--cacert", os.path.join(pki, "ca.pem"), url + "/healthz")
    assert (rc, json.loads(out)) == (0, {"status": "ok"}), (rc, out, err)
    rc, out, err = curl("--cacert", os.path.join(pki, "ca.pem"), url + "/readyz")
    assert (rc, json.loads(out)) == (0, {"status": "ready", "store": "ok", "sip": "none"}), (rc, out, err)
    # another CA: the certificate is refused (curl 60: peer certificate cannot be authenticated)
    rc, out, err = curl("--cacert", os.path.join(pki, "other-ca.pem"), url + "/healthz")
    assert (rc, out) == (60, ""), (rc, out, err)
    # plain HTTP to the TLS port: no HTTP answer (52 empty reply, or 56 the connection reset)
    rc, out, err = curl("-w", "%{http_code}", "http://127.0.0.1:%d/healthz" % cp.port)
    assert rc in (52, 56) and out == "000", (rc, out, err)
    # the server is still serving
    assert cp.request("GET", "/healthz").status == 200


def test_events_and_end_over_tls(cp, pki):
    cp.setup_world()
    start_tls(cp, pki)
    url = "https://127.0.0.1:%d" % cp.port
    ca = os.path.join(pki, "ca.pem")
    auth = "Authorization: Bearer " + cp.key
    sse = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "20", "--cacert", ca, "-H", auth,
                            url + "/v1/events?last_event_id=0"],   # from the first event on
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        rc, out, err = curl("--cacert", ca, "-H", auth, "-H", "Content-Type: application/json",
                            "-d", json.dumps({"agent_id": cp.agent, "to": "sip:bob@127.0.0.1:9"}),
                            "-w", "\n%{http_code}", url + "/v1/calls")
        body, status = out.rsplit("\n", 1)
        assert (rc, status) == (0, "201"), (rc, out, err)
        call = json.loads(body)
        rc, out, err = curl("--cacert", ca, "-H", auth, "-X", "POST", "-w", "\n%{http_code}",
                            url + "/v1/calls/%s/end" % call["id"])
        body, status = out.rsplit("\n", 1)
        assert (rc, status) == (0, "200"), (rc, out, err)
        ended, goodbye_ms = split_end(json.loads(body))
        assert (ended["id"], ended["status"], ended["end_reason"], goodbye_ms) == \
            (call["id"], "canceled", "ended_by_api", 0), ended

        # the stream carries the end, in TLS records curl decrypted
        lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "event: call.ended" not in lines:
            line = sse.stdout.readline()
            if not line:
                break
            lines.append(line.decode().rstrip("\n"))
        assert "event: call.ended" in lines, (lines, sse.stderr.read1(4096) if sse.poll() is not None else b"")
        data_line = sse.stdout.readline().decode()
        assert data_line.startswith("data: "), data_line
        data = json.loads(data_line[len("data: "):])
        assert data["type"] == "call.ended" and data["data"]["id"] == call["id"], data
    finally:
        sse.kill()
        sse.wait(timeout=5)


def serve_error(cp, *args):
    return cp.cli_raw("serve", "--http", "127.0.0.1:0", "--sip", "none", *args)


def test_bad_certificate_or_key_stops_the_start(cp, pki):
    cert = os.path.join(pki, "server.pem")
    key = os.path.join(pki, "server.key")
    missing = os.path.join(pki, "missing.pem")
    rc, out, err = serve_error(cp, "--tls-cert", missing, "--tls-key", key)
    assert (rc, out) == (1, "") and \
        "error: --tls-cert %s: cannot read it: No such file or directory\n" % missing in err, (rc, err)
    rc, out, err = serve_error(cp, "--tls-cert", cert, "--tls-key", pki)     # a directory
    assert (rc, out) == (1, "") and \
        "error: --tls-key %s: cannot read it: Is a directory\n" % pki in err, (rc, err)
    other = os.path.join(pki, "other.key")
    rc, out, err = serve_error(cp, "--tls-cert", cert, "--tls-key", other)
    assert (rc, out) == (2, "") and ("error: --tls-key %s is not the key of the certificate in "
                                     "--tls-cert %s (" % (other, cert)) in err, (rc, err)
    rc, out, err = serve_error(cp, "--tls-cert", key, "--tls-key", key)      # a key, no certificate
    assert (rc, out) == (2, "") and "error: --tls-cert %s holds no PEM certificate (" % key in err, (rc, err)
    rc, out, err = serve_error(cp, "--tls-cert", cert, "--tls-key", cert)    # a certificate, no key
    assert (rc, out) == (2, "") and "error: --tls-key %s holds no unencrypted PEM private key (" % cert in err, (rc, err)
    rc, out, err = serve_error(cp, "--tls-cert", cert)
    assert (rc, out) == (2, "") and \
        "error: --tls-cert and --tls-key go together: give both or neither\n" in err, (rc, err)
    # nothing was started: the database was never made
    assert not os.path.exists(cp.db)


def test_tls_from_the_environment(cp, pki, monkeypatch):
    """Like every serve option, the pair may come from CALLPLANE_TLS_CERT / CALLPLANE_TLS_KEY
    (a service's EnvironmentFile)."""
    cp.setup_world()
    monkeypatch.setenv("CALLPLANE_TLS_CERT", os.path.join(pki, "server.pem"))
    monkeypatch.setenv("CALLPLANE_TLS_KEY", os.path.join(pki, "server.key"))
    cp.ssl_context = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    cp.start()
    r = cp.request("GET", "/v1/calls", key=cp.key)
    assert r.status == 200 and r.json == {"data": [], "next_cursor": None}, r
