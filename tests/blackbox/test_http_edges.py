"""HTTP requests at the edges of what the server accepts (docs/API.md, "Errors"): each is
answered at once, in JSON, and changes nothing. Raw sockets where a client library would
normalise what is sent."""

import json
import socket
import time

import pytest


def raw(port, data, timeout=10):
    """Sends bytes, returns (status, headers dict (lower-case names), body bytes, closed):
    the first response, and whether the server closed the connection after it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "connection closed before a response: %r" % buf
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            assert chunk, "connection closed inside the body"
            rest += chunk
        body, extra = rest[:n], rest[n:]
        # closed: the next read sees EOF (and no second, smuggled response)
        s.settimeout(3)
        try:
            more = s.recv(65536)
        except socket.timeout:
            more = None
        closed = more == b""
        assert not extra and not more, "bytes after the response: %r" % (extra + (more or b""))
        return status, headers, body, closed
    finally:
        s.close()


def test_many_query_parameters_answered_414_at_once(cp):
    cp.setup_world()
    cp.start()
    q = "&".join("a%d=1" % i for i in range(500))
    t0 = time.monotonic()
    r = cp.request("GET", "/v1/calls?" + q, key=cp.key, timeout=10)
    assert r.status == 414, (r.status, r.raw)
    assert r.json == {"error": {"code": "uri_too_long", "message": "more than 64 query parameters"}}
    assert time.monotonic() - t0 < 10
    # 64 is still served (and an unknown parameter is ignored, as before)
    q = "&".join("a%d=1" % i for i in range(64))
    assert cp.request("GET", "/v1/calls?" + q, key=cp.key).status == 200


def test_many_query_parameters_in_a_dialect_shape(cp):
    cp.setup_world()
    cp.start()
    q = "&".join("a%d=1" % i for i in range(100))
    # Cartesia's routes answer in Cartesia's shape (docs/dialects.md)
    r = cp.request("GET", "/agents/calls?" + q, key=cp.key,
                   headers={"Cartesia-Version": "2026-03-01"})
    assert r.status == 414, (r.status, r.raw)
    assert r.json == {"error": "more than 64 query parameters"}, r.json


def test_query_value_not_utf8_is_a_json_error(cp):
    cp.setup_world()
    cp.start()
    r = cp.request("GET", "/v1/calls?status=%FF", key=cp.key)
    assert r.status == 400, (r.status, r.raw)
    assert r.json == {"error": {"code": "invalid_request", "message": 'unknown status "?"'}}, r.raw


@pytest.mark.parametrize("framing", [
    b"Content-Length: 2\r\nContent-Length: 40\r\n",
    b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
], ids=["two-lengths", "length-and-chunked"])
def test_ambiguous_body_length_refused_and_closed(cp, framing):
    cp.setup_world()
    cp.start()
    body = b"2\r\n{}\r\n0\r\n\r\n" if b"chunked" in framing else b"{}"
    req = (b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + cp.key.encode()
           + b"\r\nContent-Type: application/json\r\n" + framing + b"\r\n" + body)
    status, headers, got, closed = raw(cp.port, req)
    assert status == 400, got
    assert json.loads(got) == {"error": {"code": "invalid_request", "message": (
        "the body's length is ambiguous: conflicting Content-Length headers, or "
        "Content-Length with Transfer-Encoding")}}
    assert headers.get("connection", "").lower() == "close" and closed
    assert cp.list_calls()["data"] == []       # nothing was created
