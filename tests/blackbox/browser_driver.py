"""tests/browser/driver.mjs (headless Chromium driven by playwright-core) from a test: `Driver`
installs the npm packages from their lock file (scripts/browser-deps.sh), starts the driver in a
subprocess and launches the browser; `call` sends one command and returns its answer (every
wait bounded). The commands are listed at the top of driver.mjs.
"""

import json
import os
import queue
import subprocess
import threading

import cp as cpmod

DRIVER = os.path.join(cpmod.ROOT, "tests", "browser", "driver.mjs")


class Driver:
    """tests/browser/driver.mjs in a subprocess: one JSON command a line, one answer each."""

    def __init__(self, wav=None):
        subprocess.run([os.path.join(cpmod.ROOT, "scripts", "browser-deps.sh")], check=True,
                       timeout=300)
        self.proc = subprocess.Popen(["node", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cpmod.ROOT)
        self.lines = queue.Queue()
        self.errors = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.errors.append), daemon=True).start()
        self.version = self.call("launch", timeout=60, wav=wav)["version"]

    @staticmethod
    def _read(stream, put):
        for line in iter(stream.readline, b""):
            put(line.decode("utf-8", "replace"))

    def call(self, cmd, timeout=20, **args):
        args["cmd"] = cmd
        self.proc.stdin.write((json.dumps(args) + "\n").encode())
        self.proc.stdin.flush()
        try:
            answer = json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError("browser driver: no answer to %r within %ss\n%s"
                                 % (args, timeout, "".join(self.errors[-30:])))
        assert answer.pop("ok"), "browser driver: %r failed: %s\n%s" % (args, answer.get("error"),
                                                                        "".join(self.errors[-30:]))
        return answer

    def quit(self):
        try:
            self.call("quit", timeout=20)
        except (AssertionError, OSError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
