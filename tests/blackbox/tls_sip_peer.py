"""A SIP far end over TLS for black-box tests (standard library only: Python's ssl, which is
OpenSSL): it listens on 127.0.0.1 (or another address of the test's) with a certificate the
test's CA signed, answers an INVITE 200 (PCMU SDP), an ACK nothing, a BYE 200, a REGISTER 200
(as a registrar granting what was asked, without a challenge), over the connection each came
on, and keeps every request it read, how many connections it accepted and every handshake that
failed.

It stands in for a carrier's TLS side where only the transport is under test: what callplane
sends over TLS, and that it refuses a server its CA did not sign.
"""

import socket
import ssl
import threading
import time


class Request:
    def __init__(self, text):
        self.text = text
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        self.first_line = head[0]
        self.method = head[0].split(" ", 1)[0]
        self.headers = {}
        self.lines = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), value.strip())
            self.lines.append((name.strip().lower(), value.strip()))

    def header(self, name):
        return self.headers.get(name.lower())

    def header_all(self, name):
        """Every value of header name, in order (one a line)."""
        return [v for n, v in self.lines if n == name.lower()]


class TlsUas:
    def __init__(self, cert, key, contact_params=";transport=tls", host="127.0.0.1"):
        """contact_params: what follows the URI of the Contact in its 200 to an INVITE ("" for
        a far end that names no transport there, though it was reached over TLS); host: the
        address it listens on and names in that Contact."""
        self.contact_params = contact_params
        self.host = host
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.handshake_errors = []
        self.connections = 0          # TLS connections accepted (handshakes done or not)
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.handshake_errors.append(str(e))
            conn.close()
            return
        buf = b""
        try:
            while not self.stopping:
                data = tls.recv(65536)
                if not data:
                    return
                buf += data
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("utf-8", "replace")
                    length = 0
                    for line in head.split("\r\n")[1:]:
                        name, _, value = line.partition(":")
                        if name.strip().lower() in ("content-length", "l"):
                            length = int(value.strip())
                    if len(buf) < end + 4 + length:
                        break
                    text = buf[:end + 4 + length].decode("utf-8", "replace")
                    buf = buf[end + 4 + length:]
                    if not text.startswith("SIP/2.0"):
                        self._answer(tls, Request(text))
        except (ssl.SSLError, OSError):
            return
        finally:
            tls.close()

    def _answer(self, tls, req):
        with self.lock:
            self.requests.append(req)
        if req.method == "ACK":
            return
        body = ""
        extra = ""
        if req.method == "REGISTER":
            extra = "Contact: %s;expires=%s\r\n" % (req.header("contact"),
                                                    req.header("expires") or "3600")
        if req.method == "INVITE":
            body = ("v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    "t=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            extra = ("Contact: <sip:uas@%s:%d%s>\r\n"
                     "Content-Type: application/sdp\r\n" % (self.host, self.port,
                                                               self.contact_params))
        to = req.header("to") or ""
        if req.method == "INVITE" and ";tag=" not in to:
            to += ";tag=uas1"
        lines = ["SIP/2.0 200 OK"]
        for name in ("via", "from", "call-id", "cseq"):
            lines.append("%s: %s" % (name.title(), req.header(name)))
        lines.append("To: %s" % to)
        text = "\r\n".join(lines) + "\r\n" + extra + "Content-Length: %d\r\n\r\n%s" % (
            len(body), body)
        tls.sendall(text.encode())

    def received(self, method):
        with self.lock:
            return [r for r in self.requests if r.method == method]

    def wait_for(self, method, n=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received(method)) >= n:
                return self.received(method)
            time.sleep(0.05)
        return self.received(method)

    def stop(self):
        self.stopping = True
        self.sock.close()


class TlsUac:
    """A caller over TLS: connects to callplane's TLS listener, verifying its certificate
    against `cafile` for IP 127.0.0.1, sends requests and reads the responses on that one
    connection."""

    def __init__(self, port, cafile):
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.local_port = self.tls.getsockname()[1]
        self.buf = b""

    def send(self, text):
        self.tls.sendall(text.encode())

    def response(self):
        """The next response read (a Request object: first_line, header())."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("utf-8", "replace")
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() in ("content-length", "l"):
                        length = int(value.strip())
                if len(self.buf) >= end + 4 + length:
                    text = self.buf[:end + 4 + length].decode("utf-8", "replace")
                    self.buf = self.buf[end + 4 + length:]
                    return Request(text)
            data = self.tls.recv(65536)
            if not data:
                raise AssertionError("the server closed the connection")
            self.buf += data

    def final_response(self):
        while True:
            r = self.response()
            code = int(r.first_line.split(" ")[1])
            if code >= 200:
                return r

    def close(self):
        self.tls.close()
