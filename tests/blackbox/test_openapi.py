"""Contract test: docs/openapi.json against the running server.

The document is the source of truth for every route (docs/API.md, docs/dialects.md).  This file
checks that the server and the document say the same:

- statically: the document's named example sets pair up (each request example is answered by
  exactly one response example of its name), every response example fits its schema, a request
  example that its schema refuses is one whose answer is a 400, and each operation's errors
  use its dialect's error schema;
- live, against one callplane with its SIP engine and two sipp far ends (dialect_helpers'
  DialectWorld: `answer` answers and waits for the BYE, `ring` rings and waits for the CANCEL):
  every example set is sent -- the request built from the examples of its name, with the state
  it is about set up first (an id stand-in of the document names the kind of call, see
  CALL_FACTORIES) -- and the answer must have the status of the example's response, that
  response's media type and headers, a body its schema accepts, and the example's values
  (ids and other stand-ins mapped back, timestamps and the values that vary from run to run
  compared by kind only);
- every path and method of the document is served (the other direction -- every route the
  server serves is in the document -- is tests/unit/test_openapi.c, which reads the route
  tables);
- GET /openapi.json serves docs/openapi.json as it is; webhook deliveries and the event stream
  carry bodies that fit the document's schemas.

Run: CALLPLANE_BIN=build/asan/callplane /usr/bin/python3 -m pytest -q tests/blackbox/test_openapi.py
"""

import copy
import json
import os
import re
import urllib.parse

import jsonschema
import pytest

from cp import ROOT, Response
from dialect_helpers import (DialectWorld, NUMBER_A, NUMBER_A2, NUMBER_B, module_world,
                             raw_request)
from receiver import Receiver, SseReader
from sipp_peer import Sipp, free_port, wait_for

SPEC_FILE = os.path.join(ROOT, "docs", "openapi.json")
with open(SPEC_FILE, "rb") as _f:
    SPEC_BYTES = _f.read()
SPEC = json.loads(SPEC_BYTES)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
WEBHOOK_CAP = 4

# The document's stand-ins (its "Examples come in named sets"), and what each stands for.
AGENT = "9b2e6c1a-4f3d-4e8b-a7c5-2d1f0e9b8a76"
AGENT2 = "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c"
TENANT = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
CALL_UP = "2f8a9c1e-6b3d-4a7f-8e21-5c9d0b4a3f62"
CALL_RINGING = "b41d7e2c-9a35-4c6f-8b1e-0d2c3b4a5f67"
CALL_ENDED = "6c5b4a39-2817-4f6e-9d5c-4b3a29180f7e"
CALL_RECORDED = "d8e7f6a5-b4c3-4d2e-9f1a-0b9c8d7e6f5a"
CALL_REDACTED = "f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b"
WEBHOOK = "4b3a2918-0706-4f5e-8d4c-3b2a19080706"
KEY_ID = "1e2d3c4b-5a69-4788-97a6-b5c4d3e2f1a0"
WEB_CALL = "3e1c5a7b-9d2f-4b6e-8a1c-7f5e3d9b1c24"
WEB_TOKEN = "Hq3xT0b2Vn8sLk5mWc7pRf1dZy9aEg4uJi6oNt2vQwY"
PCID = "a84b4c76e66710@127.0.0.1"
PEER = "sip:bob@127.0.0.1:5070"
HOOK_URL = "https://hooks.example.com/callplane"
DELIVERY = "41"
# The admin API's stand-ins of objects a set changes: made fresh for each set that names one.
NEW_TENANT = "0c9b8a79-6857-4e3d-9c2b-1a0f9e8d7c6b"
NEW_AGENT = "8d7c6b5a-4938-4f2e-8d1c-0b9a8f7e6d5c"
NEW_KEY = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
NEW_TRUNK = "7e6d5c4b-3a29-4187-9f6e-5d4c3b2a1908"

# Sets the server answers without looking at the request's objects: no call is made for them.
GENERIC = {"unauthorized", "rate_limited", "malformed_query", "payload_too_large", "number_key"}
# Answers a client cannot cause on its own (the document says so); shown, never sent.
NOT_SENT = {
    "internal": "needs a failing store or disk",
    "unavailable": "needs a request to arrive while the server shuts down",
    "draining": "needs a server draining (SIGTERM with --drain-timeout: tests/blackbox/test_drain.py)",
    "not_ready": "needs a store or a SIP engine that does not answer",
    "hangup_undeliverable": "needs a SIP engine too busy to take a hang-up in --hangup-wait-ms",
    "media_unavailable": "needs an answered call whose media is gone",
    "token_refused": "needs a server run with --metrics-token (tests/blackbox/test_metrics.py)",
}
# Members whose values vary from run to run: compared by JSON type only.
VOLATILE = {"duration_s", "goodbye_ms", "attempts", "last_status", "last_error", "sip_status"}
VOLATILE_BY_OP = {"replayFailedDeliveries": {"replayed"}}
# Sets whose messages name a number that varies (a recording's size): digits match digits.
NUMBERS_VARY = {("getCallRecording", "unsatisfiable"), ("cartesiaGetCallAudio", "unsatisfiable")}
TS_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TS_S = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Stand-ins of values the server makes up (a new call's Call-ID, a webhook's secret, a cursor):
# any value of their kind matches.
KINDS = [
    (re.compile(r"^whsec_[0-9a-f]{48}$"), re.compile(r"^whsec_[0-9a-f]{48}$")),
    (re.compile(r"^c[0-9]+$"), re.compile(r"^c[0-9]+$")),
    (re.compile(r"^cp_[0-9a-f]{7}$"), re.compile(r"^cp_[0-9a-f]{7}$")),          # a key's prefix
    (re.compile(r"^cp_[0-9a-f]{48}$"), re.compile(r"^cp_[0-9a-f]{48}$")),        # a key's secret
    (re.compile(r"^[A-Za-z0-9_-]{43}$"), re.compile(r"^[A-Za-z0-9_-]{43}$")),      # a web call's token
    (re.compile(r"^/web/call\?call_id=[0-9a-f-]{36}&token=[A-Za-z0-9_-]{43}$"),
     re.compile(r"^/web/call\?call_id=[0-9a-f-]{36}&token=[A-Za-z0-9_-]{43}$")),
]

DIALECT_ERRORS = {"canonical": "CanonicalError", "talkover": "TalkoverError",
                  "voxworks": "VoxworksError", "pilotstatus": "PilotStatusError",
                  "cartesia": "CartesiaError"}


# ------------------------------------------------------------------------------ the document

def resolve(node):
    """Follows local $refs ("#/components/...") until a node that is not one."""
    while isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def operations():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


OPS = {op["operationId"]: (path, method, op) for path, method, op in operations()}


def params_of(op):
    return [resolve(p) for p in op.get("parameters", [])]


def body_examples(op):
    rb = resolve(op.get("requestBody"))
    if not rb:
        return {}
    return rb["content"]["application/json"].get("examples", {})


def request_sets(op):
    """The names of the request examples of op (parameters' and the body's)."""
    names = set(body_examples(op))
    for p in params_of(op):
        names.update(n for n in p.get("examples", {}) if n != "default")
    return names


def response_sets(op):
    """{example name: (status, response, media type, example)} of op."""
    out = {}
    for status, r in op["responses"].items():
        r = resolve(r)
        for media, c in r.get("content", {}).items():
            for name, e in c.get("examples", {}).items():
                assert name not in out, "%s: example %s under %s and %s" % (
                    op["operationId"], name, out[name][0], status)
                out[name] = (status, r, media, resolve(e))
    return out


def bodyless(op):
    """The one status of op whose response has no body (a 204), or None. It answers the sets
    that only request examples name."""
    found = [st for st, r in op["responses"].items() if "content" not in resolve(r)]
    assert len(found) <= 1, (op["operationId"], found)
    return found[0] if found else None


def answer_of(op, name):
    """(status, response, media type or None, example or None) of set `name`."""
    sets = response_sets(op)
    if name in sets:
        return sets[name]
    status = bodyless(op)
    assert status, "%s: set %s has no answer" % (op["operationId"], name)
    return status, resolve(op["responses"][status]), None, None


RESOLVER = jsonschema.RefResolver.from_schema(SPEC)
FORMATS = jsonschema.FormatChecker()


def validator(schema):
    return jsonschema.Draft202012Validator(schema, resolver=RESOLVER, format_checker=FORMATS)


def schema_errors(schema, value):
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
            for e in validator(schema).iter_errors(value)]


def cases():
    out = []
    for opid, (_path, _method, op) in OPS.items():
        for name in sorted(set(response_sets(op)) | request_sets(op)):
            if name not in NOT_SENT:
                out.append((opid, name))
    return out


CASES = cases()


# ------------------------------------------------------------------------------- static checks

def test_example_sets_pair_up():
    """Each request example names a set that exactly one response example answers (or the
    operation's one response without a body), and each required parameter has a value for
    every set (its example of the set's name, `default`, or its first)."""
    problems = []
    for opid, (_path, _method, op) in OPS.items():
        responses = response_sets(op)
        for name in sorted(request_sets(op)):
            if name not in responses and not bodyless(op):
                problems.append("%s: request example %s has no response example" % (opid, name))
        for p in params_of(op):
            if p.get("required") and not p.get("examples"):
                problems.append("%s: required parameter %s has no example" % (opid, p["name"]))
    assert not problems, "\n".join(problems)
    assert len(CASES) >= 150, "only %d example sets to send" % len(CASES)


def test_response_examples_fit_their_schemas():
    problems = []
    for opid, (_path, _method, op) in OPS.items():
        for name, (status, r, media, e) in response_sets(op).items():
            if "value" not in e:
                assert not media.startswith("application/json"), (opid, name)
                continue
            schema = r["content"][media]["schema"]
            for err in schema_errors(schema, e["value"]):
                problems.append("%s %s %s: %s" % (opid, status, name, err))
    assert not problems, "\n".join(problems)


def test_request_examples_refused_by_their_schema_are_answered_400():
    """The lint lets such examples through one by one (scripts/lint/.redocly.lint-ignore.yaml);
    here each must show a 400, and every other request example must fit its schema."""
    refused = []
    problems = []
    for opid, (_path, _method, op) in OPS.items():
        bad = set()
        rb = resolve(op.get("requestBody"))
        if rb:
            schema = rb["content"]["application/json"]["schema"]
            for name, e in body_examples(op).items():
                if schema_errors(schema, resolve(e)["value"]):
                    bad.add(name)
        for p in params_of(op):
            for name, e in p.get("examples", {}).items():
                if schema_errors(p["schema"], e["value"]):
                    bad.add(name)
        for name in sorted(bad):
            refused.append((opid, name))
            if name == "default" or answer_of(op, name)[0] != "400":
                problems.append("%s: example %s is refused by its schema but answered %s"
                                % (opid, name, answer_of(op, name)[0]))
    assert not problems, "\n".join(problems)
    assert len(refused) >= 10, refused


def test_errors_use_their_dialects_schema():
    """Every 4xx/5xx of an operation has the error schema of its dialect (x-callplane-dialect),
    and every dialect has its own."""
    problems = []
    for opid, (_path, _method, op) in OPS.items():
        want = "#/components/schemas/" + DIALECT_ERRORS[op["x-callplane-dialect"]]
        for status, r in op["responses"].items():
            if status[0] in "45":
                for media, c in resolve(r).get("content", {}).items():
                    if media == "text/html":
                        continue        # a page for people (a web call's link refused)
                    if c["schema"].get("$ref") != want:
                        problems.append("%s %s: %s" % (opid, status, c["schema"]))
    assert not problems, "\n".join(problems)
    assert len(set(DIALECT_ERRORS.values())) == 5


# --------------------------------------------------------------------------------- the world

class World(DialectWorld):
    """DialectWorld's tenants, keys and far ends, on a server whose webhooks fail fast (a
    webhook of tenant A on a closed port makes failed deliveries to list and replay), with a
    small cap on webhooks and a tenant at it."""

    def setup(self):
        cp = self.cp
        self.tenant = cp.tenant_create("tenant-a")
        self.agent = cp.agent_create(self.tenant, "agent-a", number=NUMBER_A)
        self.agent2 = cp.agent_create(self.tenant, "agent-a2", number=NUMBER_A2)
        self.key_id, self.key = cp.key_create(self.tenant)
        self.num_key_id, self.num_key = cp.key_create(self.tenant, number=NUMBER_A)
        self.op_key = cp.key_create_operator()[1]
        self.tenant_b = cp.tenant_create("tenant-b")
        self.agent_b = cp.agent_create(self.tenant_b, "agent-b", number=NUMBER_B)
        self.key_b_id, self.key_b = cp.key_create(self.tenant_b)
        self.tenant_full = cp.tenant_create("tenant-full")
        _kid, self.key_full = cp.key_create(self.tenant_full)
        self.closed = "http://127.0.0.1:%d/hook" % free_port(udp=False, tcp=True)
        for _ in range(WEBHOOK_CAP):
            cp.cli("webhook", "create", "--tenant", self.tenant_full, "--url", self.closed)
        cp.cli("webhook", "create", "--tenant", self.tenant, "--url", self.closed)
        self.limited = {}
        for who in ("tenant", "number"):
            args = ["key", "create", "--tenant", self.tenant, "--rate-limit", "1"]
            if who == "number":
                args += ["--number", NUMBER_A]
            self.limited[who] = cp.cli(*args)["key"]
        self.sip_port = free_port(udp=True, tcp=True)
        cp.start(extra_args=["--sip", "127.0.0.1:%d" % self.sip_port, "--ring-timeout", "60",
                             "--webhook-max-age-s", "1", "--webhook-retry-initial-ms", "100",
                             "--webhooks-per-tenant", str(WEBHOOK_CAP)])
        self.answer = Sipp(self.dir, "uas_answer_wait_bye.xml", name="answer", calls=2000,
                           timeout=900).start()
        self.ring = Sipp(self.dir, "uas_ring_wait_cancel.xml", name="ring", calls=2000,
                         timeout=900).start()
        return self

    def ended_call(self, record=False):
        fields = {"record": True} if record else {}
        c = self.answered_call(**fields)
        r = self.cp.request("POST", "/v1/calls/%s/end" % c["id"], None, key=self.key)
        assert r.status == 200, r
        if record:
            return self.wait_call(c["id"], lambda x: x["has_recording"], 5, "has_recording")
        return r.json

    def redacted_call(self):
        c = self.ended_call()
        r = self.cp.request("DELETE", "/v1/calls/%s" % c["id"], key=self.key)
        assert r.status == 200, r
        return r.json

    def end_everything(self):
        for key in (self.key, self.key_b):
            r = self.cp.request("POST", "/v1/calls/end", {}, key=key, timeout=15)
            assert r.status == 200, r


@pytest.fixture(scope="module")
def w(callplane_bin, tmp_path_factory):
    yield from module_world(World(tmp_path_factory.mktemp("openapi")))


@pytest.fixture
def world(w):
    """After each test: the server is alive with no sanitizer report, every call ended."""
    yield w
    assert w.cp.running, "server died:\n%s" % w.diagnostics()
    marker = w.cp.sanitizer_report()
    assert marker is None, "sanitizer report (%s) in server stderr:\n%s" % (marker, w.diagnostics())
    w.end_everything()


# A stand-in call id in a request names the kind of call the set is about: one is made.
CALL_FACTORIES = {
    CALL_UP: lambda w: w.answered_call(),
    CALL_RINGING: lambda w: w.ringing_call(),
    CALL_ENDED: lambda w: w.ended_call(),
    CALL_RECORDED: lambda w: w.ended_call(record=True),
    CALL_REDACTED: lambda w: w.redacted_call(),
}


# A stand-in of the admin API names an object the set changes: a fresh one is made.
ADMIN_FACTORIES = {
    NEW_TENANT: lambda w: w.cp.tenant_create("acme", sip_uris="none"),
    NEW_AGENT: lambda w: w.cp.agent_create(w.tenant, "support"),
    NEW_KEY: lambda w: w.cp.key_create(w.tenant)[0],
    NEW_TRUNK: lambda w: w.cp.cli("trunk", "create", "--tenant", w.tenant, "--host", "198.51.100.1")["id"],
}


# ----------------------------------------------------------------------------- one example set

class Sent:
    """One request of an example set, as built from the document and then set up."""

    def __init__(self, w, opid, name):
        self.w, self.opid, self.name = w, opid, name
        self.path, self.method, self.op = OPS[opid]
        self.dialect = self.op["x-callplane-dialect"]
        self.query, self.headers, self.body = [], {}, None
        self.path_values = {}
        security = self.op.get("security", SPEC["security"])
        self.scheme = next(iter(security[0]), None) if security else None
        self.key = None
        if self.scheme == "pilotStatusApiKey":
            self.key = w.num_key
        elif self.scheme and self.scheme != "webCallToken":   # that one is in the query
            self.key = w.key
        for p in params_of(self.op):
            ex = p.get("examples", {})
            if name in ex:
                value = ex[name]["value"]
            elif p.get("required"):
                value = (ex.get("default") or next(iter(ex.values())))["value"]
            else:
                continue
            if p["in"] == "path":
                self.path_values[p["name"]] = str(value)
            elif p["in"] == "query":
                self.query.append((p["name"], str(value)))
            elif p["in"] == "header":
                self.headers[p["name"]] = str(value)
        rb = resolve(self.op.get("requestBody"))
        if rb:
            bex = body_examples(self.op)
            if name in bex:
                self.body = copy.deepcopy(resolve(bex[name])["value"])
            elif rb.get("required"):
                self.body = copy.deepcopy(resolve(next(iter(bex.values())))["value"])
        # stand-ins of the world's objects, both ways
        self.forward = {AGENT: w.agent, AGENT2: w.agent2, TENANT: w.tenant, KEY_ID: w.num_key_id,
                        PEER: "sip:bob@%s" % w.answer.uri_host, HOOK_URL: w.closed}
        self.back = {v: k for k, v in self.forward.items()}

    # -- the values of the request
    def values(self):
        vals = list(self.path_values.values()) + [v for _k, v in self.query]
        vals += list(self.headers.values())

        def walk(x):
            if isinstance(x, dict):
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
            elif isinstance(x, str):
                vals.append(x)
        walk(self.body)
        return vals

    def make_calls(self):
        """Makes the call each stand-in call id of the request names (a web call's token: a
        new web call)."""
        vals = self.values()
        if WEB_TOKEN in vals:
            r = self.w.cp.request("POST", "/v1/web-calls", {"agent_id": self.w.agent}, key=self.w.key)
            assert r.status == 201, r
            self.map(WEB_TOKEN, r.json["access_token"])
            self.map(WEB_CALL, r.json["id"])
        for stand_in, make in CALL_FACTORIES.items():
            if stand_in in vals:
                c = make(self.w)
                self.map(stand_in, c["id"])
                self.back[c["to"]] = PEER
                self.map(PCID, c["provider_call_id"])
                self.map(urllib.parse.quote(PCID, safe=""), urllib.parse.quote(
                    c["provider_call_id"], safe=""))
        for stand_in, make in ADMIN_FACTORIES.items():
            if stand_in in vals:
                self.map(stand_in, make(self.w))
        if PCID.replace("@", "%40") in vals and PCID not in self.forward:
            c = self.w.answered_call()
            self.map(CALL_UP, c["id"])
            self.map(PCID, c["provider_call_id"])
            self.map(PCID.replace("@", "%40"), c["provider_call_id"].replace("@", "%40"))

    def map(self, stand_in, live):
        self.forward[stand_in] = live
        self.back[live] = stand_in

    def substitute(self, x):
        if isinstance(x, dict):
            return {k: self.substitute(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self.substitute(v) for v in x]
        if isinstance(x, str):
            return self.forward.get(x, x)
        return x

    # -- sending
    def url(self, extra_query=""):
        path = self.path
        for k, v in self.path_values.items():
            path = path.replace("{%s}" % k, self.forward.get(v, v))
        q = [(k, self.forward.get(v, v)) for k, v in self.query]
        qs = urllib.parse.urlencode(q)
        if extra_query:
            qs = qs + "&" + extra_query if qs else extra_query
        return path + ("?" + qs if qs else "")

    def request_headers(self, key):
        h = {k: self.forward.get(v, v) for k, v in self.headers.items()}
        if key is not None:
            if self.scheme == "bearerAuth":
                h["Authorization"] = "Bearer " + key
            else:
                h["x-api-key"] = key
        return h

    def body_bytes(self):
        if self.body is None:
            return None
        return json.dumps(self.substitute(self.body)).encode()

    def send(self, key=None, body=None, headers=None, extra_query="", use_key=True):
        h = self.request_headers(self.key if use_key and key is None else key)
        data = self.body_bytes() if body is None else body
        if data is not None and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        return raw_request(self.w.port, self.method.upper(), self.url(extra_query), data, h,
                           timeout=20)


def send_set(w, opid, name):
    """Sends example set `name` of opid (with what it needs set up first); returns the Sent
    and the response."""
    s = Sent(w, opid, name)
    if (opid, name) in BEFORE:
        BEFORE[(opid, name)](s)
    if name not in GENERIC:
        s.make_calls()
    hook = HOOKS.get((opid, name)) or HOOKS.get(name)
    if hook:
        return s, hook(s)
    return s, s.send()


# -- what some sets need besides their examples

def h_unauthorized(s):
    return s.send(use_key=False)


def h_rate_limited(s):
    key = s.w.limited["number" if s.scheme == "pilotStatusApiKey" else "tenant"]
    for _ in range(4):
        r = s.send(key=key)
        if r.status == 429:
            return r
    raise AssertionError("no 429 after 4 back-to-back requests on a key limited to 1/s: %r" % r)


def h_malformed_query(s):
    return s.send(extra_query="x=%zz")


def h_payload_too_large(s):
    return s.send(body=b"{" + b" " * (64 * 1024) + b"}")


def h_number_key(s):
    return s.send(key=s.w.num_key)


def h_replayed(s):
    first = s.send()
    again = s.send()
    assert again.headers.get("Idempotent-Replayed") == "true", again
    assert again.raw == first.raw, (first, again)
    return again


def h_idempotency_conflict(s):
    s.headers.setdefault("Idempotency-Key", "conflict-%s" % s.opid)
    other = (s.body_bytes() or b"") + b" "
    # the first answer is the operation's own (any status): it only has to be kept for the key
    first = s.send(body=other)
    assert first.status < 500, first
    return s.send()


def h_limit_reached(s):
    return s.send(key=s.w.key_full)


def h_tenant_key(s):
    return s.send(key=s.w.key)


def h_operator(s):
    return s.send(key=s.w.op_key)


def h_revoke_self(s):
    s.map(NEW_KEY, s.w.key_id)
    return s.send()


def h_trunk_in_use(s):
    s.w.cp.cli("agent", "create", "--tenant", s.w.tenant, "--name", "trunked", "--trunk",
               s.forward[NEW_TRUNK])
    return s.send()


def h_with_body(s):
    return s.send(body=b'{"reason": "done"}')


def h_wrong_content_type(s):
    return s.send(headers={"Content-Type": "text/plain"})


def h_created_webhook(s):
    r = s.send()
    if r.status == 201:
        d = s.w.cp.request("DELETE", "/v1/webhooks/%s" % r.json["id"], key=s.w.key)
        assert d.status == 200, d
    return r


def h_webhook_to_delete(s):
    r = s.w.cp.request("POST", "/v1/webhooks", {"url": s.w.closed}, key=s.w.key)
    assert r.status == 201, r
    s.map(WEBHOOK, r.json["id"])
    return s.send()


def h_webhook_to_change(s):
    """A fresh webhook of tenant A to read or change, deleted after (the tenant has a cap)."""
    r = h_webhook_to_delete(s)
    d = s.w.cp.request("DELETE", "/v1/webhooks/%s" % s.forward[WEBHOOK], key=s.w.key)
    assert d.status == 200, d
    return r


def failed_deliveries(w):
    r = w.cp.request("GET", "/v1/webhooks/deliveries?status=failed", key=w.key)
    assert r.status == 200, r
    return r.json["data"]


def some_failed_delivery(w):
    """A failed delivery of tenant A's webhook on the closed port: a call's events make
    deliveries there, failed within a second (--webhook-max-age-s 1)."""
    w.answered_call()
    got = wait_for(lambda: failed_deliveries(w), 15)
    assert got, "no failed delivery within 15 s"
    return got[0]


def h_replay_one(s):
    s.map(DELIVERY, str(some_failed_delivery(s.w)["id"]))
    return s.send()


def h_replay_all(s):
    some_failed_delivery(s.w)
    r = s.send()
    # at least the one waited for; the call's other deliveries fail while this runs
    assert r.status != 200 or r.json["replayed"] >= 1, r
    return r


def ringing_calls(w, n):
    """n calls of agent A to the far end that rings (not waited for)."""
    for _ in range(n):
        r = w.cp.request("POST", "/v1/calls", {"agent_id": w.agent,
                                               "to": "sip:bob@%s" % w.ring.uri_host}, key=w.key)
        assert r.status == 201, r


def h_calls_to_list(n):
    def hook(s):
        ringing_calls(s.w, n)
        return s.send()
    return hook


def h_end_all(agents):
    def hook(s):
        for a in agents:
            s.w.answered_call(agent=getattr(s.w, a))
        return s.send()
    return hook


def h_next_page(s):
    ringing_calls(s.w, 2)
    r = s.w.cp.request("GET", "/v1/calls?limit=1", key=s.w.key)
    assert r.status == 200 and r.json["next_cursor"], r
    s.map("c41", r.json["next_cursor"])
    return s.send()


def h_stream_rate_limited(s):
    """The first request of a limited key opens a stream: it is closed before the second."""
    key = s.w.limited["tenant"]
    for _ in range(4):
        with SseReader(s.w.port, s.url(), headers=s.request_headers(key)) as sse:
            sse.open()
            if sse.status != 200:
                return raw_response(sse)
    raise AssertionError("no 429 after 4 back-to-back streams on a key limited to 1/s")


def raw_response(sse):
    body = sse.read_body()

    class Headers(dict):
        def get(self, k, d=None):
            return dict.get(self, k.lower(), d)
    return Response.of(sse.status, Headers(sse.headers), body)


HOOKS = {
    "unauthorized": h_unauthorized,
    "rate_limited": h_rate_limited,
    "malformed_query": h_malformed_query,
    "payload_too_large": h_payload_too_large,
    "number_key": h_number_key,
    "replayed": h_replayed,
    "idempotency_conflict": h_idempotency_conflict,
    "limit_reached": h_limit_reached,
    "tenant_key": h_tenant_key,
    ("pilotStatusTerminateCall", "with_body"): h_with_body,
    ("talkoverEndCall", "wrong_content_type"): h_wrong_content_type,
    ("createWebhook", "created"): h_created_webhook,
    ("createWebhook", "agent_webhook"): h_created_webhook,
    ("deleteWebhook", "deleted"): h_webhook_to_delete,
    ("getWebhook", "webhook"): h_webhook_to_change,
    ("updateWebhook", "updated"): h_webhook_to_change,
    ("updateWebhook", "rotated"): h_webhook_to_change,
    ("updateWebhook", "invalid"): h_webhook_to_change,
    ("replayDelivery", "replayed"): h_replay_one,
    ("replayFailedDeliveries", "replayed"): h_replay_all,
    ("listCalls", "by_agent"): h_calls_to_list(3),
    ("cartesiaListCalls", "by_agent"): h_calls_to_list(3),
    ("cartesiaListCalls", "transcript"): h_calls_to_list(2),
    ("endAllCalls", "all"): h_end_all(["agent", "agent"]),
    ("endAllCalls", "by_agent"): h_end_all(["agent", "agent2"]),
    ("streamEvents", "rate_limited"): h_stream_rate_limited,
    ("listTenants", "list"): h_operator,
    ("createTenant", "created"): h_operator,
    ("createTenant", "invalid"): h_operator,
    ("updateTenant", "updated"): h_operator,
    ("updateTenant", "invalid"): h_operator,
    ("updateTenant", "not_found"): h_operator,
    ("revokeKey", "self"): h_revoke_self,
    ("deleteTrunk", "in_use"): h_trunk_in_use,
    ("listCalls", "next_page"): h_next_page,
}

# What a set needs before its calls are made: calls older than its cursor.
BEFORE = {
    ("cartesiaListCalls", "older"): lambda s: ringing_calls(s.w, 2),
}


# --------------------------------------------------------------------------------- comparing

def check_header(name, value, h):
    schema = resolve(h)["schema"]
    if schema.get("type") == "integer":
        assert re.match(r"^[0-9]+$", value), "%s: %r is not an integer" % (name, value)
        value = int(value)
    errs = schema_errors(schema, value)
    assert not errs, "header %s: %r: %s" % (name, value, errs)


def same(s, example, actual, where="", volatile=frozenset()):
    """The actual value is the example's, stand-ins mapped back: ids the world or the set made
    exactly, values the server makes up (new ids, timestamps, secrets, cursors) by kind,
    volatile members by JSON type."""
    key = where.rsplit("/", 1)[-1]
    if key in volatile:
        assert type(actual) is type(example) or example is None or actual is None, \
            "%s: %r where the example has %r" % (where, actual, example)
        return
    if isinstance(example, dict):
        assert isinstance(actual, dict), "%s: %r is not an object" % (where, actual)
        assert set(actual) == set(example), "%s: members %s, the example has %s" % (
            where, sorted(actual), sorted(example))
        for k in example:
            same(s, example[k], actual[k], where + "/" + k, volatile)
        return
    if isinstance(example, list):
        assert isinstance(actual, list), "%s: %r is not an array" % (where, actual)
        return     # a listing's items depend on what came before: their schema is checked
    if isinstance(example, str) and isinstance(actual, str):
        mapped = s.back.get(actual, actual)
        if mapped == example:
            return
        if (s.opid, s.name) in NUMBERS_VARY and \
                re.sub("[0-9]+", "N", mapped) == re.sub("[0-9]+", "N", example):
            return
        if UUID_RE.match(example) and example not in s.forward and UUID_RE.match(actual) \
                and actual not in s.back:
            return      # an id the server made up for this answer
        for pat in (TS_MS, TS_S) + tuple(k for k, _ in KINDS):
            if pat.match(example) and pat.match(actual):
                return
        if example == PCID and actual:
            return      # the Call-ID of a call the request made
    assert type(actual) is type(example) and actual == example, \
        "%s: %r, the example has %r" % (where, actual, example)


def check_answer(s, r):
    """The answer r to set s: status, media type, headers, body, values."""
    status, resp, media, example = answer_of(s.op, s.name)
    diag = "%s %s (set %s): %r" % (s.method.upper(), s.url(), s.name, r)
    assert str(r.status) == status, "expected %s, got %s\n%s" % (status, r.status, diag)
    ct = (r.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media is None:
        assert r.raw == b"" and not ct, "a body where the document has none\n" + diag
    else:
        assert ct == media, "Content-Type %r, the document has %s\n%s" % (ct, media, diag)
    for name, h in resp.get("headers", {}).items():
        value = r.headers.get(name)
        if value is None:
            assert not resolve(h).get("required"), "no %s header\n%s" % (name, diag)
        else:
            check_header(name, value, h)
    if 200 <= r.status < 300 and s.key is not None:
        # docs/API.md: every authenticated response carries the key's bucket (the world keeps
        # rate limits on)
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert r.headers.get(name) is not None, "no %s header\n%s" % (name, diag)
    if media is None:
        return
    schema = resp["content"][media]["schema"]
    if media == "application/json":
        errs = schema_errors(schema, r.json)
        assert not errs, "the body does not fit %s: %s\n%s" % (schema, errs, diag)
        volatile = VOLATILE | VOLATILE_BY_OP.get(s.opid, set())
        if s.opid != "getOpenAPI":     # its example is an abridged document
            same(s, example["value"], r.json, "", volatile)
    elif media == "audio/wav":
        assert r.status in (200, 206), diag
        if r.status == 200:
            assert r.raw[:4] == b"RIFF" and r.raw[8:12] == b"WAVE", diag
        else:
            m = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", r.headers["Content-Range"])
            assert m and len(r.raw) == int(m.group(2)) - int(m.group(1)) + 1, diag
    if r.status == 416:
        size = r.headers["Content-Range"].rsplit("/", 1)[1]
        assert re.search(r"\bnone of the %s bytes" % size, r.raw.decode()), diag


# ------------------------------------------------------------------------------- the live test

@pytest.mark.parametrize("opid,name", CASES, ids=["%s-%s" % c for c in CASES])
def test_example(world, opid, name):
    """Example set `name` of operation `opid`, sent to the server: its answer is the one the
    document shows."""
    w = world
    path, method, op = OPS[opid]
    if answer_of(op, name)[2] == "text/event-stream":
        return check_stream(w, opid, name)
    s, r = send_set(w, opid, name)
    check_answer(s, r)


def check_stream(w, opid, name):
    """GET /v1/events: the head as documented, then one message whose data is an Event."""
    s = Sent(w, opid, name)
    resume = name in ("resume", "resume_query")
    if resume:
        ringing_calls(w, 1)
    headers = s.request_headers(s.key)
    with SseReader(w.port, s.url(), headers=headers) as sse:
        sse.open()
        assert sse.status == 200, (sse.status, sse.read_body())
        assert sse.headers.get("content-type", "").split(";")[0] == "text/event-stream"
        assert sse.headers.get("cache-control") == "no-cache", sse.headers
        assert re.match(r"^[0-9a-f]{16}$", sse.headers.get("x-request-id", "")), sse.headers
        sse.start()
        if name == "stream":
            ringing_calls(w, 1)
        got = sse.wait_events(1, 10)
        assert got, "no event within 10 s"
        ev = got[0]
        assert re.match(r"^[0-9]+$", ev.id or ""), ev
        if resume:
            assert ev.id == "1", ev
        data = ev.json
        assert ev.event == data["type"], ev
        errs = schema_errors({"$ref": "#/components/schemas/Event"}, data)
        assert not errs, "event data does not fit Event: %s\n%r" % (errs, data)


def test_every_documented_route_is_served(world):
    """Each path and method of the document reaches a route: without a key it is refused as
    unauthorized (or served, when public), never 404 'no such route' or 405."""
    w = world
    for opid, (path, method, op) in OPS.items():
        url = re.sub(r"\{[^}]+\}", "x", path)
        if opid == "cartesiaListCalls":
            url += "?agent_id=x"
        r = raw_request(w.port, method.upper(), url, None, {"Cartesia-Version": "2026-03-01"})
        public = op.get("security", SPEC["security"]) == []
        assert r.status == (200 if public else 401), "%s %s: %r" % (method, url, r)


def test_served_document_is_the_file(world):
    r = raw_request(world.port, "GET", "/openapi.json")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == "application/json", r.headers
    assert r.raw == SPEC_BYTES, "GET /openapi.json is not docs/openapi.json as it is in the tree"


def test_webhook_deliveries_fit_the_document(world):
    """A call of tenant B, ended: each format's webhook receives bodies and headers that fit the
    document's `webhooks`."""
    w = world
    receivers = {}
    try:
        for fmt in ("canonical", "talkover", "pilotstatus"):
            rec = Receiver().start()
            receivers[fmt] = rec
            r = w.cp.request("POST", "/v1/webhooks", {"url": rec.url_for("/" + fmt),
                                                      "format": fmt}, key=w.key_b)
            assert r.status == 201, r
        c = w.answered_call(agent=w.agent_b, key=w.key_b)
        r = w.cp.request("POST", "/v1/calls/%s/end" % c["id"], None, key=w.key_b)
        assert r.status == 200, r
        for fmt, rec in receivers.items():
            got = rec.wait_for(3, 10)
            assert len(got) == 3, (fmt, got)            # ringing, answered, ended
            post = SPEC["webhooks"][fmt]["post"]
            schema = post["requestBody"]["content"]["application/json"]["schema"]
            for req in got[:3]:
                errs = schema_errors(schema, req.json)
                assert not errs, "%s body: %s\n%r" % (fmt, errs, req.json)
                for p in post["parameters"]:
                    value = req.header(p["name"])
                    assert value is not None, (fmt, p["name"], req.headers)
                    errs = schema_errors(p["schema"], value)
                    assert not errs, (fmt, p["name"], value, errs)
    finally:
        for rec in receivers.values():
            rec.stop()
