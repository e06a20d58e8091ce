"""Helpers for tests/blackbox/test_dialects.py (standard library only).

`DialectWorld` is one callplane (started with the SIP engine) plus two sipp far ends shared by a
whole test module: `answer` (answers every INVITE at once and waits for callplane's BYE) and
`ring` (rings and never answers; waits for callplane's CANCEL).  It also holds the tenants,
agents and keys the dialect tests need, and helpers to place calls, wait (bounded) for call
states and for what the far end received, and to send HTTP requests exactly as a vendor's client
would (raw http.client without any added header, the real `curl`, the real `node` fetch()).
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import time

from cp import Callplane, Response
from sipp_peer import Sipp, free_port, reason_text, wait_for, wait_for_call

NUMBER_A = "+15550001111"     # tenant A, agent A
NUMBER_A2 = "+15550002222"    # tenant A, agent A2 (another agent, another number)
NUMBER_B = "+15550009999"     # tenant B, agent B

SECONDS_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOOL_TIMEOUT = 10.0


# ----------------------------------------------------------------------------- requests


def raw_request(port, method, path, body=None, headers=None, timeout=5.0):
    """One HTTP request with exactly the given headers (http.client adds only Host,
    Accept-Encoding and, for a body, Content-Length).  Returns cp.Response."""
    data = body.encode() if isinstance(body, str) else body
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=dict(headers or {}))
        resp = conn.getresponse()
        raw = resp.read()
        status, rheaders = resp.status, resp.msg
    finally:
        conn.close()
    return Response.of(status, rheaders, raw)


class ToolResult:
    def __init__(self, status, headers, raw, argv):
        self.status = status
        self.headers = headers     # {lower-case name: value}
        self.raw = raw
        self.argv = argv
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%s -> %s %r>" % (" ".join(self.argv[:3]), self.status, self.raw[:400])


def run_curl(args, workdir):
    """Run the real curl with the vendor example's arguments `args` (method, URL, -H, -d as
    written); only output options are added (-sS, where to write headers and body, and the
    status code on stdout)."""
    curl = shutil.which("curl")
    assert curl, "curl is not on PATH"
    hdr_file = os.path.join(str(workdir), "curl-headers-%d.txt" % time.monotonic_ns())
    body_file = hdr_file.replace("headers", "body")
    argv = [curl] + list(args) + ["-sS", "--max-time", "8", "-D", hdr_file, "-o", body_file,
                                   "-w", "%{http_code}"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TOOL_TIMEOUT)
    assert p.returncode == 0, "curl exited %s: %s\n%s" % (p.returncode, argv, p.stderr.decode())
    status = int(p.stdout.decode().strip())
    headers = {}
    with open(hdr_file, "rb") as f:
        for ln in f.read().decode("latin-1").splitlines()[1:]:
            if ":" in ln:
                k, _c, v = ln.partition(":")
                headers[k.strip().lower()] = v.strip()
    with open(body_file, "rb") as f:
        raw = f.read()
    return ToolResult(status, headers, raw, argv)


def run_node(script):
    """Run an ES module with the real node (global fetch); the script prints one JSON line
    {"status", "body"} on stdout."""
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not on PATH"
    argv = [node, "--input-type=module", "-e", script]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TOOL_TIMEOUT)
    assert p.returncode == 0, "node exited %s\nscript:\n%s\nstderr:\n%s" % (p.returncode, script, p.stderr.decode())
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    return ToolResult(out["status"], {}, out["body"].encode(), argv)


# ------------------------------------------------------------------------- SIP checks




def assert_rate_limited(resp, limit=1):
    """429 with Retry-After and the X-RateLimit-* headers (the body is checked by the caller)."""
    st, h, _b = resp
    assert st == 429, "expected 429, got %r" % (resp,)
    ra = h.get("Retry-After")
    assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 2, "Retry-After: %r on %r" % (ra, resp)
    assert h.get("X-RateLimit-Limit") == str(limit), "X-RateLimit-Limit: %r" % h.get("X-RateLimit-Limit")
    assert h.get("X-RateLimit-Remaining") == "0", "X-RateLimit-Remaining: %r" % h.get("X-RateLimit-Remaining")
    reset = h.get("X-RateLimit-Reset")
    assert reset is not None and reset.isdigit(), "X-RateLimit-Reset: %r" % reset
    assert time.time() - 2 <= int(reset) <= time.time() + 3, "X-RateLimit-Reset %s is not about now" % reset


def fire_until_429(send, tries=4):
    """Send `tries` requests back to back; returns (first response, first 429 response)."""
    first = send()
    for _ in range(tries - 1):
        r = send()
        if r.status == 429:
            return first, r
    raise AssertionError("no 429 after %d back-to-back requests on a key limited to 1/s; first %r, last %r"
                         % (tries, first, r))


# ---------------------------------------------------------------------------- the world


class DialectWorld:
    def __init__(self, workdir):
        self.dir = str(workdir)
        self.cp = Callplane(workdir)
        self.answer = None
        self.ring = None

    # -- set-up / tear-down
    def setup(self):
        cp = self.cp
        self.tenant = cp.tenant_create("tenant-a")
        self.agent = cp.agent_create(self.tenant, "agent-a", number=NUMBER_A)
        self.agent2 = cp.agent_create(self.tenant, "agent-a2", number=NUMBER_A2)
        self.key_id, self.key = cp.key_create(self.tenant)                     # tenant-scoped
        self.num_key_id, self.num_key = cp.key_create(self.tenant, number=NUMBER_A)
        self.num2_key_id, self.num2_key = cp.key_create(self.tenant, number=NUMBER_A2)
        self.tenant_b = cp.tenant_create("tenant-b")
        self.agent_b = cp.agent_create(self.tenant_b, "agent-b", number=NUMBER_B)
        self.key_b_id, self.key_b = cp.key_create(self.tenant_b)
        self.num_key_b_id, self.num_key_b = cp.key_create(self.tenant_b, number=NUMBER_B)
        self.revoked_key_id, self.revoked_key = cp.key_create(self.tenant)
        cp.key_revoke(self.revoked_key_id)
        self.revoked_num_key_id, self.revoked_num_key = cp.key_create(self.tenant, number=NUMBER_A)
        cp.key_revoke(self.revoked_num_key_id)
        # one key limited to 1 request/s per dialect (buckets are per key)
        self.limited = {}
        for d in ("talkover", "voxworks", "cartesia"):
            out = cp.cli("key", "create", "--tenant", self.tenant, "--rate-limit", "1")
            self.limited[d] = out["key"]
        out = cp.cli("key", "create", "--tenant", self.tenant, "--number", NUMBER_A, "--rate-limit", "1")
        self.limited["pilotstatus"] = out["key"]

        self.sip_port = free_port(udp=True, tcp=True)
        cp.start(extra_args=["--sip", "127.0.0.1:%d" % self.sip_port, "--ring-timeout", "60"])
        self.answer = Sipp(self.dir, "uas_answer_wait_bye.xml", name="answer", calls=1000,
                           timeout=600).start()
        self.ring = Sipp(self.dir, "uas_ring_wait_cancel.xml", name="ring", calls=1000,
                         timeout=600).start()
        return self

    def close(self):
        try:
            if self.cp.proc is not None:
                self.cp.stop()   # asserts a graceful exit and no sanitizer report
        finally:
            for s in (self.answer, self.ring):
                if s is not None:
                    s.stop()

    @property
    def port(self):
        return self.cp.port

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.cp.port

    # -- diagnostics
    def diagnostics(self):
        lines = [ln for ln in self.cp.stderr_text().splitlines() if '"http_request"' not in ln]
        out = ["server stderr (no http_request lines):"] + lines[-25:]
        for p in (self.answer, self.ring):
            if p is not None:
                out.append(p.report())
        return "\n".join(out)

    # -- calls
    def get(self, call_id, key=None):
        r = self.cp.request("GET", "/v1/calls/%s" % call_id, key=key or self.key)
        assert r.status == 200, "GET /v1/calls/%s -> %r" % (call_id, r)
        return r.json

    def wait_call(self, call_id, pred, timeout=5.0, what="condition", key=None):
        return wait_for_call(lambda cid: self.get(cid, key=key), call_id, pred, timeout, what,
                             self.diagnostics)

    def wait_status(self, call_id, status, timeout=5.0):
        return self.wait_call(call_id, lambda c: c["status"] == status, timeout, "status %s" % status)

    def _create(self, peer, agent=None, key=None, **fields):
        body = {"agent_id": agent or self.agent, "to": "sip:bob@%s" % peer.uri_host}
        body.update(fields)
        r = self.cp.request("POST", "/v1/calls", body, key=key or self.key)
        assert r.status == 201, "POST /v1/calls %r -> %r" % (body, r)
        c = r.json
        assert isinstance(c.get("provider_call_id"), str) and c["provider_call_id"], c
        return c

    def answered_call(self, agent=None, key=None, **fields):
        """A call the `answer` far end has answered (status in_progress)."""
        c = self._create(self.answer, agent=agent, key=key, **fields)
        return self.wait_call(c["id"], lambda x: x["status"] == "in_progress", 6, "in_progress", key=key)

    def ringing_call(self, agent=None, key=None):
        """A call the `ring` far end is ringing (status ringing, 180 received)."""
        c = self._create(self.ring, agent=agent, key=key)
        return self.wait_call(c["id"], lambda x: x["status"] == "ringing", 6, "ringing", key=key)

    # -- what the far ends received
    def _received(self, peer, method, pcid):
        return [m for m in peer.received(method) if m.call_id == pcid]

    def wait_received(self, peer, method, pcid, timeout=4.0):
        got = wait_for(lambda: self._received(peer, method, pcid), timeout)
        assert got, "far end %s did not receive a %s for Call-ID %s within %ss\n%s" % (
            peer.name, method, pcid, timeout, self.diagnostics())
        return got

    def bye_reason(self, pcid, timeout=4.0):
        """Waits for the BYE of call `pcid` at the answering far end; asserts there is exactly
        one (after a short settle) and returns its Reason text."""
        self.wait_received(self.answer, "BYE", pcid, timeout)
        time.sleep(0.15)
        byes = self._received(self.answer, "BYE", pcid)
        # a retransmission of the same BYE (same CSeq) is not a second hang-up
        assert len({b.cseq for b in byes}) == 1, "more than one BYE for %s: %r\n%s" % (
            pcid, [b.text for b in byes], self.answer.report())
        return reason_text(byes[0])

    def assert_no_hangup(self, pcid, peer=None):
        """No BYE (answered far end) / CANCEL (ringing far end) was received for `pcid`."""
        peers = [peer] if peer is not None else [self.answer, self.ring]
        for p in peers:
            for method in ("BYE", "CANCEL"):
                got = self._received(p, method, pcid)
                assert not got, "far end %s received %s for %s although nothing should have ended it\n%s" % (
                    p.name, method, pcid, p.report())

    def cleanup_end(self, call_id):
        """End a call a test left active (canonical API); tolerates an already ended call."""
        r = self.cp.request("POST", "/v1/calls/%s/end" % call_id, None, key=self.key)
        assert r.status in (200, 409), r


def module_world(world):
    """A module fixture's body: sets `world` up, yields it, closes it (also when the set-up
    fails half way)."""
    try:
        world.setup()
    except BaseException:
        world.close()
        raise
    yield world
    world.close()
