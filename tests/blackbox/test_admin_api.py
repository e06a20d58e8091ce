"""Black-box tests of the admin API (docs/API.md, "Admin API"): /v1/tenants, /v1/agents and
/v1/keys with an operator key, a tenant key, a number-scoped key and another tenant's key, every
route; create -> get -> patch -> list round trips with exact values; bad input refused with the
field named and nothing changed (checked through the API and through the CLI, which shares the
rules); and a key created over HTTP placing a call.

The server runs without SIP: a call it places stays queued, which is all a key needs to show.
"""

import pytest

from cp import assert_recent, is_uuid

NUMBER_A = "+15550001111"
NUMBER_A2 = "+15550002222"
NUMBER_B = "+15550003333"
NOBODY = "00000000-0000-4000-8000-000000000000"
SIP_RULE = "must be none, any or HOST[,HOST...] (at most 255 bytes)"


def err(code, message):
    return {"error": {"code": code, "message": message}}


class World:
    """Tenant A (agents A and A2, a tenant key, a key scoped to A's number, a key narrowed to
    one sip: host), tenant B (agent B, its key) and an operator key."""

    def __init__(self, cp):
        self.cp = cp
        self.tenant = cp.tenant_create("tenant-a")
        self.agent = cp.agent_create(self.tenant, "agent-a", number=NUMBER_A)
        self.agent2 = cp.agent_create(self.tenant, "agent-a2", number=NUMBER_A2)
        self.key_id, self.key = cp.key_create(self.tenant)
        self.num_key_id, self.num_key = cp.key_create(self.tenant, number=NUMBER_A)
        out = cp.cli("key", "create", "--tenant", self.tenant, "--sip-uris", "pbx.example")
        self.narrow_id, self.narrow = out["id"], out["key"]
        self.tenant_b = cp.tenant_create("tenant-b")
        self.agent_b = cp.agent_create(self.tenant_b, "agent-b", number=NUMBER_B)
        self.key_b_id, self.key_b = cp.key_create(self.tenant_b)
        self.op_id, self.op = cp.key_create_operator()
        cp.start()

    def req(self, method, path, body=None, key=None):
        return self.cp.request(method, path, body, key=key)

    def ok(self, method, path, body=None, key=None, status=200):
        r = self.req(method, path, body, key)
        assert r.status == status, r
        return r.json


@pytest.fixture
def w(cp):
    return World(cp)


def same_error(r, status, code, message):
    assert (r.status, r.json) == (status, err(code, message)), r


# ----------------------------------------------------------------------------- tenants

def test_tenant_round_trip_with_an_operator_key(w):
    t = w.ok("POST", "/v1/tenants", {"name": "acme", "sip_uris": "pbx.example",
                                     "allow_prefixes": "+1,+44"}, key=w.op, status=201)
    assert is_uuid(t["id"]) and set(t) == {"id", "name", "created_at", "sip_uris",
                                           "allow_prefixes", "deny_prefixes"}, t
    assert_recent(t["created_at"])
    assert (t["name"], t["sip_uris"], t["allow_prefixes"], t["deny_prefixes"]) == \
        ("acme", "pbx.example", "+1,+44", None)
    assert w.ok("GET", "/v1/tenants/" + t["id"], key=w.op) == t
    p = w.ok("PATCH", "/v1/tenants/" + t["id"], {"name": "acme-2", "allow_prefixes": None,
                                                   "deny_prefixes": "+1900"}, key=w.op)
    assert p == dict(t, name="acme-2", allow_prefixes=None, deny_prefixes="+1900"), p
    listed = w.ok("GET", "/v1/tenants", key=w.op)["data"]
    assert [x["id"] for x in listed] == [w.tenant, w.tenant_b, t["id"]], listed
    assert listed[2] == p
    # the CLI sees the same tenant
    assert {x["id"]: x for x in w.cp.tenant_list()["data"]}[t["id"]] == p
    # defaults: sip_uris none, no lists
    d = w.ok("POST", "/v1/tenants", {"name": "plain"}, key=w.op, status=201)
    assert (d["sip_uris"], d["allow_prefixes"], d["deny_prefixes"]) == ("none", None, None)


@pytest.mark.parametrize("body,message", [
    ({"name": "x", "sip_uris": "*"}, "sip_uris " + SIP_RULE),
    ({"name": "x", "sip_uris": "any,pbx.example"}, "sip_uris " + SIP_RULE),
    ({"name": "x", "allow_prefixes": "1900"}, "allow_prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes)"),
    ({"name": "x", "deny_prefixes": ""}, "deny_prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes)"),
    ({"name": ""}, "name must be 1..128 characters"),
    ({"name": "n" * 129}, "name must be 1..128 characters"),
    ({}, "name is required"),
    ({"name": 5}, "name must be a string"),
    ({"name": "x", "allow_prefixes": 1}, "allow_prefixes must be a string or null"),
    ({"name": "x", "color": "red"}, 'unknown field "color"'),
])
def test_tenant_create_refuses_bad_input_and_creates_nothing(w, body, message):
    same_error(w.req("POST", "/v1/tenants", body, key=w.op), 400, "invalid_request", message)
    assert [x["id"] for x in w.ok("GET", "/v1/tenants", key=w.op)["data"]] == [w.tenant, w.tenant_b]


def test_tenant_patch_refused_changes_nothing(w):
    before = w.ok("GET", "/v1/tenants/" + w.tenant, key=w.op)
    for body, message in [({"name": "renamed", "deny_prefixes": "1900"},
                           "deny_prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes)"),
                          ({"name": "renamed", "sip_uris": None}, "sip_uris must be a string"),
                          ({}, "nothing to change: give name, sip_uris, allow_prefixes or"
                               " deny_prefixes")]:
        same_error(w.req("PATCH", "/v1/tenants/" + w.tenant, body, key=w.op), 400,
                   "invalid_request", message)
    assert w.ok("GET", "/v1/tenants/" + w.tenant, key=w.op) == before
    same_error(w.req("PATCH", "/v1/tenants/" + NOBODY, {"name": "x"}, key=w.op), 404,
               "not_found", "tenant not found")


def test_tenant_routes_by_key(w):
    own = w.ok("GET", "/v1/tenants/" + w.tenant, key=w.op)
    for key in (w.key, w.num_key, w.narrow):
        assert w.ok("GET", "/v1/tenants/" + w.tenant, key=key) == own
        # another tenant's id is not found, as another tenant's call is
        same_error(w.req("GET", "/v1/tenants/" + w.tenant_b, key=key), 404, "not_found",
                   "tenant not found")
        same_error(w.req("GET", "/v1/tenants", key=key), 403, "forbidden",
                   "listing tenants needs an operator key")
        same_error(w.req("POST", "/v1/tenants", {"name": "x"}, key=key), 403, "forbidden",
                   "creating tenants needs an operator key")
        same_error(w.req("PATCH", "/v1/tenants/" + w.tenant, {"name": "x"}, key=key), 403,
                   "forbidden", "changing tenants needs an operator key")
    assert w.ok("GET", "/v1/tenants/" + w.tenant, key=w.op) == own
    same_error(w.req("GET", "/v1/tenants/" + NOBODY, key=w.op), 404, "not_found",
               "tenant not found")
    assert w.req("GET", "/v1/tenants").status == 401


# ------------------------------------------------------------------------------ agents

AGENT_FIELDS = {"id", "tenant_id", "name", "number", "max_duration_s", "created_at", "stream_url",
                "record", "goodbye_text", "max_duration_goodbye", "trunk_id"}


def test_agent_round_trip_with_a_tenant_key(w):
    a = w.ok("POST", "/v1/agents", {"name": "support", "number": "+15550009999",
                                    "max_duration_s": 600, "record": True,
                                    "stream_url": "wss://agent.example/audio",
                                    "goodbye_text": "Goodbye."}, key=w.key, status=201)
    assert set(a) == AGENT_FIELDS and is_uuid(a["id"]), a
    assert_recent(a["created_at"])
    assert {k: a[k] for k in AGENT_FIELDS - {"id", "created_at"}} == {
        "tenant_id": w.tenant, "name": "support", "number": "+15550009999", "max_duration_s": 600,
        "stream_url": "wss://agent.example/audio", "record": True, "goodbye_text": "Goodbye.",
        "max_duration_goodbye": None, "trunk_id": None}
    assert w.ok("GET", "/v1/agents/" + a["id"], key=w.key) == a
    p = w.ok("PATCH", "/v1/agents/" + a["id"], {"stream_url": None, "record": False,
                                                 "goodbye_text": None,
                                                 "max_duration_goodbye": "Time is up."}, key=w.key)
    assert p == dict(a, stream_url=None, record=False, goodbye_text=None,
                     max_duration_goodbye="Time is up."), p
    assert w.ok("GET", "/v1/agents/" + a["id"], key=w.key) == p
    listed = w.ok("GET", "/v1/agents", key=w.key)["data"]
    assert [x["id"] for x in listed] == [w.agent, w.agent2, a["id"]] and listed[2] == p
    # the CLI sees what the API wrote
    assert {x["id"]: x for x in w.cp.agent_list(w.tenant)["data"]}[a["id"]] == p


def test_agent_routes_with_an_operator_key(w):
    a = w.ok("POST", "/v1/agents", {"tenant_id": w.tenant_b, "name": "b2"}, key=w.op, status=201)
    assert (a["tenant_id"], a["name"], a["number"], a["record"]) == (w.tenant_b, "b2", None, False)
    same_error(w.req("POST", "/v1/agents", {"name": "x"}, key=w.op), 400, "invalid_request",
               "tenant_id must be a tenant id")
    same_error(w.req("POST", "/v1/agents", {"tenant_id": NOBODY, "name": "x"}, key=w.op), 404,
               "not_found", "tenant not found")
    every = [x["id"] for x in w.ok("GET", "/v1/agents", key=w.op)["data"]]
    assert every == [w.agent, w.agent2, w.agent_b, a["id"]], every
    only_b = [x["id"] for x in w.ok("GET", "/v1/agents?tenant_id=" + w.tenant_b, key=w.op)["data"]]
    assert only_b == [w.agent_b, a["id"]]
    assert w.ok("GET", "/v1/agents/" + w.agent, key=w.op)["tenant_id"] == w.tenant
    assert w.ok("PATCH", "/v1/agents/" + w.agent_b, {"record": True}, key=w.op)["record"] is True


def test_agent_routes_by_tenant_and_number_key(w):
    # a tenant key: its tenant only; a tenant_id is refused, as on /v1/calls
    assert [x["id"] for x in w.ok("GET", "/v1/agents", key=w.key_b)["data"]] == [w.agent_b]
    for r in (w.req("GET", "/v1/agents?tenant_id=" + w.tenant, key=w.key_b),
              w.req("POST", "/v1/agents", {"tenant_id": w.tenant, "name": "x"}, key=w.key_b)):
        same_error(r, 403, "forbidden", "tenant_id is for operator keys")
    for method, body in (("GET", None), ("PATCH", {"record": True})):
        same_error(w.req(method, "/v1/agents/" + w.agent, body, key=w.key_b), 404, "not_found",
                   "agent not found")
    # a number-scoped key reads its own agent only, writes nothing
    assert [x["id"] for x in w.ok("GET", "/v1/agents", key=w.num_key)["data"]] == [w.agent]
    assert w.ok("GET", "/v1/agents/" + w.agent, key=w.num_key)["number"] == NUMBER_A
    same_error(w.req("GET", "/v1/agents/" + w.agent2, key=w.num_key), 404, "not_found",
               "agent not found")
    same_error(w.req("POST", "/v1/agents", {"name": "x"}, key=w.num_key), 403, "forbidden",
               "creating agents needs a tenant-scoped or an operator key")
    same_error(w.req("PATCH", "/v1/agents/" + w.agent, {"record": True}, key=w.num_key), 403,
               "forbidden", "changing agents needs a tenant-scoped or an operator key")
    assert w.ok("GET", "/v1/agents/" + w.agent, key=w.key)["record"] is False
    # no DELETE: an agent's calls keep naming it (docs/API.md)
    r = w.req("DELETE", "/v1/agents/" + w.agent, key=w.op)
    assert r.status == 405 and r.json["error"]["code"] == "method_not_allowed", r


@pytest.mark.parametrize("body,status,code,message", [
    ({"name": "x", "number": "5550001111"}, 400, "invalid_request",
     "number must be an E.164 number (+ and 2..15 digits)"),
    ({"name": "x", "max_duration_s": 0}, 400, "invalid_request",
     "max_duration_s must be an integer in 1..86400"),
    ({"name": "x", "max_duration_s": 86401}, 400, "invalid_request",
     "max_duration_s must be an integer in 1..86400"),
    ({"name": "x", "stream_url": "http://agent.example/"}, 400, "invalid_request",
     "stream_url must be an absolute ws:// or wss:// URL with a host, at most 1024 bytes,"
     " without spaces or control characters"),
    ({"name": "x", "goodbye_text": ""}, 400, "invalid_request",
     "goodbye_text must be 1..1000 characters of UTF-8"),
    ({"name": "x", "max_duration_goodbye": "x" * 1001}, 400, "invalid_request",
     "max_duration_goodbye must be 1..1000 characters of UTF-8"),
    ({"name": "x", "record": "yes"}, 400, "invalid_request", "record must be true or false"),
    ({"name": "x", "trunk_id": NOBODY}, 400, "invalid_request",
     "trunk_id must be one of the tenant's trunks"),
    ({"number": "+15550009999"}, 400, "invalid_request", "name is required"),
    ({"name": "x", "number": NUMBER_B}, 409, "conflict",
     "another agent already has the number " + NUMBER_B),
])
def test_agent_create_refuses_bad_input_and_creates_nothing(w, body, status, code, message):
    same_error(w.req("POST", "/v1/agents", body, key=w.key), status, code, message)
    assert [x["id"] for x in w.ok("GET", "/v1/agents", key=w.op)["data"]] == \
        [w.agent, w.agent2, w.agent_b]


def test_agent_patch_refused_changes_nothing(w):
    before = w.ok("GET", "/v1/agents/" + w.agent, key=w.key)
    for body, message in [({"record": True, "goodbye_text": ""},
                           "goodbye_text must be 1..1000 characters of UTF-8"),
                          ({"record": True, "stream_url": "ws://"},
                           "stream_url must be an absolute ws:// or wss:// URL with a host, at"
                           " most 1024 bytes, without spaces or control characters"),
                          ({"record": True, "trunk_id": NOBODY},
                           "trunk_id must be one of the tenant's trunks"),
                          ({"record": True, "name": "x"}, 'unknown field "name"'),
                          ({}, "nothing to change: give stream_url, record, goodbye_text,"
                               " max_duration_goodbye or trunk_id")]:
        same_error(w.req("PATCH", "/v1/agents/" + w.agent, body, key=w.key), 400,
                   "invalid_request", message)
    assert w.ok("GET", "/v1/agents/" + w.agent, key=w.key) == before


def test_agent_trunk_must_be_its_tenants(w):
    mine = w.cp.cli("trunk", "create", "--tenant", w.tenant, "--host", "198.51.100.1")["id"]
    theirs = w.cp.cli("trunk", "create", "--tenant", w.tenant_b, "--host", "198.51.100.2")["id"]
    same_error(w.req("PATCH", "/v1/agents/" + w.agent, {"trunk_id": theirs}, key=w.key), 400,
               "invalid_request", "trunk_id must be one of the tenant's trunks")
    assert w.ok("PATCH", "/v1/agents/" + w.agent, {"trunk_id": mine}, key=w.key)["trunk_id"] == mine
    assert w.ok("PATCH", "/v1/agents/" + w.agent, {"trunk_id": None}, key=w.key)["trunk_id"] is None


# -------------------------------------------------------------------------------- keys

KEY_FIELDS = {"id", "tenant_id", "number", "operator", "prefix", "created_at", "revoked_at",
              "rate_limit", "sip_uris"}


def test_key_created_over_http_places_a_call_and_is_revoked(w):
    k = w.ok("POST", "/v1/keys", {"rate_limit": 50}, key=w.key, status=201)
    assert set(k) == KEY_FIELDS | {"key"}, k
    assert (k["tenant_id"], k["number"], k["operator"], k["rate_limit"], k["sip_uris"],
            k["revoked_at"]) == (w.tenant, None, False, 50, None, None)
    assert k["key"].startswith("cp_") and len(k["key"]) == 51 and k["prefix"] == k["key"][:10]
    # the secret is shown once: listings never carry it, or the hash
    listed = {x["id"]: x for x in w.ok("GET", "/v1/keys", key=w.key)["data"]}
    assert listed[k["id"]] == {f: k[f] for f in KEY_FIELDS}
    assert all(set(x) == KEY_FIELDS for x in listed.values()), listed
    assert set(listed) == {w.key_id, w.num_key_id, w.narrow_id, k["id"]}
    r = w.req("POST", "/v1/calls", {"agent_id": w.agent, "to": "sip:bob@127.0.0.1:5070"}, key=k["key"])
    assert r.status == 201 and r.json["agent_id"] == w.agent, r
    assert r.headers.get("X-RateLimit-Limit") == "50", r.headers
    # revoked by another key of the tenant: refused from then on
    v = w.ok("DELETE", "/v1/keys/" + k["id"], key=w.key)
    assert v == dict({f: k[f] for f in KEY_FIELDS}, revoked_at=v["revoked_at"]) and v["revoked_at"]
    assert_recent(v["revoked_at"])
    assert w.req("GET", "/v1/calls", key=k["key"]).status == 401
    # again: the first revocation stands
    assert w.ok("DELETE", "/v1/keys/" + k["id"], key=w.op) == v


def test_key_rules_for_a_tenant_key(w):
    # its own tenant only; never an operator key; a tenant_id is refused as on /v1/calls
    same_error(w.req("POST", "/v1/keys", {"tenant_id": w.tenant_b}, key=w.key), 403,
               "forbidden", "tenant_id is for operator keys")
    same_error(w.req("POST", "/v1/keys", {"operator": True}, key=w.key), 403, "forbidden",
               "only an operator key creates operator keys")
    # a number-scoped key of its tenant is narrower: allowed
    n = w.ok("POST", "/v1/keys", {"number": NUMBER_A2}, key=w.key, status=201)
    assert (n["tenant_id"], n["number"]) == (w.tenant, NUMBER_A2)
    # a key narrowed to pbx.example never mints a wider one
    for sip in (None, "any", "pbx.example,other.example"):
        body = {} if sip is None else {"sip_uris": sip}
        same_error(w.req("POST", "/v1/keys", body, key=w.narrow), 403, "forbidden",
                   "sip_uris must not widen the creating key's sip_uris (pbx.example)")
    for sip in ("pbx.example", "none"):
        got = w.ok("POST", "/v1/keys", {"sip_uris": sip}, key=w.narrow, status=201)
        assert got["sip_uris"] == sip
    # another tenant's keys: not found, not listed
    same_error(w.req("DELETE", "/v1/keys/" + w.key_b_id, key=w.key), 404, "not_found",
               "key not found")
    assert {x["id"] for x in w.ok("GET", "/v1/keys", key=w.key_b)["data"]} == {w.key_b_id}
    # itself: refused, so a client does not lock itself out by mistake
    same_error(w.req("DELETE", "/v1/keys/" + w.key_id, key=w.key), 409, "conflict",
               "a key cannot revoke itself; revoke it with another key or `callplane key revoke`")
    assert w.req("GET", "/v1/keys", key=w.key).status == 200
    # a number-scoped key manages no keys
    for method, path, body in (("GET", "/v1/keys", None), ("POST", "/v1/keys", {}),
                               ("DELETE", "/v1/keys/" + w.num_key_id, None)):
        same_error(w.req(method, path, body, key=w.num_key), 403, "forbidden",
                   "managing keys needs a tenant-scoped or an operator key")
    assert w.req("GET", "/v1/calls", key=w.num_key).status == 200


def test_key_rules_for_an_operator_key(w):
    op2 = w.ok("POST", "/v1/keys", {"operator": True}, key=w.op, status=201)
    assert (op2["operator"], op2["tenant_id"], op2["number"]) == (True, None, None)
    assert w.req("GET", "/v1/tenants", key=op2["key"]).status == 200
    same_error(w.req("POST", "/v1/keys", {"operator": True, "tenant_id": w.tenant}, key=w.op),
               400, "invalid_request", "tenant_id is not for an operator key")
    same_error(w.req("POST", "/v1/keys", {}, key=w.op), 400, "invalid_request",
               "tenant_id must be a tenant id")
    same_error(w.req("POST", "/v1/keys", {"tenant_id": NOBODY}, key=w.op), 404, "not_found",
               "tenant not found")
    b = w.ok("POST", "/v1/keys", {"tenant_id": w.tenant_b, "sip_uris": "any"}, key=w.op, status=201)
    assert (b["tenant_id"], b["sip_uris"]) == (w.tenant_b, "any")
    only_b = {x["id"] for x in w.ok("GET", "/v1/keys?tenant_id=" + w.tenant_b, key=w.op)["data"]}
    assert only_b == {w.key_b_id, b["id"]}
    every = {x["id"] for x in w.ok("GET", "/v1/keys", key=w.op)["data"]}
    assert every == {w.key_id, w.num_key_id, w.narrow_id, w.key_b_id, w.op_id, op2["id"], b["id"]}
    same_error(w.req("DELETE", "/v1/keys/" + w.op_id, key=w.op), 409, "conflict",
               "a key cannot revoke itself; revoke it with another key or `callplane key revoke`")
    assert w.ok("DELETE", "/v1/keys/" + w.key_b_id, key=w.op)["revoked_at"]
    assert w.req("GET", "/v1/calls", key=w.key_b).status == 401
    same_error(w.req("DELETE", "/v1/keys/" + NOBODY, key=w.op), 404, "not_found", "key not found")


@pytest.mark.parametrize("body,message", [
    ({"number": "555"}, "number must be an E.164 number (+ and 2..15 digits)"),
    ({"rate_limit": 0}, "rate_limit must be an integer in 1..1000000"),
    ({"rate_limit": 1000001}, "rate_limit must be an integer in 1..1000000"),
    ({"sip_uris": "*.example"}, "sip_uris " + SIP_RULE),
    ({"operator": "yes"}, "operator must be true or false"),
    ({"secret": "mine"}, 'unknown field "secret"'),
])
def test_key_create_refuses_bad_input_and_creates_nothing(w, body, message):
    same_error(w.req("POST", "/v1/keys", body, key=w.key), 400, "invalid_request", message)
    assert {x["id"] for x in w.ok("GET", "/v1/keys", key=w.key)["data"]} == \
        {w.key_id, w.num_key_id, w.narrow_id}


def test_cli_and_api_refuse_alike(w):
    """The CLI and the API share their rules (admin/admin.c): the same value is refused by
    both, the field named as each front end spells it."""
    rc, out, errtext = w.cp.cli_raw("tenant", "create", "--name", "x", "--sip-uris", "*")
    assert (rc, out) == (2, "") and "error: --sip-uris " + SIP_RULE + ": *" in errtext
    same_error(w.req("POST", "/v1/tenants", {"name": "x", "sip_uris": "*"}, key=w.op), 400,
               "invalid_request", "sip_uris " + SIP_RULE)
    rc, out, errtext = w.cp.cli_raw("agent", "update", w.agent, "--goodbye-text", "x" * 1001)
    assert (rc, out) == (2, "") and \
        "error: --goodbye-text must be 1..1000 characters of UTF-8" in errtext
    same_error(w.req("PATCH", "/v1/agents/" + w.agent, {"goodbye_text": "x" * 1001}, key=w.key),
               400, "invalid_request", "goodbye_text must be 1..1000 characters of UTF-8")


# ------------------------------------------------------------------------------ trunks

TRUNK = {"host": "198.51.100.1:5060", "user": "acme", "password_env": "CARRIER_PW",
         "caller_id_header": "pai", "inbound_cidrs": "198.51.100.0/24,10.0.0.0/8",
         "headers": ["X-Account: 42"]}


def test_trunk_round_trip_with_a_tenant_key(w):
    t = w.ok("POST", "/v1/trunks", TRUNK, key=w.key, status=201)
    assert is_uuid(t["id"]), t
    assert_recent(t["created_at"])
    assert {k: v for k, v in t.items() if k not in ("id", "created_at")} == {
        "tenant_id": w.tenant, "host": "198.51.100.1", "port": 5060, "transport": "udp",
        "user": "acme", "password_env": "CARRIER_PW", "password_file": None, "register": False,
        "outbound_proxy": None, "from_user": None, "from_domain": None, "caller_id_header": "pai",
        "inbound_cidrs": ["198.51.100.0/24", "10.0.0.0/8"], "headers": ["X-Account: 42"],
        "registration": None, "srtp": "off"}
    assert w.ok("GET", "/v1/trunks/" + t["id"], key=w.key) == t
    assert w.ok("GET", "/v1/trunks", key=w.key)["data"] == [t]
    assert w.cp.cli("trunk", "list", "--tenant", w.tenant)["data"] == [t]
    # in use by an agent: not deleted until the agent moves
    assert w.ok("PATCH", "/v1/agents/" + w.agent, {"trunk_id": t["id"]}, key=w.key)["trunk_id"] == t["id"]
    same_error(w.req("DELETE", "/v1/trunks/" + t["id"], key=w.key), 409, "conflict",
               "the trunk is used by agents: move them first")
    w.ok("PATCH", "/v1/agents/" + w.agent, {"trunk_id": None}, key=w.key)
    assert w.ok("DELETE", "/v1/trunks/" + t["id"], key=w.key) == {"id": t["id"], "deleted": True}
    same_error(w.req("GET", "/v1/trunks/" + t["id"], key=w.key), 404, "not_found", "trunk not found")
    assert w.ok("GET", "/v1/trunks", key=w.key)["data"] == []


def test_trunk_over_tls_with_srtp(w):
    """transport and srtp as `trunk create` takes them, by the same rules."""
    t = w.ok("POST", "/v1/trunks", {"host": "carrier.example:5061", "transport": "tls",
                                    "srtp": "required"}, key=w.key, status=201)
    assert (t["host"], t["port"], t["transport"], t["srtp"]) == \
        ("carrier.example", 5061, "tls", "required"), t
    assert w.cp.cli("trunk", "list", "--tenant", w.tenant)["data"] == [t]
    same_error(w.req("POST", "/v1/trunks", {"host": "h", "srtp": "sometimes"}, key=w.key), 400,
               "invalid_request", "srtp must be off, optional or required, got 'sometimes'")
    same_error(w.req("POST", "/v1/trunks", {"host": "h", "transport": "sctp"}, key=w.key), 400,
               "invalid_request", "transport must be udp, tcp or tls, got 'sctp'")
    rc, out, errtext = w.cp.cli_raw("trunk", "create", "--tenant", w.tenant, "--host", "h",
                                    "--srtp", "sometimes")
    assert (rc, out) == (2, "") and \
        "error: --srtp must be off, optional or required, got 'sometimes'" in errtext
    assert [x["id"] for x in w.ok("GET", "/v1/trunks", key=w.key)["data"]] == [t["id"]]


def test_trunk_routes_by_key(w):
    b = w.ok("POST", "/v1/trunks", {"tenant_id": w.tenant_b, "host": "198.51.100.2"}, key=w.op,
             status=201)
    assert b["tenant_id"] == w.tenant_b
    same_error(w.req("POST", "/v1/trunks", {"host": "198.51.100.2"}, key=w.op), 400,
               "invalid_request", "tenant_id must be a tenant id")
    same_error(w.req("POST", "/v1/trunks", {"tenant_id": NOBODY, "host": "h"}, key=w.op), 404,
               "not_found", "tenant not found")
    same_error(w.req("POST", "/v1/trunks", {"tenant_id": w.tenant_b, "host": "h"}, key=w.key), 403,
               "forbidden", "tenant_id is for operator keys")
    for method in ("GET", "DELETE"):
        same_error(w.req(method, "/v1/trunks/" + b["id"], key=w.key), 404, "not_found",
                   "trunk not found")
    assert w.ok("GET", "/v1/trunks", key=w.key)["data"] == []
    assert [x["id"] for x in w.ok("GET", "/v1/trunks?tenant_id=" + w.tenant_b, key=w.op)["data"]] == [b["id"]]
    for method, path, body in (("GET", "/v1/trunks", None), ("POST", "/v1/trunks", {"host": "h"}),
                               ("GET", "/v1/trunks/" + b["id"], None),
                               ("DELETE", "/v1/trunks/" + b["id"], None)):
        same_error(w.req(method, path, body, key=w.num_key), 403, "forbidden",
                   "managing trunks needs a tenant-scoped or an operator key")
    assert w.ok("GET", "/v1/trunks/" + b["id"], key=w.op)["id"] == b["id"]


@pytest.mark.parametrize("body,message", [
    ({"host": "h", "user": "acme", "password": "hunter2"},
     "password is never sent: name an environment variable (password_env) or a file"
     " (password_file) the server reads"),
    ({"host": "a b"}, "host must be HOST[:PORT] (a host name or an IP address, IPv6 in brackets"
                      " when a port follows), got 'a b'"),
    ({}, "host must be HOST[:PORT] (a host name or an IP address, IPv6 in brackets when a port"
         " follows), got ''"),
    ({"host": "h", "transport": "tls1"}, "transport must be udp, tcp or tls, got 'tls1'"),
    ({"host": "h", "user": "u"}, "user needs its password: password_env VAR or password_file FILE"
                                 " (one of them)"),
    ({"host": "h", "register": True}, "register needs user (the registered user)"),
    ({"host": "h", "user": "u", "password_env": "1A"},
     "password_env must be an environment variable's name ([A-Za-z_][A-Za-z0-9_]*), got '1A'"),
    ({"host": "h", "user": "u", "password_file": "pw.txt"},
     "password_file must be an absolute path of at most 1024 bytes"),
    ({"host": "h", "inbound_cidrs": "10.0.0.0/33"},
     "inbound_cidrs must be CIDR[,CIDR...]: '10.0.0.0/33' is not IP or IP/BITS"),
    ({"host": "h", "headers": ["X-A: b\r\nVia: c"]},
     "headers 'X-A: b\\x0d\\x0aVia: c': a header value is printable text on one line"),
    ({"host": "h", "headers": "X-A: b"}, "headers must be an array of at most 16 strings"),
    ({"host": "h", "headers": ["X-H%d: v" % i for i in range(17)]},
     "headers must be an array of at most 16 strings"),
])
def test_trunk_create_refuses_bad_input_and_creates_nothing(w, body, message):
    same_error(w.req("POST", "/v1/trunks", body, key=w.key), 400, "invalid_request", message)
    assert w.ok("GET", "/v1/trunks", key=w.op)["data"] == []


# ---------------------------------------------------------------------- webhooks/{id}

def test_webhook_get_and_patch(w):
    h = w.ok("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, key=w.key, status=201)
    shown = {k: v for k, v in h.items() if k != "secret"}
    assert w.ok("GET", "/v1/webhooks/" + h["id"], key=w.key) == shown
    p = w.ok("PATCH", "/v1/webhooks/" + h["id"], {"url": "http://127.0.0.1:9/other",
                                                   "format": "talkover", "agent_id": w.agent2},
             key=w.key)
    assert p == dict(shown, url="http://127.0.0.1:9/other", format="talkover",
                     agent_id=w.agent2), p
    assert w.ok("GET", "/v1/webhooks/" + h["id"], key=w.key) == p
    assert w.ok("GET", "/v1/webhooks", key=w.key)["data"] == [p]
    # a new signing replaces the secret, answered once; a given secret likewise
    s = w.ok("PATCH", "/v1/webhooks/" + h["id"], {"signing": "standard", "agent_id": None},
             key=w.key)
    assert s["signing"] == "standard" and s["agent_id"] is None, s
    assert s["secret"].startswith("whsec_") and s["secret"] != h["secret"], s
    r = w.ok("PATCH", "/v1/webhooks/" + h["id"], {"signing": "callplane",
                                                   "secret": "s3cret-of-16-chars-or-more"},
             key=w.key)
    assert r["secret"] == "s3cret-of-16-chars-or-more" and r["signing"] == "callplane", r
    after = w.ok("GET", "/v1/webhooks/" + h["id"], key=w.key)
    # refused changes change nothing
    for body, status, code, message in [
            ({"format": "xml", "url": "http://127.0.0.1:9/x"}, 400, "invalid_request",
             "format must be canonical, talkover or pilotstatus"),
            ({"url": "ftp://x"}, 400, "invalid_request",
             "url must be an http:// or https:// URL of at most 1024 bytes"),
            ({"signing": "standard", "secret": "not-base64-but-long"}, 400, "invalid_request",
             "a standard signing's secret must be whsec_ followed by the base64 of 24..64 bytes"),
            ({"agent_id": w.agent_b}, 404, "not_found", "agent %s not found" % w.agent_b),
            ({}, 400, "invalid_request",
             "nothing to change: give url, format, signing, agent_id or secret"),
            ({"agent_id": 5}, 400, "invalid_request", "agent_id must be a string or null")]:
        same_error(w.req("PATCH", "/v1/webhooks/" + h["id"], body, key=w.key), status, code,
                   message)
    assert w.ok("GET", "/v1/webhooks/" + h["id"], key=w.key) == after
    # scope: another tenant's is not found; a number-scoped key is refused; an operator key
    # reaches any tenant's
    for method, body in (("GET", None), ("PATCH", {"format": "canonical"})):
        same_error(w.req(method, "/v1/webhooks/" + h["id"], body, key=w.key_b), 404,
                   "not_found", "webhook not found")
        same_error(w.req(method, "/v1/webhooks/" + h["id"], body, key=w.num_key), 403,
                   "forbidden", "webhooks need a tenant-scoped key")
    assert w.ok("GET", "/v1/webhooks/" + h["id"], key=w.key) == after
    assert w.ok("GET", "/v1/webhooks/" + h["id"], key=w.op) == after
    assert after == dict(p, signing="callplane", agent_id=None), after
    changed = dict(after, format="canonical")
    assert w.ok("PATCH", "/v1/webhooks/" + h["id"], {"format": "canonical"}, key=w.op) == changed
    assert w.ok("GET", "/v1/webhooks/" + h["id"], key=w.key) == changed
