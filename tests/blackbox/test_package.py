"""The Debian package (`make deb`, docs/OPERATIONS.md "Deploy" and "Upgrade"), installed into
this machine's real system and purged again, as root.

One test walks the package's life: install (files, the system user, the state directory, the
service enabled; the unit checked with systemd-analyze verify, the man page rendered and
covering every command and serve option), the installed binary run as the user `callplane` on
the installed configuration (serving, ready, drained through its pid file by `callplane drain`),
an upgrade to a newer version (a changed conffile and the database kept), remove (the
configuration and data kept), purge (nothing left: files, user, group, enablement). systemd
does not run in this container, so the service is never started by the package; the binary is
run directly instead. The test cleans up after itself, failing or not: the package is purged.
It is skipped when not root, and when a callplane package or user already exists here (it is
not ours to remove).
"""

import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest

from cp import ROOT, free_port, tail
from sipp_peer import SERVER_SIP_PORTS, free_port as free_udp_port

LOCK = "/tmp/callplane-package-test.lock"
UNIT = "/lib/systemd/system/callplane.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/callplane.service"
FILES = ["/usr/bin/callplane", UNIT, "/usr/share/man/man1/callplane.1.gz",
         "/etc/callplane/callplane.json", "/etc/default/callplane",
         "/usr/share/doc/callplane/OPERATIONS.md", "/usr/share/doc/callplane/copyright"]


def run(*argv, timeout=600, check=True, env=None):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=env)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if check:
        assert p.returncode == 0, "%s exited %s\nstdout: %s\nstderr: %s" % (argv, p.returncode, tail(out), tail(err))
    return p.returncode, out, err


def installed_version():
    rc, out, _ = run("dpkg-query", "-W", "-f=${Status} ${Version}", "callplane", check=False)
    return out.split()[-1] if rc == 0 and out.startswith("install ok installed") else None


def dpkg(*args):
    """dpkg, waiting (bounded) for its lock if another dpkg holds it."""
    for _ in range(60):
        rc, out, err = run("dpkg", *args, check=False)
        if rc == 0 or "lock" not in err:
            break
        time.sleep(2)
    assert rc == 0, "dpkg %s exited %s\n%s\n%s" % (" ".join(args), rc, tail(out), tail(err))
    return out


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def build_debs(tmp_path):
    """The package of this tree (scripts/deb.sh over the release build) and the same package
    with a higher version, for the upgrade."""
    if not os.access(os.path.join(ROOT, "build", "callplane"), os.X_OK):
        run("make", "-C", ROOT, "--no-print-directory", "build/callplane", timeout=1800)
    v1 = os.path.join(str(tmp_path), "callplane-v1.deb")
    env = dict(os.environ, DEB_OUT=v1, DEB_VERSION="0.1.0~test1")
    _rc, out, _err = run(os.path.join(ROOT, "scripts", "deb.sh"), env=env)
    assert out.strip() == v1, out
    # v2: the same files, a newer version
    tree = os.path.join(str(tmp_path), "v2")
    run("dpkg-deb", "-R", v1, tree)
    control = os.path.join(tree, "DEBIAN", "control")
    with open(control) as f:
        text = f.read()
    assert "\nVersion: 0.1.0~test1\n" in text, text
    with open(control, "w") as f:
        f.write(text.replace("\nVersion: 0.1.0~test1\n", "\nVersion: 0.1.0~test2\n"))
    v2 = os.path.join(str(tmp_path), "callplane-v2.deb")
    run("dpkg-deb", "--root-owner-group", "--build", tree, v2)
    return v1, v2


def purge():
    if installed_version() is not None or os.path.exists("/var/lib/dpkg/info/callplane.list"):
        run("dpkg", "--purge", "callplane", check=False)
    shutil.rmtree("/run/callplane", ignore_errors=True)


def help_words(argv, pattern):
    _rc, out, _err = run(*argv)
    return sorted(set(re.findall(pattern, out)))


def check_man_page(tmp_path):
    """The installed man page renders without a warning and names every command of
    `callplane --help` and every option of `callplane serve --help`."""
    rc, text, err = run("man", "--warnings", "-E", "UTF-8", "-l", "/usr/share/man/man1/callplane.1.gz",
                        env=dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8"))
    assert err == "", err
    commands = help_words(["/usr/bin/callplane", "--help"], r"(?m)^  ([a-z]+)  ")
    assert "serve" in commands and "drain" in commands, commands
    section = text.split("\nCOMMANDS\n")[1].split("\nSERVE OPTIONS\n")[0]
    missing = [c for c in commands if not re.search(r"(?m)^ +%s\b" % c, section)]
    assert missing == [], "commands missing from the man page's COMMANDS: %s" % missing
    options = help_words(["/usr/bin/callplane", "serve", "--help"], r"--([a-z][a-z-]*[a-z])")
    assert "drain-timeout" in options and "tls-key" in options, options
    section = text.split("\nSERVE OPTIONS\n")[1].split("\nENVIRONMENT\n")[0]
    missing = [o for o in options if ("--" + o) not in section]
    assert missing == [], "serve options missing from the man page: %s" % missing


def serve_installed(tmp_path):
    """The installed binary as the service would run it (user callplane, the installed JSON
    file; the runtime directory made as systemd's RuntimeDirectory= would), on free ports; it
    serves, is ready, and `callplane drain` through the package's pid file stops it."""
    os.makedirs("/run/callplane", exist_ok=True)
    os.chown("/run/callplane", pwd.getpwnam("callplane").pw_uid, grp.getgrnam("callplane").gr_gid)
    os.chmod("/run/callplane", 0o750)
    port = free_port()
    lo, hi = SERVER_SIP_PORTS
    sip = free_udp_port(udp=True, tcp=True, lo=lo, hi=hi)
    log = open(os.path.join(str(tmp_path), "installed-serve.log"), "wb")
    proc = subprocess.Popen(["runuser", "-u", "callplane", "--", "/usr/bin/callplane", "serve",
                             "--config", "/etc/callplane/callplane.json",
                             "--http", "127.0.0.1:%d" % port, "--sip", "127.0.0.1:%d" % sip],
                            cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        import http.client
        deadline = time.monotonic() + 20
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                r = c.getresponse()
                ready = (r.status, json.loads(r.read()))
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert ready == (200, {"status": "ready", "store": "ok", "sip": "ok"}), \
            (ready, proc.poll(), open(log.name, "rb").read()[-2000:])
        db = "/var/lib/callplane/callplane.db"
        assert os.stat(db).st_uid == pwd.getpwnam("callplane").pw_uid
        with open("/run/callplane/callplane.pid") as f:
            server_pid = int(f.read())
        rc, out, err = run("/usr/bin/callplane", "drain", check=False,
                           env=dict(os.environ, CALLPLANE_PID_FILE="/run/callplane/callplane.pid"))
        assert rc == 0, (rc, out, err)
        body = json.loads(out)
        assert body["pid"] == server_pid and body["stopped"] is True, body
        assert proc.wait(timeout=20) == 0
        assert not os.path.exists("/run/callplane/callplane.pid")
        text = open(log.name, "rb").read().decode()
        assert '"event":"drained"' in text, text[-2000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_package_install_upgrade_remove_purge(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("installing a package into the system needs root")
    for tool in ("dpkg", "dpkg-deb", "dpkg-shlibdeps", "systemd-analyze", "runuser", "man"):
        assert shutil.which(tool), "%s missing: make deps-test installs it" % tool
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version() is not None or user_exists("callplane") or os.path.exists("/var/lib/callplane"):
            pytest.skip("a callplane package, user or /var/lib/callplane exists on this machine already")
        v1, v2 = build_debs(tmp_path)
        try:
            # ---- install
            dpkg("-i", v1)
            assert installed_version() == "0.1.0~test1"
            for f in FILES:
                assert os.path.isfile(f), f
            assert stat.S_IMODE(os.stat("/etc/default/callplane").st_mode) == 0o600
            u = pwd.getpwnam("callplane")
            assert u.pw_uid < 1000 and u.pw_dir == "/var/lib/callplane" and u.pw_shell == "/usr/sbin/nologin", u
            assert grp.getgrgid(u.pw_gid).gr_name == "callplane"
            st = os.stat("/var/lib/callplane")
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (u.pw_uid, u.pw_gid, 0o750)
            assert os.path.islink(WANTS) and os.readlink(WANTS) == UNIT, "the service is not enabled"
            # the unit: systemd-analyze verify says nothing about it (a warning is a failure)
            rc, out, err = run("systemd-analyze", "verify", UNIT, check=False)
            assert (rc, out, err) == (0, "", ""), (rc, out, err)
            check_man_page(tmp_path)

            # ---- the installed binary, as the service runs it
            serve_installed(tmp_path)

            # ---- upgrade: a changed conffile and the data are kept
            with open("/etc/callplane/callplane.json") as f:
                cfg = json.load(f)
            cfg["log-level"] = "warn"
            with open("/etc/callplane/callplane.json", "w") as f:
                json.dump(cfg, f)
            dpkg("-i", v2)
            assert installed_version() == "0.1.0~test2"
            with open("/etc/callplane/callplane.json") as f:
                assert json.load(f)["log-level"] == "warn"
            assert os.path.isfile("/var/lib/callplane/callplane.db")
            assert pwd.getpwnam("callplane").pw_uid == u.pw_uid

            # ---- remove: the program goes, configuration, data and user stay
            dpkg("-r", "callplane")
            assert installed_version() is None
            assert not os.path.exists("/usr/bin/callplane") and not os.path.exists(UNIT)
            assert os.path.isfile("/etc/callplane/callplane.json")
            assert os.path.isfile("/var/lib/callplane/callplane.db")
            assert user_exists("callplane")

            # ---- purge: nothing is left
            dpkg("-P", "callplane")
            for f in FILES + ["/etc/callplane", "/var/lib/callplane", WANTS]:
                assert not os.path.lexists(f), "%s left after purge" % f
            assert not user_exists("callplane") and not group_exists("callplane")
            rc, out, _err = run("dpkg-query", "-W", "callplane", check=False)
            assert rc == 1, out                      # dpkg-query(1): the package is unknown
        finally:
            purge()
