"""Black-box tests of Standard Webhooks signing (docs/API.md, "Signatures"): a webhook created
with `"signing": "standard"` gets a `whsec_` + base64 secret and deliveries carrying
`webhook-id`, `webhook-timestamp` and `webhook-signature`, which the Standard Webhooks reference
library for JavaScript (npm `standardwebhooks`, tests/blackbox/node, run by node) accepts, and
which are checked here in Python by the specification's recipe too
(https://www.standardwebhooks.com/, HMAC-SHA256 of "id.timestamp.body" under the base64-decoded
secret).  A `callplane` webhook keeps Callplane-Signature alone.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

import pytest

from cp import ROOT, assert_cli_error, assert_error
from receiver import Receiver, verify_signature

NODE_DIR = os.path.join(ROOT, "tests", "blackbox", "node")
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"      # the specification's example
GENERATED_RE = re.compile(r"^whsec_[A-Za-z0-9+/]{32}$")      # 24 random bytes
SIG_RE = re.compile(r"^v1,([A-Za-z0-9+/]{43}=)$")
FAST = ["--webhook-retry-initial-ms", "100"]
STANDARD_SECRET_MESSAGE = "a standard signing's secret must be whsec_ followed by the base64 of 24..64 bytes"


@pytest.fixture
def rcv():
    r = Receiver().start()
    yield r
    r.stop()


def node_verify(items):
    """[(secret, headers, body bytes)] through the reference library: [{"ok", ...}]."""
    lib = os.path.join(NODE_DIR, "node_modules", "standardwebhooks")
    assert os.path.isdir(lib), "npm standardwebhooks missing: run scripts/node-deps.sh (make deps-test)"
    data = [{"secret": s, "headers": h, "body": b.decode("utf-8")} for s, h, b in items]
    p = subprocess.run(["node", os.path.join(NODE_DIR, "verify_standard.js")], input=json.dumps(data).encode(),
                       capture_output=True, timeout=30, cwd=NODE_DIR)
    assert p.returncode == 0, p
    return json.loads(p.stdout)


def spec_verify(secret, req):
    """The specification's recipe, by hand: returns the timestamp."""
    msg_id, ts, sig = (req.header("webhook-id"), req.header("webhook-timestamp"),
                       req.header("webhook-signature"))
    m = SIG_RE.match(sig or "")
    assert m, "webhook-signature %r is not v1,<base64 of 32 bytes>" % sig
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    want = base64.b64encode(hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + req.body,
                                     hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(m.group(1), want), (sig, want)
    assert abs(time.time() - int(ts)) <= 60, ts
    return int(ts)


def standard_headers(req):
    return {k: req.header(k) for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}


def test_standard_deliveries_verify_with_the_reference_library(cp, rcv):
    cp.setup_world()
    cp.start()
    gen = cp.request("POST", "/v1/webhooks", {"url": rcv.url_for("/gen"), "signing": "standard"}, key=cp.key)
    assert gen.status == 201, gen
    assert gen.json["signing"] == "standard" and GENERATED_RE.match(gen.json["secret"]), gen
    assert len(base64.b64decode(gen.json["secret"][6:])) == 24
    given = cp.request("POST", "/v1/webhooks", {"url": rcv.url_for("/given"), "signing": "standard",
                                               "secret": SPEC_SECRET, "format": "talkover"}, key=cp.key)
    assert given.status == 201 and given.json["secret"] == SPEC_SECRET, given
    plain = cp.request("POST", "/v1/webhooks", {"url": rcv.url_for("/plain"), "secret": SPEC_SECRET}, key=cp.key)
    assert plain.status == 201 and plain.json["signing"] == "callplane", plain
    listed = {w["id"]: w["signing"] for w in cp.request("GET", "/v1/webhooks", key=cp.key).json["data"]}
    assert listed == {gen.json["id"]: "standard", given.json["id"]: "standard",
                      plain.json["id"]: "callplane"}, listed

    c = cp.create_call()
    cp.end_call(c["id"])
    got = {q.path: q for q in rcv.wait_for(3, 15)}
    assert set(got) == {"/gen", "/given", "/plain"}, got
    secrets = {"/gen": gen.json["secret"], "/given": SPEC_SECRET}
    for path, secret in secrets.items():
        q = got[path]
        assert q.header("webhook-id") == q.event_id == q.json["id"], q.header_list
        assert q.header("Callplane-Signature") is None, q.header_list
        spec_verify(secret, q)
    assert got["/given"].json["type"] == "event_phone_call_ended"     # the format still applies
    p = got["/plain"]
    assert p.header("webhook-signature") is None and p.header("webhook-id") is None, p.header_list
    verify_signature(p, SPEC_SECRET)

    # the reference library: each genuine delivery verifies (to its body), and it is no
    # pushover: a changed body, another secret or the callplane delivery do not
    out = node_verify([(secrets["/gen"], standard_headers(got["/gen"]), got["/gen"].body),
                       (SPEC_SECRET, standard_headers(got["/given"]), got["/given"].body),
                       (SPEC_SECRET, standard_headers(got["/given"]), got["/given"].body + b" "),
                       (secrets["/gen"], standard_headers(got["/given"]), got["/given"].body),
                       (SPEC_SECRET, dict(p.headers), p.body)])
    assert out[0] == {"ok": True, "payload": got["/gen"].json}, out
    assert out[1] == {"ok": True, "payload": got["/given"].json}, out
    assert out[2] == {"ok": False, "error": "No matching signature found"}, out
    assert out[3] == {"ok": False, "error": "No matching signature found"}, out
    assert out[4] == {"ok": False, "error": "Missing required headers"}, out


def test_retry_keeps_the_webhook_id(cp, rcv):
    cp.setup_world()
    cp.start(extra_args=FAST)
    hook = cp.request("POST", "/v1/webhooks", {"url": rcv.url, "signing": "standard"}, key=cp.key)
    assert hook.status == 201, hook
    rcv.plan([500])
    c = cp.create_call()
    cp.end_call(c["id"])
    first, second = rcv.wait_for(2, 15)
    assert (first.answered, second.answered) == (500, 200), (first, second)
    assert first.header("webhook-id") == second.header("webhook-id") == first.event_id
    for q in (first, second):
        spec_verify(hook.json["secret"], q)
    out = node_verify([(hook.json["secret"], standard_headers(q), q.body) for q in (first, second)])
    assert [o["ok"] for o in out] == [True, True], out


@pytest.mark.parametrize("body,message", [
    ({"signing": "svix"}, "signing must be callplane or standard"),
    ({"signing": 1}, None),
    ({"signing": "standard", "secret": "s3cret-for-webhook-tests-0123456789"}, STANDARD_SECRET_MESSAGE),
    ({"signing": "standard", "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, STANDARD_SECRET_MESSAGE),
    ({"signing": "standard", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La"}, STANDARD_SECRET_MESSAGE),
    ({"signing": "standard", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w"}, STANDARD_SECRET_MESSAGE),
], ids=["unknown", "number", "not-whsec", "no-prefix", "21-bytes", "url-safe"])
def test_api_signing_validation(cp, body, message):
    cp.setup_world()
    cp.start()
    body = dict(body, url="http://127.0.0.1:9/hook")
    r = cp.request("POST", "/v1/webhooks", body, key=cp.key)
    assert_error(r, 400, "invalid_request")
    if message:
        assert r.json["error"]["message"] == message, r
    assert cp.request("GET", "/v1/webhooks", key=cp.key).json == {"data": []}


def test_cli_signing(cp):
    cp.setup_world()
    made = cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/h",
                  "--signing", "standard")
    assert set(made) == {"id", "secret"} and GENERATED_RE.match(made["secret"]), made
    assert [w["signing"] for w in cp.cli("webhook", "list")["data"]] == ["standard"]
    assert_cli_error(cp.cli_raw("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/h",
                                "--signing", "svix"), 2, "error: signing must be callplane or standard")
    assert_cli_error(cp.cli_raw("webhook", "create", "--tenant", cp.tenant, "--url", "http://127.0.0.1:9/h",
                                "--signing", "standard", "--secret", "not-a-standard-secret"),
                     2, "error: " + STANDARD_SECRET_MESSAGE)
