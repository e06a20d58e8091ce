"""`callplane trunk` and `agent ... --trunk` (docs/API.md, docs/CARRIERS.md): trunks stored per
tenant, every value checked before it is stored, no password in the database."""

import sqlite3

import pytest

from cp import assert_cli_error, is_ts, is_uuid

TRUNK_KEYS = {"id", "tenant_id", "host", "port", "transport", "user", "password_env",
              "password_file", "register", "outbound_proxy", "from_user", "from_domain",
              "caller_id_header", "srtp", "inbound_cidrs", "headers", "created_at", "registration"}


def trunk_create(cp, tenant, *args):
    out = cp.cli("trunk", "create", "--tenant", tenant, *args)
    assert set(out) == {"id"} and is_uuid(out["id"]), out
    return out["id"]


def test_trunk_create_list_delete(cp, tmp_path, monkeypatch):
    t1 = cp.tenant_create("t1")
    t2 = cp.tenant_create("t2")
    full = trunk_create(cp, t1, "--host", "sip.carrier.example:5080", "--transport", "tcp",
                        "--user", "acct-1", "--password-env", "CARRIER_PW", "--register",
                        "--outbound-proxy", "sip:edge.carrier.example:5070;lr",
                        "--from-user", "acct-1", "--from-domain", "carrier.example",
                        "--caller-id-header", "rpid", "--srtp", "required",
                        "--inbound-cidr", "192.0.2.77/24,2001:DB8::1/32,198.51.100.9",
                        "--header", "X-Account: 42", "--header", "P-Charge-Info: <sip:+15550001111@x>")
    monkeypatch.chdir(tmp_path)
    filed = trunk_create(cp, t1, "--host", "[2001:db8::5]:5062", "--user", "u2",
                         "--password-file", "secret.txt")
    plain = trunk_create(cp, t2, "--host", "203.0.113.5")
    lst = cp.cli("trunk", "list")
    assert [t["id"] for t in lst["data"]] == [full, filed, plain]
    for t in lst["data"]:
        assert set(t) == TRUNK_KEYS, t
        assert is_ts(t["created_at"]), t
        assert t["registration"] is None, t     # no server has reported one
    f, d, p = lst["data"]
    assert (f["tenant_id"], f["host"], f["port"], f["transport"], f["user"], f["password_env"],
            f["password_file"], f["register"], f["outbound_proxy"], f["from_user"],
            f["from_domain"], f["caller_id_header"], f["srtp"]) == \
        (t1, "sip.carrier.example", 5080, "tcp", "acct-1", "CARRIER_PW", None, True,
         "sip:edge.carrier.example:5070;lr", "acct-1", "carrier.example", "rpid", "required")
    # ranges are kept canonical: host bits cleared, a bare address is /32
    assert f["inbound_cidrs"] == ["192.0.2.0/24", "2001:db8::/32", "198.51.100.9/32"]
    assert f["headers"] == ["X-Account: 42", "P-Charge-Info: <sip:+15550001111@x>"]
    # a relative password file is kept absolute, from where the command ran
    assert (d["host"], d["port"], d["user"], d["password_env"], d["password_file"]) == \
        ("2001:db8::5", 5062, "u2", None, str(tmp_path / "secret.txt"))
    assert (p["tenant_id"], p["host"], p["port"], p["transport"], p["user"], p["register"],
            p["caller_id_header"], p["srtp"], p["inbound_cidrs"], p["headers"]) == \
        (t2, "203.0.113.5", None, "udp", None, False, "none", "off", [], [])
    assert [t["id"] for t in cp.cli("trunk", "list", "--tenant", t2)["data"]] == [plain]

    # an agent on a trunk keeps it from being deleted
    a = cp.cli("agent", "create", "--tenant", t1, "--name", "a", "--trunk", full)["id"]
    agents = {x["id"]: x for x in cp.agent_list()["data"]}
    assert agents[a]["trunk_id"] == full
    assert_cli_error(cp.cli_raw("trunk", "delete", full), 1,
                     "error: trunk %s is used by agents: move them first (agent update ID"
                     " --trunk OTHER or --no-trunk)" % full)
    assert cp.cli("agent", "update", a, "--trunk", filed) == {"id": a, "trunk_id": filed}
    assert cp.cli("agent", "update", a, "--no-trunk") == {"id": a, "trunk_id": None}
    assert {x["id"]: x for x in cp.agent_list()["data"]}[a]["trunk_id"] is None
    # another tenant's scope does not reach it
    assert_cli_error(cp.cli_raw("trunk", "delete", full, "--tenant", t2), 1,
                     "error: no such trunk: " + full)
    assert cp.cli("trunk", "delete", full) == {"id": full, "deleted": True}
    assert_cli_error(cp.cli_raw("trunk", "delete", full), 1, "error: no such trunk: " + full)
    assert [t["id"] for t in cp.cli("trunk", "list")["data"]] == [filed, plain]


def test_trunk_password_never_stored(cp, monkeypatch):
    """The database holds where the password is, never the password."""
    t = cp.tenant_create("t")
    monkeypatch.setenv("CARRIER_PW", "hunter2-secret")
    trunk_create(cp, t, "--host", "198.51.100.1", "--user", "u", "--password-env", "CARRIER_PW")
    with open(cp.db, "rb") as f:
        raw = f.read()
    db = sqlite3.connect(cp.db)
    try:
        rows = db.execute("SELECT * FROM trunks").fetchall()
    finally:
        db.close()
    assert len(rows) == 1 and "CARRIER_PW" in rows[0], rows
    assert all("hunter2" not in str(v) for v in rows[0]), rows
    assert b"hunter2" not in raw


def test_agent_trunk_must_be_its_tenants(cp):
    t1 = cp.tenant_create("t1")
    t2 = cp.tenant_create("t2")
    mine = trunk_create(cp, t1, "--host", "198.51.100.1")
    theirs = trunk_create(cp, t2, "--host", "198.51.100.2")
    assert_cli_error(cp.cli_raw("agent", "create", "--tenant", t1, "--name", "a", "--trunk", theirs),
                     1, "error: no such trunk in the tenant: " + theirs)
    assert_cli_error(cp.cli_raw("agent", "create", "--tenant", t1, "--name", "a", "--trunk", "nope"),
                     1, "error: no such trunk in the tenant: nope")
    a = cp.agent_create(t1, "a")
    assert_cli_error(cp.cli_raw("agent", "update", a, "--trunk", theirs), 1,
                     "error: no such trunk in the agent's tenant: " + theirs)
    assert_cli_error(cp.cli_raw("agent", "update", a, "--trunk", "nope"), 1,
                     "error: no such trunk in the agent's tenant: nope")
    assert_cli_error(cp.cli_raw("agent", "update", a, "--trunk", mine, "--no-trunk"), 2,
                     "error: agent update needs the agent id and at least one change, each"
                     " option at most once: --stream-url URL or --no-stream-url, --record or"
                     " --no-record, --goodbye-text TEXT or --no-goodbye-text,"
                     " --max-duration-goodbye TEXT or --no-max-duration-goodbye, --trunk ID or"
                     " --no-trunk")
    assert [x["trunk_id"] for x in cp.agent_list()["data"]] == [None]     # nothing changed
    assert_cli_error(cp.cli_raw("trunk", "create", "--tenant", "no-such-tenant", "--host", "h"), 1,
                     "error: no such tenant: no-such-tenant")


BAD = [
    (["--host", "a b"], "--host must be HOST[:PORT] (a host name or an IP address, IPv6 in brackets"
                        " when a port follows), got 'a b'"),
    (["--host", "h:0"], "--host must be HOST[:PORT] (a host name or an IP address, IPv6 in brackets"
                        " when a port follows), got 'h:0'"),
    (["--host", "h;transport=tcp"], "--host must be HOST[:PORT] (a host name or an IP address, IPv6"
                                    " in brackets when a port follows), got 'h;transport=tcp'"),
    (["--host", "h", "--transport", "sctp"], "--transport must be udp, tcp or tls, got 'sctp'"),
    (["--host", "h", "--user", "u"], "--user needs its password: --password-env VAR or"
                                     " --password-file FILE (one of them)"),
    (["--host", "h", "--user", "u", "--password-env", "A", "--password-file", "/f"],
     "--user needs its password: --password-env VAR or --password-file FILE (one of them)"),
    (["--host", "h", "--password-env", "A"], "--password-env and --password-file go with --user"),
    (["--host", "h", "--register"], "--register needs --user (the registered user)"),
    (["--host", "h", "--user", "u@x", "--password-env", "A"],
     "--user must be 1..128 of letters, digits and -_.!~*'()&=+$,;?/%, got 'u@x'"),
    (["--host", "h", "--user", "u", "--password-env", "1A"],
     "--password-env must be an environment variable's name ([A-Za-z_][A-Za-z0-9_]*), got '1A'"),
    (["--host", "h", "--outbound-proxy", "sip:p\r\nX: y"],
     "--outbound-proxy must be sip:HOST[:PORT][;params] (at most 256 bytes, no spaces), got"
     " 'sip:p\\x0d\\x0aX: y'"),
    (["--host", "h", "--from-domain", "a_b"], "--from-domain must be a host name or an IP address,"
                                              " got 'a_b'"),
    (["--host", "h", "--caller-id-header", "pani"], "--caller-id-header must be pai, rpid or none,"
                                                    " got 'pani'"),
    (["--host", "h", "--srtp", "on"], "--srtp must be off, optional or required, got 'on'"),
    (["--host", "h", "--srtp", "Required"], "--srtp must be off, optional or required, got 'Required'"),
    (["--host", "h", "--inbound-cidr", "10.0.0.0/33"],
     "--inbound-cidr must be CIDR[,CIDR...]: '10.0.0.0/33' is not IP or IP/BITS"),
    (["--host", "h", "--inbound-cidr", "10.0.0.0/8,"],
     "--inbound-cidr must be CIDR[,CIDR...]: each entry is IP or IP/BITS"),
    (["--host", "h", "--header", "Via: SIP/2.0/UDP x"],
     "--header 'Via: SIP/2.0/UDP x': the engine writes this header itself"),
    (["--host", "h", "--header", "p-asserted-identity: <sip:x@y>"],
     "--header 'p-asserted-identity: <sip:x@y>': the engine writes this header itself"),
    (["--host", "h", "--header", "v: x"],
     "--header 'v: x': a one-letter header name is a compact form of a header the engine writes"),
    (["--host", "h", "--header", "X-A: b\r\nVia: c"],
     "--header 'X-A: b\\x0d\\x0aVia: c': a header value is printable text on one line"),
    (["--host", "h", "--header", "X A: b"],
     "--header 'X A: b': a header name is a token (letters, digits, -.!%*_+`'~)"),
    (["--host", "h", "--header", "X-A:"], "--header 'X-A:': a header needs a value"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_trunk_create_refuses(cp, args, message):
    t = cp.tenant_create("t")
    assert_cli_error(cp.cli_raw("trunk", "create", "--tenant", t, *args), 2, "error: " + message)
    assert cp.cli("trunk", "list") == {"data": []}


def test_trunk_header_limit(cp):
    t = cp.tenant_create("t")
    args = []
    for i in range(17):
        args += ["--header", "X-H%d: v" % i]
    assert_cli_error(cp.cli_raw("trunk", "create", "--tenant", t, "--host", "h", *args), 2,
                     "error: option '--header' given too many times")
    trunk_create(cp, t, "--host", "h", *args[:32])
    assert len(cp.cli("trunk", "list")["data"][0]["headers"]) == 16


@pytest.mark.parametrize("args,message", [
    (["--inbound-rate", "-1"], "--inbound-rate must be 0 (no limit)..1000000"),
    (["--inbound-rate", "fast"], "--inbound-rate must be 0 (no limit)..1000000"),
    (["--allow-any-inbound=yes"], "option '--allow-any-inbound=yes' takes no value"),
])
def test_serve_refuses_bad_inbound_options(cp, args, message):
    result = cp.cli_raw("serve", "--http", "127.0.0.1:1", "--sip", "127.0.0.1:0", *args,
                        timeout=5)
    assert_cli_error(result, 2, "error: " + message)


def test_serve_config_file_allow_any_inbound(cp, tmp_path):
    """In a --config file the switch is a boolean."""
    cfg = tmp_path / "serve.json"
    cfg.write_text('{"allow-any-inbound": "yes"}')
    result = cp.cli_raw("serve", "--http", "127.0.0.1:1", "--sip", "127.0.0.1:0", "--config",
                        str(cfg), timeout=5)
    assert_cli_error(result, 2, 'error: config %s: "allow-any-inbound" must be true or false'
                     % cfg)
