"""Kamailio (Debian `kamailio`) as the carrier of black-box tests (standard library only).

`Kamailio` runs tests/blackbox/kamailio/carrier.cfg on 127.0.0.1 (UDP and TCP on one free port)
with a db_text directory of its own in the test's temporary directory: a `subscriber` table with
the users and passwords the test gives, which its registrar and its INVITE challenges check.
The config's defines come from the constructor: callplane's SIP port (INVITEs from it are
challenged and relayed to `uas_uri`), the DID user (INVITEs from anyone else go to that user's
registered contact), and the expiries it grants. With `tls` it listens on a TLS port as well
(the tls module, Debian `kamailio-tls-modules`, its profiles in a tls.cfg of its own). Every
request it sees is one `CPT|...` line in its log, which `requests()` parses. `stop()` ends its
process group (it forks workers); call it in teardown.
"""

import os
import shutil
import signal
import subprocess
import time

from sipp_peer import free_port, read_text, stop_group, udp_bound

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "kamailio", "carrier.cfg")


def kamailio_binary():
    return os.environ.get("KAMAILIO_BIN") or shutil.which("kamailio") or "/usr/sbin/kamailio"


class Request:
    """One request Kamailio logged: method, source address, Request-URI, From user, when it
    arrived (`at`, Unix seconds), its Expires header, the user of its credentials ("" for
    none) and the transport it came over (`proto`: udp, tcp, tls)."""

    def __init__(self, method, src_ip, src_port, ruri, from_user, sec, usec, expires, auth_user,
                 proto):
        self.method = method
        self.src_ip = src_ip
        self.src_port = int(src_port) if src_port.isdigit() else None
        self.ruri = ruri
        self.from_user = from_user
        self.at = int(sec) + int(usec) / 1e6
        self.expires = expires if expires != "<null>" else ""
        self.auth_user = auth_user if auth_user != "<null>" else ""
        self.proto = proto

    def __repr__(self):
        return "<%s %s from %s:%s>" % (self.method, self.ruri, self.src_ip, self.src_port)


class Kamailio:
    def __init__(self, workdir, cp_port, users, uas_uri="sip:127.0.0.1:9", did_user="trunkuser",
                 min_expires=10, max_expires=20, tls=None):
        """tls: None, or (certificate, key, CA file) of a TLS listener as well (`tls_port`),
        presenting that certificate and, when it connects to a TLS contact, requiring one
        signed by that CA."""
        self.dir = os.path.join(str(workdir), "kamailio")
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "db")
        os.makedirs(self.db, exist_ok=True)
        self.cp_port = cp_port
        self.users = dict(users)
        self.uas_uri = uas_uri
        self.did_user = did_user
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.port = None
        self.tls = tls
        self.tls_port = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "kamailio.log")
        self._log = None

    def _write_db(self):
        with open(os.path.join(self.db, "version"), "w") as f:
            f.write("id(int,auto) table_name(string) table_version(int)\n"
                    "0:subscriber:7\n0:location:9\n0:location_attrs:1\n")
        with open(os.path.join(self.db, "subscriber"), "w") as f:
            f.write("id(int,auto) username(string) domain(string) password(string) "
                    "ha1(string,null) ha1b(string,null)\n")
            for i, (user, password) in enumerate(sorted(self.users.items()), 1):
                f.write("%d:%s:127.0.0.1:%s:::\n" % (i, user, password))

    def argv(self):
        return [kamailio_binary(), "-DD", "-E", "-f", CFG,
                "-l", "udp:127.0.0.1:%d" % self.port, "-l", "tcp:127.0.0.1:%d" % self.port,
                "-A", "CP_PORT=%d" % self.cp_port, "-A", 'UAS_URI="%s"' % self.uas_uri,
                "-A", 'DBURL="text://%s"' % self.db, "-A", 'DID_USER="%s"' % self.did_user,
                "-A", "MIN_EXPIRES=%d" % self.min_expires,
                "-A", "MAX_EXPIRES=%d" % self.max_expires,
                "-Y", self.dir, "-w", self.dir, "-P", os.path.join(self.dir, "kamailio.pid"),
                "-m", "64", "-M", "16", "-n", "1", "-N", "1"] + (
                    ["-l", "tls:127.0.0.1:%d" % self.tls_port,
                     "-A", 'TLS_CFG="%s"' % self._tls_cfg()] if self.tls else [])

    def _tls_cfg(self):
        """The tls module's profiles: as a server (callplane's trunk connects) it presents the
        certificate and asks for none; as a client (a call to callplane's TLS contact) it
        verifies the server's chain against the CA and refuses a server without one."""
        cert, key, ca = self.tls
        path = os.path.join(self.dir, "tls.cfg")
        with open(path, "w") as f:
            f.write("[server:default]\nmethod = TLSv1.2+\ncertificate = %s\nprivate_key = %s\n"
                    "verify_certificate = no\nrequire_certificate = no\n\n"
                    "[client:default]\nmethod = TLSv1.2+\nca_list = %s\n"
                    "verify_certificate = yes\nrequire_certificate = yes\n" % (cert, key, ca))
        return path

    def start(self):
        self._write_db()
        for _attempt in range(3):
            self.port = free_port(udp=True, tcp=True)
            if self.tls:
                self.tls_port = free_port(udp=False, tcp=True)
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(self.argv(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                if udp_bound(self.port):
                    return self
                time.sleep(0.05)
            self.stop()
        raise AssertionError("kamailio did not start:\n%s" % self.log()[-3000:])

    @property
    def uri_host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def tls_host(self):
        return "127.0.0.1:%d" % self.tls_port

    def stop(self):
        """SIGTERM to its process group, SIGKILL to what is left; reaps it. Safe twice."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            stop_group(self.proc, 5)
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # workers the leader left
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self):
        return read_text(self.log_path)

    def requests(self, method=None):
        """Every request it logged (in order), or those of one method."""
        out = []
        for line in self.log().splitlines():
            i = line.find("CPT|")
            if i < 0:
                continue
            parts = line[i:].split("|")
            if len(parts) != 11:
                continue
            r = Request(*parts[1:])
            if method is None or r.method == method:
                out.append(r)
        return out

    def saved(self):
        """How many REGISTERs it saved (accepted with good credentials)."""
        return sum(1 for line in self.log().splitlines() if "CPT-SAVED|" in line)

    def report(self):
        return "kamailio (127.0.0.1:%s) log tail:\n%s" % (self.port, "\n".join(self.log().splitlines()[-40:]))
