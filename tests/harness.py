"""Test harness: start a scriptum-emulator on a free loopback port, talk to
it over HTTP, and stop it, failing the test if it crashed, did not exit
cleanly, or printed a sanitizer report.

The binaries come from $SCRIPTUM_BUILD (default: build/ at the top of the
repository), so the same tests run against the ASan+UBSan build.
"""

import base64
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, os.environ.get("SCRIPTUM_BUILD", "build"))
API = "/v1/scriptum"

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:exitcode=86:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
}
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer"
)


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not built; run make first")
    return path


class HTTPError(Exception):
    def __init__(self, status, body, headers):
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body
        self.headers = headers

    def json(self):
        return json.loads(self.body)


class Emulator:
    """One scriptum-emulator process and a way to call it."""

    def __init__(self, *args, seed="demo", token=None, tls=None, extra_env=None):
        self.token = token
        self.tls = tls  # (cert, key, cafile) or None
        cmd = [binary("scriptum-emulator"), "--listen", "127.0.0.1:0"]
        if seed is not None:
            cmd += ["--seed", seed]
        if token is not None:
            cmd += ["--token", token]
        if tls is not None:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        cmd += list(args)
        env = dict(os.environ, **SANITIZER_ENV, **(extra_env or {}))
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.stderr, env=env
        )
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on (https?)://127\.0\.0\.1:(\d+)$", line.strip())
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(
                f"emulator did not start: {line!r} {self._stderr_text()}"
            )
        self.scheme = m.group(1)
        self.port = int(m.group(2))
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def _stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        """Stops the emulator; raises if it did not end cleanly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("emulator did not exit within 20 s of SIGTERM")
        self.proc.stdout.close()
        err = self._stderr_text()
        self.stderr.close()
        if SANITIZER_REPORT.search(err):
            raise AssertionError("sanitizer report from the emulator:\n" + err)
        if self.proc.returncode != 0:
            raise AssertionError(
                f"emulator exited with {self.proc.returncode}:\n{err}"
            )

    # ---- HTTP ----

    def connection(self, timeout=60):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.tls[2])
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=ctx
            )
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, params=None, headers=None,
                auth=True, raw_body=None, timeout=60):
        """Returns (status, headers, body bytes); never raises on status."""
        if params:
            path += "?" + urllib.parse.urlencode(params)
        hdrs = dict(headers or {})
        if auth and self.token is not None:
            hdrs.setdefault("Authorization", f"Bearer {self.token}")
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def call(self, method, path, body=None, params=None, **kw):
        """An API call under /v1/scriptum; returns the JSON body or raises
        HTTPError."""
        status, headers, data = self.request(method, API + path, body, params, **kw)
        if status != 200:
            raise HTTPError(status, data, headers)
        return json.loads(data)

    def get(self, path, **params):
        return self.call("GET", path, params=params or None)

    def post(self, path, body=None):
        return self.call("POST", path, body if body is not None else {})

    def control(self, method, path, body=None):
        status, _, data = self.request(method, "/_emulator" + path, body, auth=False)
        if status != 200:
            raise HTTPError(status, data, {})
        return json.loads(data) if data else None

    def seed(self, script="echo", count=1, status="completed", **extra):
        body = {"script": script, "count": count, "status": status, **extra}
        return self.control("POST", "/seed", body)["threadIds"]

    def faults(self, **faults):
        return self.control("POST", "/faults", faults)

    def clear_faults(self):
        status, _, data = self.request("POST", "/_emulator/faults", auth=False)
        assert status == 200, data

    def raw_output(self, thread_id):
        status, _, data = self.request(
            "GET", f"/_emulator/threads/{urllib.parse.quote(thread_id)}/output", auth=False
        )
        if status != 200:
            raise HTTPError(status, data, {})
        return data

    def requests_log(self):
        return self.control("GET", "/requests")

    def reset_requests(self):
        self.control("DELETE", "/requests")

    def stream(self, path, params=None, timeout=60):
        """Reads a whole stream under /v1/scriptum; returns (status, body)."""
        status, _, data = self.request("GET", API + path, params=params, timeout=timeout)
        return status, data

    def wait_status(self, thread_id, statuses, timeout=15):
        """Polls GetThread until the status ends in one of statuses."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.get(f"/threads/{thread_id}")
            if status_word(t.get("status")) in statuses:
                return t
            if time.monotonic() > deadline:
                raise AssertionError(f"{thread_id} stayed {t.get('status')}")
            time.sleep(0.05)


STATUS_WORDS = ["unspecified", "pending", "running", "paused", "completed", "failed",
                "cancelled"]


def status_word(value):
    """The lowercase word of a thread status however the wire spells it."""
    if isinstance(value, int):
        return STATUS_WORDS[value]
    if value is None:
        return "unspecified"
    v = value.lower()
    for prefix in ("thread_status_", "step_status_"):
        if v.startswith(prefix):
            v = v[len(prefix):]
    return "cancelled" if v == "canceled" else v


def parse_stream(data, framing="ndjson"):
    """Splits a stream body into its messages (the result wrapper removed)
    and its error (or None), following the framing."""
    if framing == "array":
        items = json.loads(data)
    elif framing == "sse":
        items = []
        for block in data.decode().split("\n\n"):
            payload = "".join(
                line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")
            )
            if payload:
                items.append(json.loads(payload))
    else:
        items = [json.loads(line) for line in data.split(b"\n") if line.strip()]
    messages, error = [], None
    for item in items:
        if set(item) == {"error"}:
            error = item["error"]
        elif set(item) == {"result"}:
            messages.append(item["result"])
        else:
            messages.append(item)
    return messages, error


def chunks_bytes(messages, key="chunk"):
    """The bytes carried by a result stream's chunks, checked for order and a
    final chunk."""
    out = bytearray()
    chunks = [m[key] for m in messages if key in m]
    assert chunks, "no chunks"
    for i, c in enumerate(chunks):
        index = int(c.get("chunkIndex", c.get("chunk_index", 0)))
        assert index == i, f"chunk {i} has index {index}"
        out += base64.b64decode(c.get("data", ""))
        final = c.get("isFinal", c.get("is_final", False))
        assert final == (i == len(chunks) - 1), f"isFinal wrong on chunk {i}"
    return bytes(out)
