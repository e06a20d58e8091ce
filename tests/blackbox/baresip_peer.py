"""A real baresip (1.0.0, Debian's baresip-core) as the far end of black-box media tests.

`Baresip` runs one `baresip -f DIR` with its own config directory in the test's temp dir:

- SIP on 127.0.0.1:PORT (UDP and TCP; baresip also binds TCP PORT+1 for TLS, so PORT+1 must be
  free too), all addresses (SDP included) 127.0.0.1 through `net_interface 127.0.0.1`; with
  `tls_certificate` (one PEM file: certificate, then its key) its TLS listener on PORT+1
  presents that certificate (`tls_uri` calls it there);
- one account `<sip:USER@127.0.0.1:PORT>;regint=0;answermode=auto|manual;audio_codecs=...`;
- G.711 (g711.so) with telephone-event; audio source `aufile,<tone.wav>` (8 kHz mono S16LE: a
  sine generated here), audio player `aubridge,<name>` (a device nobody reads: a sink);
- `sndfile.so` dumps, per call, what baresip sends (`*-enc.wav`) and what it decoded from the
  RTP it received (`*-dec.wav`), 8 kHz mono 16-bit, in `snd_path`, named
  `dump-YYYY-MM-DD-HH-MM-SS-{enc,dec}.wav` (local time of the audio start: two calls that start
  in the same second overwrite each other -- one call per Baresip);
- `jitter_buffer_delay MIN-MAX` (frames) when `jitter_buffer` is given, else baresip's default
  (5-10): decoded frames reach the `*-dec.wav` dump only once that many are buffered, so at a
  hang-up the last MIN frames received are never dumped;
- `rtp_timeout N`: N seconds without RTP in ends the call (log "stream: no audio RTP packets
  received for N milliseconds", event CALL_CLOSED with param "rtp stream error"), armed when
  the call is established;
- `mediaenc`: SRTP with SDES keys (`srtp.so`): "srtp" offers RTP/AVP with a=crypto and takes a
  plain answer (best effort), "srtp-mand" offers RTP/SAVP and takes nothing else; None: no
  srtp.so, plain RTP/AVP only (an RTP/SAVP offer is refused);
- `ctrl_tcp.so` on 127.0.0.1:CTRL: netstring-framed JSON.  Commands (menu.so):
  `{"command":"dial","params":"sip:...","token":"t"}`, `hangup`, `accept`,
  `sndcode` (params: the digits, sent as RFC 4733 events); responses are
  `{"response":true,"ok":...,"data":...,"token":...}`; every call event arrives as
  `{"event":true,"type":"CALL_ESTABLISHED"|"CALL_CLOSED"|"CALL_DTMF_START"|...,"param":...}`.
  CALL_DTMF_START's param is the received digit.  The reader thread records them all.

stdout/stderr go to baresip.log in the config dir (the status line is off: statmode_default off).
`stop()` quits it (SIGTERM, then SIGKILL); call it in teardown.
"""

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

import media_audio
from sipp_peer import can_bind, read_text

BARESIP = os.environ.get("BARESIP_BIN", "/usr/bin/baresip")
MODULE_PATH = os.environ.get("BARESIP_MODULES", "/usr/lib/baresip/modules")

_taken = set()


def _free_port(lo, hi, need):
    """A port p in [lo, hi) with every (kind, p+offset) of `need` bindable and not handed out."""
    for _ in range(300):
        p = random.randrange(lo, hi)
        span = {p + off for _k, off in need}
        if span & _taken:
            continue
        if all(can_bind(k, p + off) for k, off in need):
            _taken.update(span)
            return p
    raise AssertionError("no free port in %d..%d" % (lo, hi))


def _netstring(b):
    return str(len(b)).encode() + b":" + b + b","


class Baresip:
    """One baresip process.  `uri` is where to call it; `events` holds (time, dict) of every
    ctrl_tcp event; `dec_samples()` what it received, `enc_samples()` what it sent."""

    def __init__(self, tmpdir, name="far", user="bob", tone_hz=440, tone_s=60, answermode="auto",
                 rtp_timeout=3, codecs="PCMU,PCMA", amplitude=8000, jitter_buffer=None, mediaenc=None,
                 tls_certificate=None):
        self.name = name
        self.user = user
        self.dir = os.path.join(str(tmpdir), "baresip-" + name)
        self.snd_dir = os.path.join(self.dir, "snd")
        self.log_path = os.path.join(self.dir, "baresip.log")
        self.tone_hz = tone_hz
        self.tone_s = tone_s
        self.answermode = answermode
        self.rtp_timeout = rtp_timeout
        self.codecs = codecs
        self.amplitude = amplitude
        self.jitter_buffer = jitter_buffer
        self.mediaenc = mediaenc
        self.tls_certificate = tls_certificate
        self.proc = None
        self.sock = None
        self.port = None
        self.ctrl_port = None
        self.events = []          # (monotonic time, event dict)
        self.responses = []       # response dicts
        self._cv = threading.Condition()
        self._reader = None
        self._logf = None
        self._token = 0

    # ------------------------------------------------------------------ setup
    @property
    def uri(self):
        return "sip:%s@127.0.0.1:%d" % (self.user, self.port)

    @property
    def tls_uri(self):
        return "sip:%s@127.0.0.1:%d;transport=tls" % (self.user, self.port + 1)

    def _write_config(self):
        os.makedirs(self.snd_dir, exist_ok=True)
        wav = os.path.join(self.dir, "tone-%d.wav" % self.tone_hz)
        if self.tone_hz:
            media_audio.write_tone_wav(wav, self.tone_hz, self.tone_s, amplitude=self.amplitude)
        else:
            media_audio.write_wav(wav, [0] * int(self.tone_s * media_audio.RATE))
        rtp_lo = random.randrange(33000, 39800, 2)
        lines = [
            "poll_method epoll",
            "sip_listen 127.0.0.1:%d" % self.port,
            "net_interface 127.0.0.1",
            "call_local_timeout 0",
            "call_max_calls 4",
            "audio_source aufile,%s" % wav,
            "audio_player aubridge,sink-%s" % self.name,
            "audio_alert aubridge,alert-%s" % self.name,
            "rtp_ports %d-%d" % (rtp_lo, rtp_lo + 100),
            "rtp_timeout %d" % self.rtp_timeout,
        ] + (["jitter_buffer_delay %s" % self.jitter_buffer] if self.jitter_buffer else []) + \
            (["sip_certificate %s" % self.tls_certificate] if self.tls_certificate else []) + [
            "statmode_default off",
            "module_path %s" % MODULE_PATH,
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
        ] + (["module srtp.so"] if self.mediaenc else []) + [
            "snd_path %s" % self.snd_dir,
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            "ctrl_tcp_listen 127.0.0.1:%d" % self.ctrl_port,
        ]
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:%s@127.0.0.1:%d>;regint=0;answermode=%s;audio_codecs=%s%s\n"
                    % (self.user, self.port, self.answermode, self.codecs,
                       ";mediaenc=%s" % self.mediaenc if self.mediaenc else ""))

    def start(self, timeout=5.0):
        os.makedirs(self.dir, exist_ok=True)
        last = None
        for _attempt in range(3):
            # SIP UDP+TCP on PORT, TLS on PORT+1; ctrl on its own TCP port (10000..16000: below
            # callplane's default RTP range 16384-32766 and sipp_peer's 40000+)
            self.port = _free_port(10000, 16000, [(socket.SOCK_DGRAM, 0), (socket.SOCK_STREAM, 0),
                                                  (socket.SOCK_STREAM, 1)])
            self.ctrl_port = _free_port(10000, 16000, [(socket.SOCK_STREAM, 0)])
            self._write_config()
            self._logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen([BARESIP, "-f", self.dir], cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=self._logf, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if "baresip is ready." in self.log():
                    try:
                        self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                        break
                    except OSError:
                        pass
                time.sleep(0.02)
            if self.sock is not None:
                self.sock.settimeout(None)
                self._reader = threading.Thread(target=self._read_loop, name="baresip-" + self.name, daemon=True)
                self._reader.start()
                return self
            last = "baresip did not start (exit %s):\n%s" % (self.proc.poll(), self.log()[-3000:])
            self._kill()
            if "in use" not in self.log():
                break
        raise AssertionError(last)

    # ---------------------------------------------------------------- control
    def _read_loop(self):
        buf = b""
        while True:
            try:
                d = self.sock.recv(65536)
            except OSError:
                d = b""
            if not d:
                with self._cv:
                    self._cv.notify_all()
                return
            buf += d
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                n = int(buf[:colon])
                if len(buf) < colon + 1 + n + 1:
                    break
                payload = buf[colon + 1:colon + 1 + n]
                buf = buf[colon + 1 + n + 1:]
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                with self._cv:
                    if msg.get("event"):
                        self.events.append((time.monotonic(), msg))
                    else:
                        self.responses.append(msg)
                    self._cv.notify_all()

    def command(self, command, params="", timeout=3.0):
        """Run a menu command over ctrl_tcp; returns its response dict (asserts ok)."""
        assert self.sock is not None, "baresip not started"
        self._token += 1
        token = "t%d" % self._token
        self.sock.sendall(_netstring(json.dumps({"command": command, "params": params, "token": token}).encode()))
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for r in self.responses:
                    if r.get("token") == token:
                        assert r.get("ok"), "baresip %s %r failed: %r\n%s" % (command, params, r, self.report())
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("baresip %s %r: no response within %ss\n%s"
                                         % (command, params, timeout, self.report()))
                self._cv.wait(left)

    def dial(self, uri):
        return self.command("dial", uri)

    def hangup(self):
        return self.command("hangup")

    def accept(self):
        return self.command("accept")

    def send_dtmf(self, digits):
        """RFC 4733 telephone-events for `digits` (0-9 * # A-D) on the current call."""
        return self.command("sndcode", digits)

    # ----------------------------------------------------------------- events
    def event_list(self, etype=None):
        with self._cv:
            return [e for _t, e in self.events if etype is None or e.get("type") == etype]

    def wait_event(self, etype, timeout=5.0, pred=None, n=1):
        """Wait (bounded) until `n` events of `etype` (matching pred) arrived; returns the list."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                got = [e for _t, e in self.events if e.get("type") == etype and (pred is None or pred(e))]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("baresip %s: %d x %s not seen within %ss (got %d)\n%s"
                                         % (self.name, n, etype, timeout, len(got), self.report()))
                self._cv.wait(min(left, 0.2))

    def wait_established(self, timeout=5.0):
        return self.wait_event("CALL_ESTABLISHED", timeout)[0]

    def wait_closed(self, timeout=5.0):
        """The CALL_CLOSED event; its param is the reason: "Connection reset by peer" for a BYE
        received, "rtp stream error" for the RTP timeout, "" for a local hangup."""
        return self.wait_event("CALL_CLOSED", timeout)[0]

    def closed(self):
        ev = self.event_list("CALL_CLOSED")
        return ev[0] if ev else None

    def dtmf_received(self):
        """The digits received (RFC 4733), in order, as one string."""
        return "".join(e.get("param", "") for e in self.event_list("CALL_DTMF_START"))

    def wait_dtmf(self, digits, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.dtmf_received()) >= len(digits):
                break
            time.sleep(0.05)
        got = self.dtmf_received()
        assert got == digits, "baresip %s received DTMF %r, expected %r\n%s" % (self.name, got, digits, self.report())
        return got

    def log(self):
        return read_text(self.log_path)

    def bye_received(self):
        """True when the call was closed by the far end's BYE."""
        c = self.closed()
        return c is not None and c.get("param") == "Connection reset by peer"

    # ------------------------------------------------------------------ audio
    def _dump(self, kind):
        files = sorted(f for f in os.listdir(self.snd_dir) if f.endswith("-%s.wav" % kind)) \
            if os.path.isdir(self.snd_dir) else []
        assert files, "baresip %s wrote no *-%s.wav in %s\n%s" % (self.name, kind, self.snd_dir, self.report())
        return os.path.join(self.snd_dir, files[-1])

    def dec_samples(self):
        """What baresip decoded from the RTP it received (8 kHz mono ints)."""
        rate, s = media_audio.read_wav(self._dump("dec"))
        assert rate == media_audio.RATE, rate
        return s

    def enc_samples(self):
        rate, s = media_audio.read_wav(self._dump("enc"))
        assert rate == media_audio.RATE, rate
        return s

    # ------------------------------------------------------------------- stop
    def report(self):
        lines = [ln for ln in self.log().splitlines() if ln.strip()]
        evs = ["%s %s" % (e.get("type"), e.get("param", "")) for e in self.event_list()]
        return "baresip %s (%s, exit %s) log tail:\n  %s\nevents: %s" % (
            self.name, self.uri if self.port else "-", self.proc.poll() if self.proc else None,
            "\n  ".join(lines[-25:]), ", ".join(evs))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._logf:
            self._logf.close()
            self._logf = None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(2)
