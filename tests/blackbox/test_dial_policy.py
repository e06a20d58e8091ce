"""Black-box tests of dial policies (docs/API.md, "What a key may dial"; docs/SECURITY.md): a
tenant's raw sip: URIs (`tenant create|update --sip-uris none|any|HOST,...`, default none), its
E.164 prefix lists (`--allow-prefixes`, `--deny-prefixes`), a key's narrowing
(`key create --sip-uris`); a refusal is 403 `destination_not_allowed`, with no call stored and,
with a SIP engine, no INVITE sent.

Only the canonical API places calls (the vendor dialects end calls, none dials), so the 403 has
the canonical shape.  The harness (cp.py) creates its tenants with `--sip-uris any`; these tests
make tenants of their own.
"""

import pytest

from cp import assert_cli_error, assert_error
from sipp_peer import SERVER_SIP_PORTS, Sipp, free_port, wait_for

TENANT_NONE = "sip: URIs are not allowed for this tenant"
KEY_NONE = "sip: URIs are not allowed for this key"
HOST_TENANT = "this sip: URI's host is not allowed for this tenant"
HOST_KEY = "this sip: URI's host is not allowed for this key"
REDIRECT = ("sip: URIs with a maddr parameter, headers or several '@' are not allowed where only "
            "some hosts are for this tenant")
DENIED = "this number is not allowed for this tenant: its prefix is denied"
NOT_LISTED = "this number is not allowed for this tenant: no allowed prefix starts it"


def tenant(cp, name, number, *policy):
    """A tenant with the policy options given, an agent on `number` and a key: (tenant, agent,
    key secret)."""
    t = cp.cli("tenant", "create", "--name", name, *policy)["id"]
    agent = cp.agent_create(t, name + "-agent", number=number)
    _kid, key = cp.key_create(t)
    return t, agent, key


def dial(cp, key, agent, to):
    return cp.request("POST", "/v1/calls", {"agent_id": agent, "to": to}, key=key)


def refused(cp, key, agent, to, message):
    r = dial(cp, key, agent, to)
    assert_error(r, 403, "destination_not_allowed")
    assert r.json["error"]["message"] == message, (to, r)


def allowed(cp, key, agent, to):
    r = dial(cp, key, agent, to)
    assert r.status == 201 and r.json["to"] == to, (to, r)
    return r.json["id"]


def calls_of(cp, key):
    return [c["to"] for c in cp.list_all(key=key)]


def test_matrix(cp):
    cp.start()
    _t, a_none, k_none = tenant(cp, "none", "+15550000001")
    _t, a_any, k_any = tenant(cp, "any", "+15550000002", "--sip-uris", "any")
    t_list, a_list, k_list = tenant(cp, "list", "+15550000003", "--sip-uris", "pbx.example,127.0.0.1")
    _t, a_num, k_num = tenant(cp, "numbers", "+15550000004", "--allow-prefixes", "+1,+44",
                              "--deny-prefixes", "+1900,+44871")

    # default none: no raw URI, any E.164 number
    refused(cp, k_none, a_none, "sip:bob@127.0.0.1:5070", TENANT_NONE)
    refused(cp, k_none, a_none, "sips:bob@pbx.example", TENANT_NONE)
    allowed(cp, k_none, a_none, "+33123456789")
    # any
    allowed(cp, k_any, a_any, "sip:bob@127.0.0.1:5070")
    allowed(cp, k_any, a_any, "sip:alice@anywhere.example;transport=tcp")
    # a host list: the host after the '@', any case, any port; nothing that sends elsewhere
    allowed(cp, k_list, a_list, "sip:bob@PBX.example:5061")
    allowed(cp, k_list, a_list, "sip:bob@127.0.0.1:5070")
    refused(cp, k_list, a_list, "sip:bob@127.0.0.2:5070", HOST_TENANT)
    refused(cp, k_list, a_list, "sip:bob@pbx.example.evil.example", HOST_TENANT)
    refused(cp, k_list, a_list, "sip:bob@pbx.example;maddr=evil.example", REDIRECT)
    refused(cp, k_list, a_list, "sip:bob@pbx.example?Route=%3Csip:evil.example%3E", REDIRECT)
    # a key narrows its tenant's policy, never widens it
    narrow = cp.cli("key", "create", "--tenant", t_list, "--sip-uris", "pbx.example")
    wide = cp.cli("key", "create", "--tenant", t_list, "--sip-uris", "any")
    none = cp.cli("key", "create", "--tenant", t_list, "--sip-uris", "none")
    allowed(cp, narrow["key"], a_list, "sip:bob@pbx.example")
    refused(cp, narrow["key"], a_list, "sip:bob@127.0.0.1:5070", HOST_KEY)
    refused(cp, wide["key"], a_list, "sip:bob@other.example", HOST_TENANT)
    refused(cp, none["key"], a_list, "sip:bob@pbx.example", KEY_NONE)
    allowed(cp, none["key"], a_list, "+15551234567")
    keys = {k["id"]: k["sip_uris"] for k in cp.key_list(tenant=t_list)["data"]}
    assert {keys[narrow["id"]], keys[wide["id"]], keys[none["id"]]} == {"pbx.example", "any", "none"}, keys
    # prefixes: allow list, deny list, deny wins
    allowed(cp, k_num, a_num, "+15551234567")
    allowed(cp, k_num, a_num, "+442012345678")
    refused(cp, k_num, a_num, "+19005551234", DENIED)
    refused(cp, k_num, a_num, "+448712345678", DENIED)
    refused(cp, k_num, a_num, "+33123456789", NOT_LISTED)

    # refusals stored nothing
    assert calls_of(cp, k_none) == ["+33123456789"]
    assert sorted(calls_of(cp, k_any)) == sorted(["sip:bob@127.0.0.1:5070",
                                                  "sip:alice@anywhere.example;transport=tcp"])
    assert sorted(calls_of(cp, k_list)) == sorted(["sip:bob@PBX.example:5061", "sip:bob@127.0.0.1:5070",
                                                   "sip:bob@pbx.example", "+15551234567"])
    assert sorted(calls_of(cp, k_num)) == ["+15551234567", "+442012345678"]
    # the tenant list shows each policy
    by_name = {t["name"]: t for t in cp.tenant_list()["data"]}
    assert [by_name["none"][k] for k in ("sip_uris", "allow_prefixes", "deny_prefixes")] == ["none", None, None]
    assert by_name["list"]["sip_uris"] == "pbx.example,127.0.0.1"
    assert [by_name["numbers"][k] for k in ("allow_prefixes", "deny_prefixes")] == ["+1,+44", "+1900,+44871"]


def test_update_takes_effect_at_once(cp):
    cp.start()
    t, agent, key = tenant(cp, "upd", "+15550000005", "--deny-prefixes", "+1900")
    refused(cp, key, agent, "sip:bob@127.0.0.1:5070", TENANT_NONE)
    assert cp.cli("tenant", "update", t, "--sip-uris", "any") == {"id": t}
    allowed(cp, key, agent, "sip:bob@127.0.0.1:5070")
    refused(cp, key, agent, "+19005551234", DENIED)
    cp.cli("tenant", "update", t, "--no-deny-prefixes", "--allow-prefixes", "+44")
    allowed(cp, key, agent, "+445551234")
    refused(cp, key, agent, "+19005551234", NOT_LISTED)
    row = [x for x in cp.tenant_list()["data"] if x["id"] == t][0]
    assert (row["sip_uris"], row["allow_prefixes"], row["deny_prefixes"]) == ("any", "+44", None), row


@pytest.mark.parametrize("args,message", [
    (["tenant", "create", "--name", "x", "--sip-uris", "*"],
     "error: --sip-uris must be none, any or HOST[,HOST...] (at most 255 bytes): *"),
    (["tenant", "create", "--name", "x", "--sip-uris", "any,pbx.example"],
     "error: --sip-uris must be none, any or HOST[,HOST...] (at most 255 bytes): any,pbx.example"),
    (["tenant", "create", "--name", "x", "--sip-uris", "pbx.example:5060"],
     "error: --sip-uris must be none, any or HOST[,HOST...] (at most 255 bytes): pbx.example:5060"),
    (["tenant", "create", "--name", "x", "--deny-prefixes", "1900"],
     "error: --deny-prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes): 1900"),
    (["tenant", "create", "--name", "x", "--allow-prefixes", ""],
     "error: --allow-prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes): "),
    (["key", "create", "--tenant", "T", "--sip-uris", "*.example"],
     "error: --sip-uris must be none, any or HOST[,HOST...] (at most 255 bytes): *.example"),
], ids=["star", "keyword-in-list", "port", "no-plus", "empty", "key-wildcard"])
def test_cli_policy_values_are_checked(cp, args, message):
    t = cp.tenant_create("t")
    args = [t if a == "T" else a for a in args]
    assert_cli_error(cp.cli_raw(*args), 2, message)
    assert len(cp.tenant_list()["data"]) == 1


def test_cli_update_needs_a_tenant_and_a_change(cp):
    t = cp.tenant_create("t")
    for args in (["tenant", "update", t], ["tenant", "update", "--sip-uris", "any"],
                 ["tenant", "update", t, "--deny-prefixes", "+1", "--no-deny-prefixes"]):
        rc, out, err = cp.cli_raw(*args)
        assert rc == 2 and out == "" and "tenant update needs" in err, (args, rc, out, err)
    nobody = "00000000-0000-4000-8000-000000000000"
    assert_cli_error(cp.cli_raw("tenant", "update", nobody, "--sip-uris", "any"), 1,
                     "error: no such tenant: " + nobody)


def test_refused_before_any_invite(cp, tmp_path):
    """With a SIP engine: a refused URI sends nothing to its host; allowed (after an update),
    the same URI reaches it."""
    port = free_port(udp=True, tcp=True, lo=SERVER_SIP_PORTS[0], hi=SERVER_SIP_PORTS[1])
    cp.start(extra_args=["--sip", "127.0.0.1:%d" % port])
    t, agent, key = tenant(cp, "engine", "+15550000006")
    far = Sipp(tmp_path, "uas_reject.xml", calls=1, timeout=20, subst={"STATUS": "486 Busy Here"}).start()
    try:
        to = "sip:bob@%s" % far.uri_host
        refused(cp, key, agent, to, TENANT_NONE)
        cp.cli("tenant", "update", t, "--sip-uris", "127.0.0.1")
        call_id = allowed(cp, key, agent, to)
        assert wait_for(lambda: cp.get_call(call_id, key=key)["status"] == "busy", 10), \
            cp.get_call(call_id, key=key)
        done = cp.get_call(call_id, key=key)
        assert done["sip_status"] == 486, done
        assert far.wait(15) == 0, far.report()
        # one INVITE reached the far end: the allowed call's (retransmissions share its CSeq)
        invites = far.received("INVITE")
        assert {(m.call_id, m.cseq) for m in invites} == {(done["provider_call_id"], invites[0].cseq)}, far.report()
        assert calls_of(cp, key) == [to]
    finally:
        far.stop()
