#!/usr/bin/env python3
"""callplane benchmarks: every figure next to a reference measured in the same run.

Runs on 127.0.0.1 only, every step bounded in time. Writes bench/results/<name>.json and
prints a markdown table. See bench/README.md for what each number means.

  bench.py [--quick] [--only NAME ...]

Names: reads, ends, latency, capacity, durability, kamailio.
"""
import argparse, json, os, re, shutil, signal, socket, sqlite3, statistics, subprocess
import sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CALLPLANE_BIN", os.path.join(ROOT, "build", "callplane"))
LUA = os.path.join(ROOT, "bench", "lua")
RESULTS = os.path.join(ROOT, "bench", "results")


def free_port(kind=socket.SOCK_STREAM, both=False):
    for _ in range(100):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not both:
            return port
        try:
            a = socket.socket(socket.AF_INET, socket.SOCK_STREAM); a.bind(("127.0.0.1", port)); a.close()
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", port)); b.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


class Callplane:
    """A callplane server on a fresh database, with one tenant, agent and key."""

    def __init__(self, workdir, sip=True, extra=()):
        self.dir = workdir
        self.db = os.path.join(workdir, "bench.db")
        self.http = free_port()
        self.sip = free_port(both=True) if sip else None
        self.log = os.path.join(workdir, "server.log")
        cli = lambda *a: json.loads(subprocess.check_output([BIN] + list(a) + ["--db", self.db]))
        cli("init")
        self.tenant = cli("tenant", "create", "--name", "bench", "--sip-uris", "any")["id"]
        self.agent = cli("agent", "create", "--tenant", self.tenant, "--name", "bench",
                         "--number", "+15550009999")["id"]
        self.key = cli("key", "create", "--tenant", self.tenant)["key"]
        self.start(extra)

    def start(self, extra=()):
        """Starts the server (again, once stopped) on this database."""
        argv = [BIN, "serve", "--db", self.db, "--http", "127.0.0.1:%d" % self.http,
                "--rate-limit", "0",
                "--sip", "127.0.0.1:%d" % self.sip if self.sip else "none"] + list(extra)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.logf)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("callplane did not start: " + open(self.log).read()[-2000:])

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http, path)

    def req(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url(path), data=data, method=method,
                                   headers={"Authorization": "Bearer " + self.key,
                                            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        return self.req("GET", path)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def ids(self, status, limit=None):
        out, cursor = [], None
        while True:
            q = "/v1/calls?limit=200&status=" + status + ("&cursor=" + cursor if cursor else "")
            st, body = self.get(q)
            out += [c["id"] for c in body["data"]]
            cursor = body["next_cursor"]
            if not cursor or (limit and len(out) >= limit):
                return out

    def count(self, status):
        """Calls in a status ("active" = queued, ringing, in_progress), read from the database
        file directly (WAL lets us read beside the server) so polling costs the server nothing."""
        sts = ("queued", "ringing", "in_progress") if status == "active" else (status,)
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        try:
            q = "SELECT count(*) FROM calls WHERE status IN (%s)" % ",".join("?" * len(sts))
            return db.execute(q, sts).fetchone()[0]
        finally:
            db.close()

    def count_id(self, call_id):
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        try:
            row = db.execute("SELECT status FROM calls WHERE id = ?", (call_id,)).fetchone()
            return row[0] if row else None
        finally:
            db.close()

    def log_lines(self):
        with open(self.log, "rb") as f:
            for raw in f:
                try:
                    yield json.loads(raw)
                except ValueError:
                    pass

    def stop(self, kill=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class Sipp:
    """sipp answering calls (built-in uas: 180, 200, waits for BYE), exits after n calls."""

    def __init__(self, workdir, n, timeout_s):
        self.port = free_port(socket.SOCK_DGRAM)
        self.stat = os.path.join(workdir, "sipp_stat.csv")
        self.out = open(os.path.join(workdir, "sipp.out"), "wb")
        self.proc = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.port), "-m", str(n),
             "-timeout", "%ds" % timeout_s, "-timeout_error", "-buff_size", "4194304",
             "-max_socket", "65000", "-nostdin", "-trace_stat", "-stf", self.stat,
             "-fd", "1", "-trace_err", "-error_file", os.path.join(workdir, "sipp_errors.log")],
            stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
        time.sleep(0.3)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stats(self):
        """The last statistics line, by column name ({} before the first)."""
        try:
            rows = open(self.stat).read().strip().splitlines()
        except OSError:
            return {}
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0].split(";"), rows[-1].split(";")))

    def successful(self):
        """SuccessfulCall(C) of the last statistics line."""
        v = self.stats().get("SuccessfulCall(C)")
        return int(v) if v else None

    def failures(self):
        """The non-zero cumulative failure counters of the last statistics line."""
        return {k: int(v) for k, v in self.stats().items()
                if k.startswith("Failed") and k.endswith("(C)") and v.isdigit() and int(v)}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def wrk(args, env=None, timeout=600, until=None):
    """Runs wrk; with until(), stops it (SIGINT: wrk prints its summary) as soon as until()
    is true -- wrk.thread:stop() alone does not end a run before its duration."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(["wrk"] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=e)
    deadline = time.time() + timeout
    if until:
        while p.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            if until():
                p.send_signal(signal.SIGINT)
                break
    try:
        out, _ = p.communicate(timeout=max(5, deadline - time.time()))
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for p, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\b", text, re.M):
        lat[p] = float(val) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99")}


# ---- benchmarks --------------------------------------------------------------------------

def bench_reads(work, quick):
    """GET /v1/calls/{id}: callplane vs nginx serving the same JSON as a static file.
    Like for like: nginx runs with access_log off, callplane with --log-level warn (no
    per-request log line). One more callplane run with its request log on (info) is reported
    beside, not compared."""
    dur = "5s" if quick else "10s"
    cp = Callplane(work, sip=False, extra=["--log-level", "warn"])
    try:
        st, call = cp.req("POST", "/v1/calls", {"agent_id": cp.agent, "to": "sip:bob@127.0.0.1:5999"})
        assert st == 201, call
        www = os.path.join(work, "www", "v1", "calls")
        os.makedirs(www)
        st, body = cp.get("/v1/calls/" + call["id"])
        with open(os.path.join(www, call["id"]), "w") as f:
            f.write(json.dumps(body, separators=(",", ":")))
        nport = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write("worker_processes 2; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;\n"
                    "events { worker_connections 4096; }\n"
                    "http { access_log off; default_type application/json;\n"
                    "  server { listen 127.0.0.1:%d; root %s/www; } }\n" % (work, work, nport, work))
        ng = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            runs = {"callplane": [], "nginx": []}
            hdr = ["-H", "Authorization: Bearer " + cp.key]
            for _ in range(2):   # interleaved, so drift on a shared machine hits both alike
                runs["callplane"].append(parse_wrk(wrk(["-t2", "-c64", "-d" + dur, "--latency"] + hdr +
                                                       [cp.url("/v1/calls/" + call["id"])])))
                runs["nginx"].append(parse_wrk(wrk(["-t2", "-c64", "-d" + dur, "--latency",
                                                    "http://127.0.0.1:%d/v1/calls/%s" % (nport, call["id"])])))
        finally:
            ng.terminate()
            ng.wait(timeout=10)
        best = {k: max(v, key=lambda r: r["rps"]) for k, v in runs.items()}
    finally:
        cp.stop()
    # the same database, served again with one JSON log line per request
    cp.start(["--log-level", "info"])
    try:
        with_log = parse_wrk(wrk(["-t2", "-c64", "-d" + dur, "--latency"] + hdr +
                                 [cp.url("/v1/calls/" + call["id"])]))
    finally:
        cp.stop()
    return {"callplane": best["callplane"], "nginx": best["nginx"], "runs": runs,
            "ratio": best["callplane"]["rps"] / best["nginx"]["rps"],
            "callplane_request_log": with_log}


def stalled_or(remaining, target, stall_s=3.0):
    """A stop condition for wrk: done when remaining() reaches target, or when it has not
    moved for stall_s (the load generator lost requests; the caller sweeps up after)."""
    state = {"v": None, "t": time.time()}

    def until():
        v = remaining()
        if v <= target:
            return True
        if v != state["v"]:
            state["v"], state["t"] = v, time.time()
            return False
        return time.time() - state["t"] > stall_s
    return until


def place_answered(cp, sipp, n, timeout_s):
    """Places n calls to the sipp far end and waits until all are in progress, or until no call
    is still being set up (those that failed, e.g. no RTP port, will not come up)."""
    wrk(["-t2", "-c32", "-d%ds" % timeout_s, "-s", os.path.join(LUA, "create_calls.lua"),
         cp.url("/")], env={"CP_KEY": cp.key, "CP_AGENT": cp.agent, "CP_N": str(n),
                            "CP_TO": "sip:bench@127.0.0.1:%d" % sipp.port, "CP_THREADS": "2"},
        timeout=timeout_s,
        until=stalled_or(lambda: n - cp.count("in_progress") - cp.count("failed"), 0))
    # calls that failed to set up are retried once, one by one, so the run has its n calls
    missing = n - cp.count("in_progress") - cp.count("failed")
    for _ in range(max(0, missing)):
        cp.req("POST", "/v1/calls", {"agent_id": cp.agent, "to": "sip:bench@127.0.0.1:%d" % sipp.port})
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        up = cp.count("in_progress")
        if up >= n or cp.count("queued") + cp.count("ringing") == 0:
            return up
        time.sleep(0.5)
    return cp.count("in_progress")


def end_all(cp, ids, work, delay_ms=0, conns=64, timeout_s=300):
    path = os.path.join(work, "ids.txt")
    with open(path, "w") as f:
        f.write("\n".join(ids) + "\n")
    t0 = time.time()
    out = wrk(["-t2", "-c%d" % conns, "-d%ds" % timeout_s, "-s", os.path.join(LUA, "end_calls.lua"),
               cp.url("/")], env={"CP_KEY": cp.key, "CP_IDS": path, "CP_THREADS": "2",
                                  "CP_DELAY_MS": str(delay_ms)}, timeout=timeout_s + 30,
              until=stalled_or(lambda: cp.count("in_progress"), 0))
    wall = time.time() - t0
    # wrk occasionally drops a request it built (a connection reset at the wrong moment);
    # end those directly so the run still ends every call, and say how many there were
    swept = 0
    for cid in ids:
        if cp.count_id(cid) == "in_progress":
            cp.req("POST", "/v1/calls/%s/end" % cid)
            swept += 1
    return {"wall_s": wall, "swept_after_wrk": swept}


def end_stats(cp):
    """From the server's log: completion times and API->wire latencies of API ends."""
    t, wire = [], []
    for l in cp.log_lines():
        if l.get("event") == "call_transition" and l.get("to") == "completed" and l.get("end_reason") == "ended_by_api":
            t.append(l["ts"])
            if "api_to_wire_us" in l:
                wire.append(l["api_to_wire_us"] / 1000.0)
    return t, wire


def ts_s(ts):
    return time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + int(ts[20:23]) / 1000.0


def durable_completed(cp):
    cp.stop(kill=True)      # kill -9: only what was committed survives
    db = sqlite3.connect(cp.db)
    n = db.execute("SELECT count(*) FROM calls WHERE status = 'completed' AND end_reason = 'ended_by_api'").fetchone()[0]
    db.close()
    return n


def run_ends(work, n, sync):
    cp = Callplane(work, extra=["--sync", sync, "--hangup-rate", "100000", "--rtp-ports", "10000-60000",
                                "--ring-timeout", "120"])
    sipp = Sipp(work, n, timeout_s=600)
    try:
        up = place_answered(cp, sipp, n, timeout_s=max(60, n // 100))
        ids = cp.ids("in_progress")
        res = end_all(cp, ids, work)
        rc = sipp.wait(timeout=60)
        times, wire = end_stats(cp)
        timed = sorted(times)[:len(times) - res["swept_after_wrk"]]   # the wrk phase only
        span = ts_s(timed[-1]) - ts_s(timed[0]) if len(timed) > 1 else None
        return {"calls": n, "answered": up, "ended_by_api": len(times),
                "swept_after_wrk": res["swept_after_wrk"],
                "ends_per_s": (len(timed) / span) if span else None,
                "client_wall_s": res["wall_s"], "sipp_exit": rc,
                "bye_answered": sipp.successful(), "still_active": cp.count("active"),
                "durable_completed": durable_completed(cp),
                "api_to_wire_ms_p50": pct(wire, 50), "api_to_wire_ms_p99": pct(wire, 99)}
    finally:
        sipp.kill()
        cp.stop()


def bench_ends(work, quick):
    """Twice, best of the two (as reads): a shared 2-core machine swings this one by +-20 %
    from run to run; both runs are kept in the result."""
    n = 1000 if quick else 5000
    runs = []
    for i in range(2):
        d = os.path.join(work, "run%d" % i)
        os.makedirs(d, exist_ok=True)
        runs.append(run_ends(d, n, "full"))
    best = dict(max(runs, key=lambda r: r["ends_per_s"] or 0))
    best["runs_ends_per_s"] = [r["ends_per_s"] for r in runs]
    # the checks must hold in every run, not only the best one
    best["all_runs"] = {k: min(r[k] for r in runs) for k in ("bye_answered", "durable_completed")}
    best["all_runs"]["still_active"] = max(r["still_active"] for r in runs)
    return best


def bench_durability(work, quick):
    n = 1000 if quick else 5000
    full = run_ends(os.path.join(work, "full"), n, "full")
    normal = run_ends(os.path.join(work, "normal"), n, "normal")
    return {"full": full, "normal": normal,
            "ratio_full_vs_normal": (full["ends_per_s"] or 0) / (normal["ends_per_s"] or 1)}


def bench_latency(work, quick):
    """End latency at a steady ~1000 ends/s: 19 connections, each sending its next end 14 ms
    after the previous answer (wrk paces after the response, and each request takes ~2-5 ms: ~1000/s)."""
    n = 3000 if quick else 10000
    cp = Callplane(work, extra=["--rtp-ports", "10000-60000", "--ring-timeout", "120"])
    sipp = Sipp(work, n, timeout_s=900)
    try:
        place_answered(cp, sipp, n, timeout_s=max(60, n // 100))
        ids = cp.ids("in_progress")
        res = end_all(cp, ids, work, delay_ms=14, conns=19)
        sipp.wait(timeout=60)
        times, wire = end_stats(cp)
        http_ms = [l["ms"] for l in cp.log_lines() if l.get("event") == "http_request"
                   and l.get("path", "").endswith("/end") and l.get("status") == 200]
        span = ts_s(max(times)) - ts_s(min(times)) if len(times) > 1 else None
        return {"calls": n, "ended_by_api": len(times), "rate_per_s": len(times) / span if span else None,
                "api_to_wire_ms_p50": pct(wire, 50), "api_to_wire_ms_p99": pct(wire, 99),
                "http_end_ms_p50": pct(http_ms, 50), "http_end_ms_p99": pct(http_ms, 99),
                "bye_answered": sipp.successful()}
    finally:
        sipp.kill()
        cp.stop()


def fd_limit(pid):
    """The soft RLIMIT_NOFILE of a process."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def udp_by_addr(pid, lo, hi, skip_port=None):
    """The process's UDP sockets bound on a port in lo..hi, counted by local address."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    counts = {}
    for name, fam in (("/proc/net/udp", socket.AF_INET), ("/proc/net/udp6", socket.AF_INET6)):
        with open(name) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[9] not in inodes:
                    continue
                addr, port = parts[1].split(":")
                port = int(port, 16)
                if not lo <= port <= hi or port == skip_port:
                    continue
                raw = bytes.fromhex(addr)   # 32-bit words in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                ip = socket.inet_ntop(fam, raw)
                counts[ip] = counts.get(ip, 0) + 1
    return counts


def bench_capacity(work, quick):
    """Concurrent answered calls held, and RSS per call. Each call binds an RTP socket, and one
    address has only 27,501 even ports in 10000-65000: the server binds them on two addresses
    (--rtp-addrs; Linux routes all of 127/8 to loopback)."""
    n = 2000 if quick else int(os.environ.get("CP_CAPACITY", "50000"))
    addrs = os.environ.get("CP_RTP_ADDRS", "127.0.0.1,127.0.0.2")
    lo, hi = (int(p) for p in os.environ.get("CP_RTP_PORTS", "10000-65000").split("-"))
    cp = Callplane(work, extra=["--rtp-ports", "%d-%d" % (lo, hi), "--rtp-addrs", addrs,
                                "--ring-timeout", "300", "--log-level", "warn"])
    sipp = Sipp(work, n, timeout_s=900)
    try:
        base = cp.rss_kb()
        t0 = time.time()
        up = place_answered(cp, sipp, n, timeout_s=max(60, n // 100))
        place_s = time.time() - t0
        rss = cp.rss_kb()
        by_addr = {a: k for a, k in udp_by_addr(cp.proc.pid, lo, hi, skip_port=cp.sip).items()
                   if a in addrs.split(",")}
        failed = cp.count("failed")
        # the server's start-up warning when its descriptor limit holds fewer calls than ports
        fd_cap = [l.get("max_calls") for l in cp.log_lines() if l.get("event") == "fd_limit"]
        t1 = time.time()
        st, body = cp.req("POST", "/v1/calls/end", {}, timeout=300)
        end_s = time.time() - t1
        # sipp exits after its n calls; when fewer were set up, stop once every held call's
        # BYE is answered
        deadline = time.time() + 120
        while sipp.proc.poll() is None and time.time() < deadline:
            if (sipp.successful() or 0) >= up:
                time.sleep(1.5)    # one more statistics line
                break
            time.sleep(0.5)
        return {"target": n, "held": up, "failed_setup": failed, "rtp_addrs": addrs,
                "held_by_rtp_addr": by_addr, "fd_limit": fd_limit(cp.proc.pid),
                "fd_limit_max_calls": fd_cap[0] if fd_cap else None,
                "rss_base_kb": base, "rss_kb": rss,
                "rss_per_call_kb": (rss - base) / up if up else None, "place_s": round(place_s, 1),
                "bulk_end": body, "bulk_end_s": round(end_s, 1),
                "bye_answered": sipp.successful(), "sipp_failed": sipp.failures(),
                "still_active": cp.count("active")}
    finally:
        sipp.kill()
        cp.stop()


def bench_kamailio(work, quick):
    """The reference engine: Kamailio's dialog module ending the same kind of sipp calls
    through dlg.end_dlg (bench/kamailio.py), next to callplane's ends in the same run."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kamailio as kam
    n = 1000 if quick else 5000
    ref = kam.bench_kamailio(os.path.join(work, "normal"), n)
    ours = run_ends(os.path.join(work, "full"), n, "full")
    return {"kamailio": ref, "callplane": ours,
            "ratio": (ours["ends_per_s"] or 0) / (ref.get("ends_per_s_bye_span") or ref.get("ends_per_s") or 1)}


def bench_media(work, quick):
    """Bridged calls (bench/media.py): RTP both ways and an agent stream both ways per call,
    at the goal's 1,000 calls and at a load this 2-core box carries with its generators."""
    runs = []
    for n in ([200] if quick else [500, 1000]):
        out = os.path.join(work, "media-%d.json" % n)
        # bench/media.py imports this file for its helpers: run it, do not import it
        subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "media.py"),
                        "--calls", str(n), "--hold", "5" if quick else "10", "--out", out],
                       check=True, stdout=subprocess.DEVNULL, timeout=900)
        with open(out) as f:
            runs.append(json.load(f))
    return {"runs": runs}


BENCHES = {"reads": bench_reads, "ends": bench_ends, "latency": bench_latency,
           "capacity": bench_capacity, "durability": bench_durability,
           "kamailio": bench_kamailio, "media": bench_media}


def fmt(v, nd=1):
    return "-" if v is None else ("%.*f" % (nd, v) if isinstance(v, float) else str(v))


def table(results):
    rows = ["| benchmark | callplane | reference | ratio | goal |", "|---|---|---|---|---|"]
    r = results.get("reads")
    if r:
        rows.append("| GET /v1/calls/{id}, wrk 64 conns (req/s) | %s | nginx static %s | %s | >= 0.8 |"
                    % (fmt(r["callplane"]["rps"], 0), fmt(r["nginx"]["rps"], 0), fmt(r["ratio"], 2)))
        rows.append("| GET p50 / p99 (ms) | %s / %s | %s / %s | | p99 < 2 ms |"
                    % (fmt(r["callplane"]["p50_ms"], 2), fmt(r["callplane"]["p99_ms"], 2),
                       fmt(r["nginx"]["p50_ms"], 2), fmt(r["nginx"]["p99_ms"], 2)))
        if r.get("callplane_request_log"):
            rl = r["callplane_request_log"]
            rows.append("| GET with callplane's request log on (req/s, p99 ms) | %s, %s | | %s | |"
                        % (fmt(rl["rps"], 0), fmt(rl["p99_ms"], 2), fmt(rl["rps"] / r["nginx"]["rps"], 2)))
    e = results.get("ends")
    if e:
        rows.append("| end-call throughput, %d answered calls (ends/s) | %s | | | >= 5000 |"
                    % (e["calls"], fmt(e["ends_per_s"], 0)))
        chk = e.get("all_runs", e)
        rows.append("| BYEs answered / durable completed / still active (worst run) | %s / %s / %s | | | all / all / 0 |"
                    % (chk["bye_answered"], chk["durable_completed"], chk["still_active"]))
    l = results.get("latency")
    if l:
        rows.append("| API->BYE on the wire at ~%s ends/s, p50 / p99 (ms) | %s / %s | | | p99 < 2 ms |"
                    % (fmt(l["rate_per_s"], 0), fmt(l["api_to_wire_ms_p50"], 3), fmt(l["api_to_wire_ms_p99"], 3)))
        rows.append("| end request (HTTP, incl. durable write) p50 / p99 (ms) | %s / %s | | | |"
                    % (fmt(l["http_end_ms_p50"], 2), fmt(l["http_end_ms_p99"], 2)))
    c = results.get("capacity")
    if c:
        why = ""
        if c["held"] < c["target"]:
            why = " (%d failed to set up" % c["failed_setup"]
            if c.get("fd_limit_max_calls") and c["fd_limit_max_calls"] < c["target"]:
                why += "; descriptor limit %s holds %s calls" % (c["fd_limit"], c["fd_limit_max_calls"])
            why += ")"
        rows.append("| concurrent answered calls held | %s of %s%s | | | >= 50000 |"
                    % (c["held"], c["target"], why))
        rows.append("| ... by RTP address | %s | | | |"
                    % ", ".join("%s: %d" % kv for kv in sorted(c["held_by_rtp_addr"].items())))
        rows.append("| RSS per call (KiB) | %s | | | |" % fmt(c["rss_per_call_kb"], 1))
    d = results.get("durability")
    if d:
        rows.append("| ends/s synchronous=FULL vs NORMAL | %s | NORMAL %s | %s | |"
                    % (fmt(d["full"]["ends_per_s"], 0), fmt(d["normal"]["ends_per_s"], 0),
                       fmt(d["ratio_full_vs_normal"], 2)))
    k = results.get("kamailio")
    if k:
        ref = k["kamailio"]
        rows.append("| ends/s vs Kamailio dlg.end_dlg (%d calls) | %s | Kamailio %s | %s | |"
                    % (ref.get("calls", 0), fmt(k["callplane"]["ends_per_s"], 0),
                       fmt(ref.get("ends_per_s_bye_span") or ref.get("ends_per_s"), 0), fmt(k["ratio"], 2)))
    m = results.get("media")
    for run in (m or {}).get("runs", []):
        ms = run.get("media_stats", {})
        up = "%d of %d up" % (run["up"], run["calls"])
        rows.append("| bridged calls (RTP + agent stream both ways): %s, CPU per call (%% of a core) | %s | "
                    "siphon-ai 0.54 | %s | >= 1000 calls |"
                    % (up, fmt(run["cpu_pct_of_core_per_call"], 3), fmt(run["cpu_pct_of_core_per_call"] / 0.54, 2)))
        rows.append("| ... RSS per call (KiB) / frames the agent received per 50 per call per second | %s / %s | | | |"
                    % (fmt(run["rss_kb_per_call"], 1), fmt(run["agent_in_ratio"], 3)))
        a, b = ms.get("rtp_to_agent_us", {}), ms.get("agent_to_rtp_us", {})
        rows.append("| ... RTP-in -> agent, agent -> RTP-out p99 (us) / dropped inside callplane | %s, %s / %s packets, %s bytes | | | p99 <= 1000 us, 0 |"
                    % (a.get("p99"), b.get("p99"), ms.get("rtp_dropped"), ms.get("playout_dropped_bytes")))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    names = a.only or ["reads", "ends", "latency", "capacity", "durability", "kamailio", "media"]
    os.makedirs(RESULTS, exist_ok=True)
    results = {}
    for name in names:
        work = tempfile.mkdtemp(prefix="cpbench-%s-" % name)
        os.makedirs(os.path.join(work, "full"), exist_ok=True)
        os.makedirs(os.path.join(work, "normal"), exist_ok=True)
        t0 = time.time()
        print("== %s" % name, file=sys.stderr, flush=True)
        try:
            results[name] = BENCHES[name](work, a.quick)
        except Exception as ex:   # a failed benchmark is reported, the others still run
            results[name] = {"error": repr(ex)}
            print("   failed: %r (logs in %s)" % (ex, work), file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        results[name]["seconds"] = round(time.time() - t0, 1)
        with open(os.path.join(RESULTS, name + ".json"), "w") as f:
            json.dump(results[name], f, indent=2)
    print(table({k: v for k, v in results.items() if "error" not in v}))


if __name__ == "__main__":
    main()
