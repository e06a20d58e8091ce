"""Black-box tests of the admin command line (docs/API.md, "Command line")."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from sipp_peer import free_port as sip_free_port
from cp import (assert_cli_error, assert_recent, free_port, is_ts, is_uuid,
                random_uuid)

KEY_RE = re.compile(r"^cp_[0-9a-f]{48}$")     # src/auth/auth.h: "cp_" and 48 hex digits

COMMANDS = [
    ["serve"],
    ["tenant", "create"],
    ["tenant", "list"],
    ["agent", "create"],
    ["agent", "list"],
    ["key", "create"],
    ["key", "list"],
    ["key", "revoke"],
]


def find(items, id_):
    hits = [x for x in items if x["id"] == id_]
    assert len(hits) == 1, "id %s appears %d times in %r" % (id_, len(hits), items)
    return hits[0]


def test_tenant_create_and_list(cp):
    out = cp.cli("tenant", "create", "--name", "Acme Corp")
    assert set(out) == {"id"} and is_uuid(out["id"]), out
    t2 = cp.tenant_create("second")
    assert t2 != out["id"]
    lst = cp.tenant_list()
    assert set(lst) == {"data"}, lst
    assert len(lst["data"]) == 2
    for item in lst["data"]:
        assert set(item) == {"id", "name", "created_at", "sip_uris", "allow_prefixes", "deny_prefixes"}, item
        assert is_uuid(item["id"])
        assert is_ts(item["created_at"])
        assert_recent(item["created_at"])
    assert find(lst["data"], out["id"])["name"] == "Acme Corp"
    assert find(lst["data"], t2)["name"] == "second"
    # created without a dial policy: no raw sip: URI, no prefix list; the harness's allows any
    assert {k: find(lst["data"], out["id"])[k] for k in ("sip_uris", "allow_prefixes", "deny_prefixes")} == \
        {"sip_uris": "none", "allow_prefixes": None, "deny_prefixes": None}
    assert find(lst["data"], t2)["sip_uris"] == "any"


def test_agent_create_and_list(cp):
    t1 = cp.tenant_create("t1")
    t2 = cp.tenant_create("t2")
    out = cp.cli("agent", "create", "--tenant", t1, "--name", "sales", "--number", "+15550001111",
                 "--max-duration", "120")
    assert set(out) == {"id"} and is_uuid(out["id"]), out
    a_plain = cp.agent_create(t1, "plain")
    a_t2 = cp.agent_create(t2, "other", number="+4930123456")
    lst = cp.agent_list()
    assert set(lst) == {"data"}, lst
    assert len(lst["data"]) == 3
    for item in lst["data"]:
        assert set(item) == {"id", "tenant_id", "name", "number", "max_duration_s", "created_at",
                             "stream_url", "record", "goodbye_text", "max_duration_goodbye",
                             "trunk_id"}, item
        assert is_ts(item["created_at"])
        assert item["stream_url"] is None, item
        assert item["record"] is False, item
        assert item["goodbye_text"] is None and item["max_duration_goodbye"] is None, item
        assert item["trunk_id"] is None, item
    a = find(lst["data"], out["id"])
    assert a["tenant_id"] == t1 and a["name"] == "sales" and a["number"] == "+15550001111"
    assert a["max_duration_s"] == 120
    p = find(lst["data"], a_plain)
    assert p["tenant_id"] == t1 and p["name"] == "plain" and p["number"] is None and p["max_duration_s"] is None
    o = find(lst["data"], a_t2)
    assert o["tenant_id"] == t2 and o["number"] == "+4930123456"
    # --tenant filter
    l1 = cp.agent_list(tenant=t1)
    assert sorted(x["id"] for x in l1["data"]) == sorted([out["id"], a_plain])
    l2 = cp.agent_list(tenant=t2)
    assert [x["id"] for x in l2["data"]] == [a_t2]


def test_key_create_list_revoke(cp):
    t1 = cp.tenant_create("t1")
    t2 = cp.tenant_create("t2")
    out = cp.cli("key", "create", "--tenant", t1)
    assert set(out) == {"id", "key"}, out
    assert is_uuid(out["id"]) and isinstance(out["key"], str) and KEY_RE.match(out["key"]), out
    k_num_id, k_num = cp.key_create(t1, number="+15550001111")
    k_t2_id, k_t2 = cp.key_create(t2)
    secrets = [out["key"], k_num, k_t2]
    assert len(set(secrets)) == 3

    rc, stdout, stderr = cp.cli_raw("key", "list")
    assert rc == 0, stderr
    for s in secrets:
        assert s not in stdout, "key list shows a secret"
    lst = json.loads(stdout)
    assert set(lst) == {"data"}, lst
    assert len(lst["data"]) == 3
    for item in lst["data"]:
        assert set(item) == {"id", "tenant_id", "number", "operator", "prefix", "created_at", "revoked_at", "rate_limit", "sip_uris"}, item
        assert is_ts(item["created_at"]) and item["revoked_at"] is None and item["rate_limit"] is None and item["sip_uris"] is None, item
        assert item["operator"] is False, item
        assert isinstance(item["prefix"], str) and item["prefix"], item
    k = find(lst["data"], out["id"])
    assert k["tenant_id"] == t1 and k["number"] is None
    assert k["prefix"] == out["key"][:10], (k, out)       # the secret's first 10 characters
    kn = find(lst["data"], k_num_id)
    assert kn["tenant_id"] == t1 and kn["number"] == "+15550001111"
    assert kn["prefix"] == k_num[:10], (kn, k_num)
    assert find(lst["data"], k_t2_id)["tenant_id"] == t2

    # --tenant filter
    l2 = cp.key_list(tenant=t2)
    assert [x["id"] for x in l2["data"]] == [k_t2_id]

    rev = cp.key_revoke(out["id"])
    assert rev == {"id": out["id"], "revoked": True}, rev
    rc, stdout, stderr = cp.cli_raw("key", "list")
    assert rc == 0
    for s in secrets:
        assert s not in stdout
    after = json.loads(stdout)["data"]
    r = find(after, out["id"])
    assert is_ts(r["revoked_at"]), r
    assert_recent(r["revoked_at"])
    assert find(after, k_num_id)["revoked_at"] is None
    assert find(after, k_t2_id)["revoked_at"] is None


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help(cp, words):
    rc, out, err = cp.cli_raw(*(words + ["--help"]), db=False)
    assert rc == 0, "exit %s\nstdout: %s\nstderr: %s" % (rc, out, err)
    assert out.startswith("usage: callplane %s " % words[0]) and err == "", (out, err)


# (arguments, the one `error: ...` line on stderr, or None where the usage alone answers: no
# command, or a command group without a subcommand)
BAD_USAGE = [
    ([], None),
    (["frobnicate"], "error: unknown command 'frobnicate'"),
    (["tenant"], None),
    (["tenant", "frobnicate"], "error: unknown tenant command 'frobnicate'"),
    (["agent", "frobnicate"], "error: unknown agent command 'frobnicate'"),
    (["key", "frobnicate"], "error: unknown key command 'frobnicate'"),
    (["trunk", "frobnicate"], "error: unknown trunk command 'frobnicate'"),
    (["webhook", "frobnicate"], "error: unknown webhook command 'frobnicate'"),
    (["tenant", "create"], "error: missing required option --name"),
    (["tenant", "create", "--name"], "error: option '--name' needs a value"),
    (["tenant", "create", "--name", "x", "--bogus"], "error: unknown option '--bogus'"),
    (["tenant", "list", "--bogus"], "error: unknown option '--bogus'"),
    (["agent", "create", "--name", "x"], "error: missing required option --tenant"),
    (["agent", "create", "--tenant", "TENANT"], "error: missing required option --name"),
    (["agent", "list", "--tenant"], "error: option '--tenant' needs a value"),
    (["key", "create"], "error: key create needs --tenant ID or --operator (not both)"),
    (["key", "revoke"], "error: key revoke needs the key id"),
    (["key", "list", "--bogus", "1"], "error: unknown option '--bogus'"),
    (["serve", "--bogus"], "error: unknown option '--bogus'"),
    # getopt_long's leniencies, refused: a repeated option, an option as another's value, an
    # abbreviation, a flag given a value
    (["tenant", "create", "--name", "a", "--name", "b"], "error: option '--name' given twice"),
    (["tenant", "create", "--name", "--rate-limit", "5"], "error: option '--name' needs a value"),
    (["tenant", "create", "--nam", "x"],
     "error: unknown option '--nam' (options are not abbreviated)"),
    (["agent", "create", "--tenant", "TENANT", "--name", "x", "--record=1"],
     "error: option '--record=1' takes no value"),
    (["serve", "--http", "127.0.0.1:1", "--http", "127.0.0.1:2"],
     "error: option '--http' given twice"),
]


@pytest.mark.parametrize("args,error", BAD_USAGE, ids=[" ".join(a) or "(none)" for a, _e in BAD_USAGE])
def test_bad_usage_exit_2(cp, args, error):
    t = cp.tenant_create("t")
    args = [t if a == "TENANT" else a for a in args]
    rc, out, err = cp.cli_raw(*args, db=bool(args))
    assert rc == 2, "expected exit 2 (usage), got %s\nstdout: %r\nstderr: %r" % (rc, out, err)
    assert out == "", "stdout must be empty on error: %r" % out
    lines = err.splitlines()
    assert [ln for ln in lines if ln.startswith("error: ")] == ([error] if error else []), err
    assert [ln for ln in lines if ln.startswith("usage: callplane ")] != [], "no usage: %r" % err
    # nothing was created
    assert len(cp.tenant_list()["data"]) == 1
    assert cp.agent_list()["data"] == [] and cp.key_list()["data"] == []


E164 = "--number must be an E.164 number (+ and 2..15 digits): "

# (arguments, exit code docs/API.md gives, the error line): an id that names nothing is a
# failure (1); a malformed value is a usage error (2)
BAD_VALUES = [
    (["agent", "create", "--tenant", "UNKNOWN", "--name", "x"], 1, "no such tenant: UNKNOWN"),
    (["key", "create", "--tenant", "UNKNOWN"], 1, "no such tenant: UNKNOWN"),
    (["key", "revoke", "UNKNOWN"], 1, "no such key: UNKNOWN"),
    (["agent", "create", "--tenant", "TENANT", "--name", "x", "--number", "15550001111"], 2,
     E164 + "15550001111"),
    (["agent", "create", "--tenant", "TENANT", "--name", "x", "--number", "+1"], 2, E164 + "+1"),
    (["agent", "create", "--tenant", "TENANT", "--name", "x", "--number", "+1555000111122223"], 2,
     E164 + "+1555000111122223"),
    (["agent", "create", "--tenant", "TENANT", "--name", "x", "--number", "hello"], 2, E164 + "hello"),
    (["agent", "create", "--tenant", "TENANT", "--name", "x", "--max-duration", "abc"], 2,
     "--max-duration must be an integer in 1..86400: abc"),
    (["key", "create", "--tenant", "TENANT", "--number", "12"], 2, E164 + "12"),
]


@pytest.mark.parametrize("args,code,message", [
    pytest.param(*case, id=" ".join(case[0])) for case in BAD_VALUES])
def test_bad_values_fail(cp, args, code, message):
    t = cp.tenant_create("t")
    unknown = random_uuid()

    def fill(a):
        return a.replace("UNKNOWN", unknown).replace("TENANT", t)

    result = cp.cli_raw(*[fill(a) for a in args])
    assert cp.agent_list()["data"] == [] and cp.key_list()["data"] == []
    assert_cli_error(result, code, "error: " + fill(message))


def test_serve_bad_sync_fails(cp):
    port = free_port()
    result = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % port, "--sip", "none", "--sync", "bogus")
    assert_cli_error(result, 2, "error: --sync must be full or normal")


ADVERTISE = ("error: --sip-advertise must be an IP address or host name (at most 127 bytes, "
             "no spaces or control characters)")


# written into Contact, the Request-URI and SDP as they are: a line break there would be a
# header of the value's choosing (found by fuzz/fuzz_config.c)
@pytest.mark.parametrize("option,value,message", [
    ("--sip-advertise", "192.0.2.1\r\nX-Injected: 1", ADVERTISE),
    ("--sip-advertise", "192.0.2.1 ", ADVERTISE),
    ("--sip-advertise", "a" * 128, ADVERTISE),
    ("--trunk", "sip:trunk.example.com\r\nX-Injected: 1", "error: --trunk must be sip:HOST[:PORT]"),
    ("--trunk", "sip:trunk example.com", "error: --trunk must be sip:HOST[:PORT]"),
], ids=["advertise-crlf", "advertise-space", "advertise-too-long", "trunk-crlf", "trunk-space"])
def test_serve_refuses_sip_values_that_would_break_headers(cp, tmp_path, option, value, message):
    port = free_port()
    result = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % port, "--sip", "127.0.0.1:0",
                        option, value)
    assert_cli_error(result, 2, message)
    # the same from the config file
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({option[2:]: value}))
    result = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % port, "--sip", "127.0.0.1:0",
                        "--config", str(cfg))
    assert_cli_error(result, 2, message)


def test_admin_while_server_running(cp):
    # the server creates the database; the CLI then works on it concurrently
    cp.start()
    t = cp.tenant_create("live")
    a = cp.agent_create(t, "live-agent", number="+15550003333", max_duration=60)
    kid, key = cp.key_create(t)
    assert [x["id"] for x in cp.tenant_list()["data"]] == [t]
    assert [x["id"] for x in cp.agent_list()["data"]] == [a]
    assert [x["id"] for x in cp.key_list()["data"]] == [kid]
    r = cp.request("POST", "/v1/calls", {"agent_id": a, "to": "+15557654321"}, key=key)
    assert r.status == 201, r
    assert r.json["from"] == "+15550003333" and r.json["status"] == "queued"
    # interleave more admin writes with API traffic
    for i in range(5):
        cp.agent_create(t, "extra-%d" % i)
        assert cp.request("GET", "/v1/calls/" + r.json["id"], key=key).status == 200
    assert len(cp.agent_list(tenant=t)["data"]) == 6
    # a second tenant created live is isolated
    t2 = cp.tenant_create("live-2")
    _k2, key2 = cp.key_create(t2)
    r2 = cp.request("GET", "/v1/calls/" + r.json["id"], key=key2)
    assert r2.status == 404, r2
    assert cp.request("GET", "/v1/calls", key=key2).json["data"] == []


def test_double_dash_ends_the_options(cp):
    # after "--", "--db" is the key id, not an option
    cp.tenant_create("t")
    result = cp.cli_raw("key", "revoke", "--db", cp.db, "--", "--db", db=False)
    assert_cli_error(result, 1, "error: no such key: --db")


def serve_listens_on(cp, tmp_path, args=(), env=None, config=None, log_lines=None):
    """Starts serve with args, env and config (a dict written to a file); returns the HTTP
    port its "ready" line reports, after checking it answers there. log_lines (a list)
    receives the server's log lines up to then."""
    if "--sip" not in args:
        args = ["--sip", "none"] + list(args)
    argv = [cp.bin, "serve", "--db", str(tmp_path / "serve.db")] + list(args)
    if config is not None:
        cfg = tmp_path / "serve.json"
        cfg.write_text(json.dumps(config))
        argv += ["--config", str(cfg)]
    log = open(tmp_path / "serve.log", "w+b")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log, env=dict(os.environ, **(env or {})))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            text = log.read()
            m = re.search(rb'"event":\s*"ready".*?"http":\s*"127\.0\.0\.1:(\d+)"', text)
            if m:
                if log_lines is not None:
                    log_lines += text.decode("utf-8", "replace").splitlines()
                port = int(m.group(1))
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/healthz")
                assert c.getresponse().status == 200
                c.close()
                return port
            time.sleep(0.05)
        log.seek(0)
        raise AssertionError("serve never became ready: %r" % log.read()[-2000:])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        log.close()


def test_serve_option_precedence_flag_env_file(cp, tmp_path):
    p_flag, p_env, p_file = free_port(), free_port(), free_port()
    env = {"CALLPLANE_HTTP": "127.0.0.1:%d" % p_env}
    config = {"http": "127.0.0.1:%d" % p_file}
    assert serve_listens_on(cp, tmp_path, config=config) == p_file
    assert serve_listens_on(cp, tmp_path, env=env, config=config) == p_env
    assert serve_listens_on(cp, tmp_path, ["--http", "127.0.0.1:%d" % p_flag], env=env,
                            config=config) == p_flag


def test_serve_config_takes_integers(cp, tmp_path):
    port = free_port()
    # an integer is the option's value: accepted in range, checked as the flag's text is
    assert serve_listens_on(cp, tmp_path, ["--http", "127.0.0.1:%d" % port],
                            config={"http-threads": 2, "rate-limit": 0,
                                    "webhooks-per-tenant": 5}) == port
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"webhooks-per-tenant": 0}))
    result = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % port, "--sip", "none",
                        "--config", str(cfg))
    assert_cli_error(result, 2, "error: --webhooks-per-tenant must be 1..%d" % 10000)


@pytest.mark.parametrize("value,message", [
    (1.5, 'error: config CFG: "rate-limit" must be a string or an integer'),
    (True, 'error: config CFG: "rate-limit" must be a string or an integer'),
    (None, 'error: config CFG: "rate-limit" must be a string or an integer'),
], ids=["real", "boolean", "null"])
def test_serve_config_refuses_other_types(cp, tmp_path, value, message):
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"rate-limit": value}))
    result = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_port(), "--sip", "none",
                        "--config", str(cfg))
    assert_cli_error(result, 2, message.replace("CFG", str(cfg)))


def test_serve_bad_value_from_env_fails(cp):
    result = cp.cli_raw("serve", "--http", "127.0.0.1:%d" % free_port(), "--sip", "none",
                        env={"CALLPLANE_SYNC": "bogus"})
    assert_cli_error(result, 2, "error: --sync must be full or normal")


@pytest.mark.parametrize("args", [["tenant", "list"], ["tenant", "create", "--name", "x"],
                                  ["agent", "list"], ["key", "list"], ["webhook", "list"]],
                         ids=lambda a: " ".join(a))
def test_admin_on_a_missing_database_says_so(cp, tmp_path, args):
    db = str(tmp_path / "typo" / "callplane.db")
    result = cp.cli_raw(*(args + ["--db", db]), db=False)
    assert_cli_error(result, 1, "error: no database at %s (`callplane init --db %s` creates one, "
                                "as `callplane serve` does)" % (db, db))
    assert not os.path.exists(str(tmp_path / "typo"))   # nothing was created


def test_init_creates_then_keeps_the_database(cp, tmp_path):
    db = str(tmp_path / "new" / "callplane.db")
    assert cp.cli_raw("init", "--db", db, db=False, timeout=10)[:2] == (
        0, json.dumps({"db": db, "created": True}, separators=(",", ":")) + "\n")
    t = json.loads(cp.cli_raw("tenant", "create", "--name", "x", "--db", db, db=False)[1])["id"]
    assert cp.cli_raw("init", "--db", db, db=False, timeout=10)[:2] == (
        0, json.dumps({"db": db, "created": False}, separators=(",", ":")) + "\n")
    listed = json.loads(cp.cli_raw("tenant", "list", "--db", db, db=False)[1])["data"]
    assert [x["id"] for x in listed] == [t]


def outgoing_address():
    """The address the kernel sends from towards TEST-NET-1 (nothing is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    finally:
        s.close()


def test_sip_on_every_address_advertises_the_outgoing_one(cp, tmp_path):
    lines = []
    serve_listens_on(cp, tmp_path, ["--sip", "0.0.0.0:%d" % sip_free_port(udp=True, tcp=True),
                                    "--http", "127.0.0.1:%d" % sip_free_port(udp=False, tcp=True)],
                     log_lines=lines)
    chosen = [json.loads(ln) for ln in lines if '"sip_advertise_chosen"' in ln]
    assert [c["address"] for c in chosen] == [outgoing_address()]
    assert outgoing_address() != "127.0.0.1"


def test_sip_on_every_address_without_a_route_refuses_to_start(cp):
    # a network namespace of our own: only a loopback interface, no route out
    port = sip_free_port(udp=True, tcp=True)
    result = cp.cli_raw("serve", "--http", "127.0.0.1:1", "--sip", "0.0.0.0:%d" % port,
                        timeout=10, unshare=True)
    assert_cli_error(result, 2, "error: --sip 0.0.0.0:%d listens on every address, and this host "
                                "has no route out to take an address from for Contact and SDP: "
                                "give --sip-advertise IP" % port)
