"""Networks a black-box test builds for itself out of network namespaces (root, `ip netns`, veth
pairs; standard library only).

`Routed` is the shape test_nat.py and test_faults.py share: callplane in a namespace of its own,
behind a router namespace that joins it to this one (where pytest, sipp and the receivers run):

    inner ns  INNER --veth-- GATEWAY  router ns  ROUTER_OUT --veth-- OUTSIDE  (this namespace)

Each test then makes the router what it needs (NAT rules, rules that drop packets). The
namespaces and this namespace's end of the veth are named after the test process's pid, and
`remove_stale()` removes what a killed run left (its pid no longer alive); `destroy()` removes
the namespaces, which takes their ends of the veths, and this namespace's end. `built()` does
it all around a test, one such network at a time on this host, or says why it cannot.
"""

import contextlib
import fcntl
import os
import re
import shutil
import subprocess


def run(*argv):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    if p.returncode:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode()


class Routed:
    """name: the namespaces are NAME-in-PID and NAME-rt-PID; link: this namespace's end of the
    veth is LINKPID (at most 15 characters). Addresses are given with their prefix length
    (inner, router_in, router_out: a list, outside), gateway without; route_back: the inner
    network (with its length) when this namespace needs a route to it through the router."""

    def __init__(self, name, link, inner, gateway, router_in, router_out, outside,
                 route_back=None):
        tag = "%d" % os.getpid()
        self.name = name
        self.inner = "%s-in-%s" % (name, tag)
        self.router = "%s-rt-%s" % (name, tag)
        self.link_prefix = link
        self.link = link + tag
        self.addrs = (inner, gateway, router_in, list(router_out), outside, route_back)
        self.made = []

    def on(self, ns, *argv):
        return run("ip", "netns", "exec", ns, *argv)

    def create(self):
        inner, gateway, router_in, router_out, outside, route_back = self.addrs
        for ns in (self.inner, self.router):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
        i, r = self.inner, self.router
        run("ip", "link", "add", "in0", "netns", r, "type", "veth", "peer", "name", "eth0",
            "netns", i)
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", "out0", "netns", r)
        self.on(i, "ip", "addr", "add", inner, "dev", "eth0")
        self.on(i, "ip", "link", "set", "lo", "up")
        self.on(i, "ip", "link", "set", "eth0", "up")
        self.on(i, "ip", "route", "add", "default", "via", gateway)
        self.on(r, "ip", "addr", "add", router_in, "dev", "in0")
        for a in router_out:
            self.on(r, "ip", "addr", "add", a, "dev", "out0")
        for dev in ("lo", "in0", "out0"):
            self.on(r, "ip", "link", "set", dev, "up")
        self.on(r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        run("ip", "addr", "add", outside, "dev", self.link)
        run("ip", "link", "set", self.link, "up")
        if route_back:
            # goes with the link
            run("ip", "route", "add", route_back, "via", router_out[0].split("/")[0], "dev",
                self.link)

    def destroy(self):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "delete", ns], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=20)
        subprocess.run(["ip", "link", "delete", self.link], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=20)

    def remove_stale(self):
        """Removes what a killed run of the same test left (its pid no longer alive)."""
        names = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=20).stdout.decode().split()
        links = re.findall(r"^\d+: (%s\d+)[@:]" % re.escape(self.link_prefix), subprocess.run(
            ["ip", "-o", "link", "show"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            timeout=20).stdout.decode(), re.M)
        pattern = r"^(?:%s-(?:in|rt)-|%s)(\d+)$" % (re.escape(self.name),
                                                  re.escape(self.link_prefix))
        for name in names + links:
            m = re.match(pattern, name)
            if m and not os.path.exists("/proc/" + m.group(1)):
                argv = ["ip", "netns", "delete", name] if name in names else \
                    ["ip", "link", "delete", name]
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=20)


class Unavailable(Exception):
    """This host cannot build the network (the reason is the message)."""


@contextlib.contextmanager
def built(net, lock_path, tools=("ip", "iptables")):
    """net built (net.create(), after removing what killed runs left) under an exclusive lock
    on lock_path, as its addresses in this namespace are fixed; removed afterwards. Raises
    Unavailable where it cannot be built: not root, a tool missing, or create() failing."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root")
    for tool in tools:
        if not shutil.which(tool):
            raise Unavailable("%s is not installed (scripts/deps.sh test)" % tool)
    lock = open(lock_path, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        net.remove_stale()
        try:
            net.create()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable(str(e))
        yield net
    finally:
        net.destroy()
        lock.close()
