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
    "TSAN_OPTIONS": "exitcode=88:second_deadlock_stack=1",
}
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer"
    r"|WARNING: ThreadSanitizer"
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

    def __init__(self, *args, seed="demo", token=None, tls=None, extra_env=None,
                 listen="127.0.0.1:0"):
        self.token = token
        SECRETS.register(token, "an emulator's --token")
        self.tls = tls  # (cert, key, cafile) or None
        self.killed = False  # set by kill(): stop() then expects no clean exit
        cmd = [binary("scriptum-emulator"), "--listen", listen]
        if seed is not None:
            cmd += ["--seed", seed]
        if token is not None:
            cmd += ["--token", token]
        if tls is not None:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        cmd += list(args)
        # SCRIPTUM_WIRE (e.g. "random" with SCRIPTUM_WIRE_SEED=7) runs a
        # suite against another spelling of the wire, for every emulator
        # that does not ask for one itself
        self.wire = next((a for i, a in enumerate(cmd) if i > 0 and cmd[i - 1] == "--wire"),
                         None)
        if self.wire is None and os.environ.get("SCRIPTUM_WIRE"):
            self.wire = os.environ["SCRIPTUM_WIRE"]
            cmd += ["--wire", self.wire, "--wire-seed", os.environ.get("SCRIPTUM_WIRE_SEED", "1")]
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
        if self.proc.returncode != 0 and not self.killed:
            raise AssertionError(
                f"emulator exited with {self.proc.returncode}:\n{err}"
            )

    def kill(self):
        """Kills the emulator at once (SIGKILL), as a crashed server; stop()
        still closes what it holds but expects no clean exit."""
        self.killed = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

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


def sniff_framing(data):
    """The framing of a whole stream body, from its first byte: "sse",
    "array" or "ndjson" (the random wire mode picks one per stream)."""
    head = data.lstrip()[:5]
    if head.startswith(b"data:"):
        return "sse"
    return "array" if head.startswith(b"[") else "ndjson"


def parse_stream(data, framing="ndjson"):
    """Splits a stream body into its messages (the result wrapper removed,
    with any unknown keys beside it) and its error (or None), following the
    framing; framing "auto" tells it from the body (sniff_framing)."""
    if framing == "auto":
        framing = sniff_framing(data)
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
        elif isinstance(item.get("result"), dict):
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


# ---- additions for the conformance suite (tests/test_emulator_*.py) ----

import contextlib
import socket

MiB = 1 << 20


@contextlib.contextmanager
def running(*args, **kw):
    """An emulator for the length of a with block, stopped (and checked for
    a clean exit) at its end."""
    emu = Emulator(*args, **kw)
    try:
        yield emu
    finally:
        emu.stop()


def wait_until(predicate, timeout=15, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def api_error(emu, method, path, body=None, params=None, raw_body=None, headers=None,
              auth=True):
    """Makes a call that must fail; returns (HTTP status, error body). The
    body must be the §2.5 shape {"code", "message", "details": []}."""
    if body is not None and raw_body is not None:
        raise ValueError("body or raw_body, not both")
    status, hdrs, data = emu.request(method, API + path, body=body, params=params,
                                     raw_body=raw_body, headers=headers, auth=auth)
    assert status != 200, f"{method} {path} succeeded: {data[:300]!r}"
    err = json.loads(data)
    assert isinstance(err.get("code"), int), err
    assert isinstance(err.get("message"), str) and err["message"], err
    assert err.get("details") == [], err
    return status, err


def thread_ids(threads):
    return [t.get("threadId", t.get("thread_id")) for t in threads]


# the most pages a test's listing may take: every loop over server data has a bound
LIST_MAX_PAGES = 1000


def list_all(emu, page_size=None, **params):
    """Pages through ListThreads; returns (threads, number of pages), each
    page read as canonical_message() reads it, whatever the --wire. A
    listing of more than LIST_MAX_PAGES pages fails the test."""
    threads, token, pages = [], None, 0
    while pages < LIST_MAX_PAGES:
        q = dict(params)
        if page_size is not None:
            q["pageSize"] = page_size
        if token:
            q["pageToken"] = token
        page = canonical_message(emu.get("/threads", **q))
        pages += 1
        threads += page.get("threads", [])
        token = page.get("nextPageToken")
        if not token:
            return threads, pages
    raise AssertionError(f"ListThreads did not end within {LIST_MAX_PAGES} pages")


class StreamClosed(Exception):
    """The server closed a stream before its chunked body was complete."""


class RawStream:
    """A GET under the emulator read at the socket level: HTTP/1.1 with the
    chunked body decoded here, so that a read may time out and be tried
    again (http.client cannot go on after a timeout), and so that a stream
    can be read message by message while it is still open."""

    def __init__(self, emu, path, params=None, headers=None, timeout=30, auth=True):
        if params:
            path += "?" + urllib.parse.urlencode(params)
        self.timeout = timeout
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=timeout)
        if emu.scheme == "https":
            ctx = ssl.create_default_context(cafile=emu.tls[2])
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        hdrs = {"Host": f"127.0.0.1:{emu.port}", "Accept": "*/*", "Connection": "close"}
        if auth and emu.token is not None:
            hdrs["Authorization"] = f"Bearer {emu.token}"
        hdrs.update(headers or {})
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        sock.sendall((req + "\r\n").encode())
        self._raw = bytearray()  # received, not yet decoded
        self._body = bytearray()  # decoded, not yet consumed
        self._chunk_left = None  # bytes left in the current chunk; None: a size line is next
        self._need_crlf = False
        self.eof = False  # the socket reached end of file
        self.complete = False  # the body ended as HTTP says it must
        self.received = 0  # decoded body bytes so far
        while b"\r\n\r\n" not in self._raw:
            if not self._recv():
                raise StreamClosed("connection closed before the response headers")
        head, _, rest = bytes(self._raw).partition(b"\r\n\r\n")
        self._raw = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.length = None if self.chunked else int(self.headers.get("content-length", -1))
        if self.length == -1:
            self.length = None
        self._decode()

    def _recv(self):
        data = self.sock.recv(1 << 20)
        if not data:
            self.eof = True
            return False
        self._raw += data
        return True

    def _decode(self):
        if not self.chunked:
            self.received += len(self._raw)
            self._body += self._raw
            self._raw.clear()
            if self.length is not None and self.received >= self.length:
                self.complete = True
            return
        while not self.complete:
            if self._need_crlf:
                if len(self._raw) < 2:
                    return
                assert self._raw[:2] == b"\r\n", "bad chunked framing"
                del self._raw[:2]
                self._need_crlf = False
            if self._chunk_left is None:
                i = self._raw.find(b"\r\n")
                if i < 0:
                    return
                size = int(bytes(self._raw[:i]).split(b";")[0], 16)
                del self._raw[: i + 2]
                if size == 0:
                    # the last chunk, then trailers up to an empty line
                    if self._raw.find(b"\r\n") != 0 and b"\r\n\r\n" not in self._raw:
                        self._chunk_left = -1
                        return
                    self.complete = True
                    return
                self._chunk_left = size
            if self._chunk_left == -1:
                if self._raw.find(b"\r\n") == 0 or b"\r\n\r\n" in self._raw:
                    self.complete = True
                return
            n = min(self._chunk_left, len(self._raw))
            if n == 0:
                return
            self._body += self._raw[:n]
            self.received += n
            del self._raw[:n]
            self._chunk_left -= n
            if self._chunk_left == 0:
                self._chunk_left = None
                self._need_crlf = True

    def _more(self, timeout=None):
        """Reads from the socket once; False at end of body. Raises
        socket.timeout (TimeoutError) when nothing came within timeout."""
        if self.complete:
            return False
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            got = self._recv()
        finally:
            self.sock.settimeout(self.timeout)
        if not got:
            return False
        self._decode()
        return True

    def read_some(self, timeout=None):
        """Some body bytes; b"" at the end of the body."""
        while not self._body:
            if not self._more(timeout):
                break
        out = bytes(self._body)
        self._body.clear()
        return out

    def read_all(self):
        """The rest of the body; raises StreamClosed if the server closed the
        connection before the body was complete."""
        while self._more():
            pass
        out = bytes(self._body)
        self._body.clear()
        if not self.complete:
            raise StreamClosed(f"body ended after {self.received} bytes without its end")
        return out

    def idle(self, seconds):
        """True when no byte arrives for seconds (any byte that does is
        kept for later reads); False when bytes came or the body ended."""
        if self._body or self.complete:
            return False
        try:
            more = self._more(seconds)
        except (socket.timeout, TimeoutError):
            return True
        if not more:
            return False
        return not self._body and not self.complete and self.idle(seconds)

    def next_item(self, framing="ndjson", timeout=None):
        """The next JSON item of an NDJSON or SSE stream; None at the end."""
        sep = b"\n\n" if framing == "sse" else b"\n"
        while True:
            i = self._body.find(sep)
            if i >= 0:
                block = bytes(self._body[:i])
                del self._body[: i + len(sep)]
                if framing == "sse":
                    payload = "".join(l[5:].lstrip() for l in block.decode().split("\n")
                                      if l.startswith("data:"))
                else:
                    payload = block.decode().strip()
                if payload:
                    return json.loads(payload)
                continue
            if not self._more(timeout):
                if not self.complete:
                    raise StreamClosed(f"body ended after {self.received} bytes without its end")
                assert not bytes(self._body).strip(), f"trailing bytes {bytes(self._body)[:100]!r}"
                return None

    def next_message(self, framing="ndjson", timeout=None):
        """The next message with its result wrapper removed; None at the end.
        An error item raises StreamError."""
        item = self.next_item(framing, timeout)
        if item is None:
            return None
        if set(item) == {"error"}:
            raise StreamError(item["error"])
        if set(item) == {"result"}:
            return item["result"]
        return item

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StreamError(Exception):
    def __init__(self, error):
        super().__init__(f"stream error {error}")
        self.error = error


def raw_stream(emu, path, params=None, **kw):
    """A RawStream for a path under /v1/scriptum."""
    return RawStream(emu, API + path, params, **kw)


def camel_key(key):
    parts = key.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def raw_request(emu, method, target, headers=None, body=b"", timeout=30):
    """One HTTP/1.1 request with a request target given as raw bytes (which
    http.client refuses to send when they are not ASCII); returns (status,
    body bytes), or (None, b"") when the connection closed with no answer."""
    sock = socket.create_connection(("127.0.0.1", emu.port), timeout=timeout)
    try:
        if emu.scheme == "https":
            ctx = ssl.create_default_context(cafile=emu.tls[2])
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        hdrs = {"Host": f"127.0.0.1:{emu.port}", "Connection": "close"}
        if emu.token is not None:
            hdrs["Authorization"] = f"Bearer {emu.token}"
        if body:
            hdrs["Content-Length"] = str(len(body))
        hdrs.update(headers or {})
        head = method.encode() + b" " + target + b" HTTP/1.1\r\n" + b"".join(
            f"{k}: {v}\r\n".encode("latin-1") for k, v in hdrs.items()) + b"\r\n"
        sock.sendall(head + body)
        data = bytearray()
        while True:
            try:
                got = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    finally:
        sock.close()
    if not data:
        return None, b""
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


# ---- no configured secret in what our programs wrote (SPEC §7, §9; issue 13) ----
#
# SECRETS knows every secret the tests configure (the emulators' --token
# values, the tokens the CLI is given by SCRIPTUM_TOKEN, DODIL_TOKEN or
# --token, the token files Mount writes, the token: and client_secret: of
# the config files write_config writes, and the TOKEN/SECRET constants of
# the test modules, which conftest.py registers). Every output of the CLI
# and of the mount is scanned where it is produced, and only the hits are
# kept (test, stream, a masked excerpt); conftest.py fails the test that
# produced one, and reports the hits made outside any test at the session's
# end. Only the programs' outputs are scanned: the tests' own arguments,
# assertion messages and the outputs of other tools (cat, grep) are not.

SECRET_MIN_LEN = 8  # shorter values ("old") would match ordinary words
SECRET_CONTEXT = 60  # characters of an excerpt on each side of a hit
SECRET_MAX_HITS = 200  # hits kept in all (the first ones)


class SecretScan:
    """A registry of the secrets in use and a scanner of outputs for them."""

    def __init__(self):
        self.secrets = {}  # value -> (number, where it came from)
        self._needles = []  # (bytes to look for, the secret's value)
        self.hits = []  # dicts: test, stream, secret, count, excerpt
        self._mark = 0  # hits before it belong to earlier tests
        self.test = None  # the nodeid of the running test, None between tests
        self.outputs = 0
        self.bytes = 0
        self.seconds = 0.0

    def register(self, value, source):
        """Adds a secret (a str; too short a value is ignored); returns
        whether it is known now."""
        if not isinstance(value, str):
            return False
        value = value.strip()
        if len(value) < SECRET_MIN_LEN:
            return False
        if value not in self.secrets:
            self.secrets[value] = (len(self.secrets) + 1, source)
            for form in dict.fromkeys([value, urllib.parse.quote(value, safe="")]):
                self._needles.append((form.encode(), value))
        return True

    def register_module(self, module):
        """Registers a test module's constants named *TOKEN* or *SECRET*."""
        for name, value in vars(module).items():
            if name.isupper() and ("TOKEN" in name or "SECRET" in name) and \
                    isinstance(value, str):
                self.register(value, f"{module.__name__}.{name}")

    def register_config(self, text, source):
        """Registers the token: and client_secret: values of a config text."""
        for m in re.finditer(r"^\s*(token|client_secret)\s*:\s*(\S+)", text, re.M):
            self.register(m.group(2).strip("\"'"), f"{m.group(1)}: of {source}")

    def mask(self, text):
        """text with every secret replaced by <secret N>."""
        for value, (n, _) in self.secrets.items():
            for form in dict.fromkeys([value, urllib.parse.quote(value, safe="")]):
                text = text.replace(form, f"<secret {n}>")
        return text

    def scan(self, stream, data, test=None):
        """Looks for every secret in data (bytes or str) and records a hit
        per secret found, named by the test and the stream (masked); returns
        the hits of this call."""
        self.outputs += 1
        if not data:
            return []
        t0 = time.perf_counter()
        if isinstance(data, str):
            data = data.encode(errors="replace")
        found = []
        for needle, value in self._needles:
            i = data.find(needle)
            if i < 0:
                continue
            n, source = self.secrets[value]
            lo, hi = max(0, i - SECRET_CONTEXT), i + len(needle) + SECRET_CONTEXT
            excerpt = self.mask(data[lo:hi].decode(errors="replace"))
            found.append({"test": test or self.test or "(outside any test)",
                          "stream": self.mask(stream), "secret": f"<secret {n}> ({source})",
                          "count": data.count(needle),
                          "excerpt": ("…" if lo else "") + repr(excerpt)[1:-1] +
                                     ("…" if hi < len(data) else "")})
        self.bytes += len(data)
        self.seconds += time.perf_counter() - t0
        self.hits.extend(found[:max(0, SECRET_MAX_HITS - len(self.hits))])
        return found

    def begin(self, test):
        """A test starts: the hits from now on are its own."""
        self.test = test
        self._mark = len(self.hits)

    def end(self):
        """The test ends: returns its hits."""
        hits = self.hits[self._mark:]
        self._mark = len(self.hits)
        self.test = None
        return hits

    def unclaimed(self):
        """The hits made outside any test (module fixtures, session end)."""
        return [h for h in self.hits if h["test"] == "(outside any test)"]

    @staticmethod
    def describe(hits):
        return "\n".join(
            f"a configured secret in {h['stream']} ({h['test']}): {h['secret']}, "
            f"{h['count']} time(s): {h['excerpt']}" for h in hits)

    def summary(self):
        return (f"secret check: {len(self.secrets)} secrets, {self.outputs} outputs "
                f"({self.bytes / (1 << 20):.1f} MiB) scanned in {self.seconds:.2f} s, "
                f"{len(self.hits)} hit(s)")


SECRETS = SecretScan()


def scan_output(stream, data):
    """Scans one output of the CLI or the mount (for the places tests run
    our programs without the harness); returns the hits."""
    return SECRETS.scan(stream, data)


def _label(args, limit=4):
    words = [str(a) for a in args]
    return " ".join(words[:limit]) + (" …" if len(words) > limit else "")


def _register_cli_secrets(args, env, token):
    """The secrets a CLI run is configured with: its token, SCRIPTUM_TOKEN
    or DODIL_TOKEN in env, a --token argument."""
    SECRETS.register(token, "the CLI's token")
    for k in ("SCRIPTUM_TOKEN", "DODIL_TOKEN"):
        SECRETS.register((env or {}).get(k), f"the CLI's {k}")
    words = [str(a) for a in args]
    for i, w in enumerate(words):
        if w == "--token" and i + 1 < len(words):
            SECRETS.register(words[i + 1], "a --token argument")
        elif w.startswith("--token="):
            SECRETS.register(w[len("--token="):], "a --token argument")


def _ours(cmd):
    """Whether an argv runs one of our programs (the CLI, the daemon, the
    mount helper, or mount(8) or mount.fuse3 mounting a scriptumfs)."""
    if not isinstance(cmd, (list, tuple)) or not cmd:
        return False
    name = os.path.basename(str(cmd[0]))
    if name.startswith("scriptum") or name == "mount.scriptumfs":
        return True
    return name in ("mount", "mount.fuse3", "mount.fuse") and \
        any("scriptumfs" in str(a) for a in cmd[1:])


# ---- additions for the CLI tests (tests/test_cli_*.py) ----

import collections
import hashlib
import shutil
import threading

# The environment variables the CLI reads (scriptum(1), ENVIRONMENT); the
# runner removes the caller's own so that a test sees only what it sets.
CLI_ENV_VARS = ("SCRIPTUM_CONFIG", "SCRIPTUM_API_ENDPOINT", "SCRIPTUM_TOKEN", "DODIL_TOKEN",
                "SCRIPTUM_ORG_ID", "SCRIPTUM_ORG_NAME", "SCRIPTUM_PROFILE", "XDG_CONFIG_HOME")

# token= for scriptum(): the emulator's own token (SCRIPTUM_TOKEN), if it has one
EMULATOR_TOKEN = object()

CLIResult = collections.namedtuple("CLIResult", "rc out err")


def check_no_sanitizer_report(stderr, what="scriptum"):
    if SANITIZER_REPORT.search(stderr):
        raise AssertionError(f"sanitizer report from {what}:\n{stderr}")


def cli_command(emu, args, endpoint=True):
    """The argv of one CLI run: the binary, --api-endpoint (unless endpoint
    is False, or a URL string to use instead of the emulator's), args."""
    cmd = [binary("scriptum")]
    if endpoint is True:
        cmd += ["--api-endpoint", emu.url]
    elif endpoint:
        cmd += ["--api-endpoint", endpoint]
    _register_cli_secrets(args, None, None)
    return cmd + [str(a) for a in args]


def cli_env(emu, home, token=EMULATOR_TOKEN, env=None):
    """The CLI's environment: the caller's minus the CLI's own variables,
    HOME set to home, the sanitizer options, SCRIPTUM_TOKEN set to the
    token (the emulator's by default; None: no token), then env (a value of
    None removes a variable)."""
    out = {k: v for k, v in os.environ.items() if k not in CLI_ENV_VARS}
    out.update(SANITIZER_ENV)
    out["HOME"] = str(home)
    if token is EMULATOR_TOKEN:
        token = emu.token if emu is not None else None
    if token is not None:
        out["SCRIPTUM_TOKEN"] = token
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
    _register_cli_secrets((), out, token)
    return out


def scriptum(emu, *args, input=None, env=None, timeout=120, token=EMULATOR_TOKEN,
             endpoint=True, home=None, cwd=None):
    """Runs the CLI once against emu and returns CLIResult(rc, stdout bytes,
    stderr text). HOME is a fresh empty directory (so no real configuration
    is read) unless home is given. input: bytes or str for stdin (stdin is
    empty otherwise). Fails the test on a sanitizer report or a timeout."""
    tmp_home = None
    if home is None:
        tmp_home = home = tempfile.mkdtemp(prefix="scriptum-home-")
    try:
        if isinstance(input, str):
            input = input.encode()
        try:
            p = subprocess.run(cli_command(emu, args, endpoint),
                               input=input if input is not None else b"",
                               capture_output=True, timeout=timeout, cwd=cwd,
                               env=cli_env(emu, home, token, env))
        except subprocess.TimeoutExpired as e:
            SECRETS.scan(f"the stdout of scriptum {_label(args)}", e.stdout)
            SECRETS.scan(f"the stderr of scriptum {_label(args)}", e.stderr)
            raise AssertionError(
                f"scriptum {' '.join(map(str, args))} did not end within {timeout} s; "
                f"stderr: {(e.stderr or b'').decode(errors='replace')[-2000:]}") from None
    finally:
        if tmp_home is not None:
            shutil.rmtree(tmp_home, ignore_errors=True)
    err = p.stderr.decode(errors="replace")
    SECRETS.scan(f"the stdout of scriptum {_label(args)}", p.stdout)
    SECRETS.scan(f"the stderr of scriptum {_label(args)}", p.stderr)
    check_no_sanitizer_report(err, "scriptum " + " ".join(map(str, args)))
    return CLIResult(p.returncode, p.stdout, err)


class CLIProcess:
    """The CLI running in the background (watch, run): its stdout is read
    line by line as it comes, its stderr goes to a file."""

    def __init__(self, emu, *args, env=None, token=EMULATOR_TOKEN, endpoint=True, home=None):
        self.args = [str(a) for a in args]
        self._scanned = False
        self._tmp_home = None
        if home is None:
            self._tmp_home = home = tempfile.mkdtemp(prefix="scriptum-home-")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cli_command(emu, args, endpoint), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=cli_env(emu, home, token, env))
        self.pid = self.proc.pid
        self._lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def lines(self):
        """The stdout lines so far, decoded, without their newlines."""
        with self._cond:
            return [l.decode(errors="replace").rstrip("\n") for l in self._lines]

    def wait_for_line(self, predicate, timeout=20, what="a line"):
        """Waits for a stdout line for which predicate(line) is true;
        returns it. Fails if the process ends or timeout passes first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self._lines):
                    line = self._lines[seen].decode(errors="replace").rstrip("\n")
                    seen += 1
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
        state = "ended" if self._eof else f"printed nothing matching within {timeout} s"
        raise AssertionError(f"scriptum {' '.join(self.args)} {state} while waiting for "
                             f"{what}; stdout so far: {self.lines()!r}; "
                             f"stderr: {self.stderr_text()[-2000:]!r}")

    def stderr_text(self):
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def finish(self, timeout=60):
        """Waits for the end; returns CLIResult(rc, stdout bytes, stderr
        text). Kills the process and fails if it does not end in time."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"scriptum {' '.join(self.args)} did not end within "
                                 f"{timeout} s; stdout: {self.lines()!r}; stderr: "
                                 f"{self.stderr_text()[-2000:]!r}") from None
        self._reader.join(10)
        with self._cond:
            out = b"".join(self._lines)
        err = self.stderr_text()
        self._scan(out, err)
        self._cleanup()
        check_no_sanitizer_report(err, "scriptum " + " ".join(self.args))
        return CLIResult(rc, out, err)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._scanned:
            self._reader.join(2)
            with self._cond:
                out = b"".join(self._lines)
            self._scan(out, self.stderr_text())
        self._cleanup()

    def _scan(self, out, err):
        """Scans what the process wrote for secrets, once."""
        if self._scanned:
            return
        self._scanned = True
        SECRETS.scan(f"the stdout of scriptum {_label(self.args)} (background)", out)
        SECRETS.scan(f"the stderr of scriptum {_label(self.args)} (background)", err)

    def _cleanup(self):
        if self._tmp_home is not None:
            shutil.rmtree(self._tmp_home, ignore_errors=True)
            self._tmp_home = None


def write_config(home, text, mode=0o600, name="config.yaml"):
    """Writes HOME/.config/scriptum/<name> with the given mode; returns its
    path."""
    d = os.path.join(str(home), ".config", "scriptum")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    SECRETS.register_config(text, path)
    return path


# ---- hashing large outputs without holding them in memory ----

def raw_output_sha256(emu, thread_id, piece=1 << 20):
    """(sha256 hex digest, size) of /_emulator/threads/{id}/output, read in
    pieces: for outputs too large to hold whole."""
    conn = emu.connection(timeout=300)
    try:
        conn.request("GET", f"/_emulator/threads/{urllib.parse.quote(thread_id)}/output")
        resp = conn.getresponse()
        if resp.status != 200:
            raise HTTPError(resp.status, resp.read(), dict(resp.getheaders()))
        h, n = hashlib.sha256(), 0
        while True:
            data = resp.read(piece)
            if not data:
                break
            h.update(data)
            n += len(data)
        return h.hexdigest(), n
    finally:
        conn.close()


def read(path):
    """The whole of a file's bytes (a mount's .scriptumfs/ file is also
    scanned for secrets: it is what the mount wrote)."""
    with open(path, "rb") as f:
        data = f.read()
    if "/.scriptumfs/" in str(path):
        SECRETS.scan(f"the {str(path)[str(path).rindex('/.scriptumfs/') + 1:]} of a mount", data)
    return data


def file_sha256(path, piece=1 << 20):
    """(sha256 hex digest, size) of a file, read in pieces."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while True:
            data = f.read(piece)
            if not data:
                break
            h.update(data)
            n += len(data)
    return h.hexdigest(), n


# ---- the API's answers in canonical form, whatever --wire the emulator uses ----

THREAD_STATUS_NAMES = ["UNSPECIFIED", "PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED",
                       "CANCELLED"]
STEP_STATUS_NAMES = ["UNSPECIFIED", "PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED",
                     "SKIPPED", "CANCELLED"]
EVENT_TYPE_NAMES = ["UNSPECIFIED", "SNAPSHOT", "STATUS", "STEP_STARTED", "STEP_FINISHED",
                    "YIELD"]
STEP_PART_NAMES = ["UNSPECIFIED", "INPUT", "OUTPUT"]
# the emulator's numbering (tests/emulator/wire.h), in the API docs' order
SCRIPT_STATUS_NAMES = ["UNSPECIFIED", "CREATED", "DRAFT", "ACTIVE", "DISABLED", "ARCHIVED"]
VERSION_STATUS_NAMES = ["UNSPECIFIED", "DRAFT", "COMPILING", "COMPILED", "ACTIVE",
                        "SUPERSEDED", "FAILED"]
_ENUM_KINDS = {"thread": (THREAD_STATUS_NAMES, "THREAD_STATUS_"),
               "step": (STEP_STATUS_NAMES, "STEP_STATUS_"),
               "event": (EVENT_TYPE_NAMES, "THREAD_EVENT_TYPE_"),
               "part": (STEP_PART_NAMES, "STEP_PART_"),
               "script": (SCRIPT_STATUS_NAMES, "SCRIPT_STATUS_"),
               "version": (VERSION_STATUS_NAMES, "VERSION_STATUS_")}
# the keys no client knows that the emulator adds (--wire unknownkeys,
# siblings, random; tests/emulator/wire.h), as camel_key spells them
EMULATOR_UNKNOWN_KEYS = {"requestId", "traceId", "serverTimeMs", "debugInfo", "etag", "kind",
                         "deprecatedFlag", "xEmulatorNote"}
INT64_FIELDS = {"createdAtMs", "startedAtMs", "finishedAtMs", "durationMs", "atMs",
                "outputTotalBytes", "inputTotalBytes", "totalYielded", "uptimeSeconds",
                "updatedAtMs"}
UNARY_WRAPPERS = {"thread", "result", "response", "script", "health"}


def canonical_enum(kind, value):
    """An enum value spelled any tolerated way (§2.6), as its full name."""
    names, prefix = _ENUM_KINDS[kind]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # a number the client does not know is kept as it is
        return prefix + names[value] if 0 <= value < len(names) else value
    if isinstance(value, str):
        v = value.upper()
        if v.startswith(prefix):
            v = v[len(prefix):]
        if v == "CANCELED":
            v = "CANCELLED"
        if v.isdigit() and int(v) < len(names):
            v = names[int(v)]
        if v in names:
            return prefix + v
    return value


def _canon(value, kind=None):
    """kind: the status enum of the objects here when the key above says so
    (a "versions" list)."""
    if isinstance(value, list):
        return [_canon(v, kind) for v in value]
    if not isinstance(value, dict):
        return value
    items = [(camel_key(k), v) for k, v in value.items()]
    keys = {k for k, _ in items}
    if "threadId" in keys:
        kind = "thread"
    elif "stepPath" in keys and "part" not in keys:
        kind = "step"
    elif "name" in keys and "stepPath" not in keys:
        kind = "script"
    elif kind != "version":
        kind = None
    out = {}
    for k, v in items:
        if k == "metadata":
            out[k] = v  # the user's map: its keys are data
        elif k in INT64_FIELDS and isinstance(v, (int, str)) and not isinstance(v, bool):
            out[k] = str(v)
        elif k == "status" and kind is not None:
            out[k] = canonical_enum(kind, v)
        elif k == "type" and "atMs" in keys:
            out[k] = canonical_enum("event", v)
        elif k == "part":
            out[k] = canonical_enum("part", v)
        else:
            out[k] = _canon(v, "version" if k == "versions" else None)
    return out


def unwrap_unary(doc):
    """A unary answer without its one-key wrapper ({"thread": {...}}), also
    when the emulator's unknown keys sit beside it (--wire siblings)."""
    if not isinstance(doc, dict):
        return doc
    wrappers = [k for k, v in doc.items() if k in UNARY_WRAPPERS and isinstance(v, dict)]
    rest = [k for k in doc if k not in wrappers]
    if len(wrappers) == 1 and all(camel_key(k) in EMULATOR_UNKNOWN_KEYS for k in rest):
        return doc[wrappers[0]]
    return doc


def canonical(doc, unwrap=True):
    """A message as the canonical wire spells it (camelCase, int64 as
    strings, full enum names), from any --wire variant; a unary answer's
    one-key wrapper (and unknown siblings) is removed when unwrap."""
    if unwrap:
        doc = unwrap_unary(doc)
    return _canon(doc)


def strip_unknown_keys(value):
    """value without the keys the emulator adds for clients to ignore
    (EMULATOR_UNKNOWN_KEYS), at every level; metadata maps are data."""
    if isinstance(value, list):
        return [strip_unknown_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: (v if k == "metadata" else strip_unknown_keys(v)) for k, v in value.items()
            if camel_key(k) not in EMULATOR_UNKNOWN_KEYS}


def _drop_zero_fields(value):
    if isinstance(value, list):
        return [_drop_zero_fields(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        if k != "metadata":
            v = _drop_zero_fields(v)
        zero = v is None or v is False or v == "" or v == [] or v == {} or \
            (isinstance(v, int) and not isinstance(v, bool) and v == 0) or \
            (k in INT64_FIELDS and v == "0")
        if not zero:
            out[k] = v
    return out


def canonical_message(doc, unwrap=True):
    """What a message says, however the wire spells it (every --wire mode,
    knob and random): canonical(), without the emulator's unknown keys,
    and without fields at their zero value or null (the same as missing,
    §2.6). Two answers that mean the same are equal once through this."""
    if unwrap:
        doc = unwrap_unary(doc)
    return _drop_zero_fields(_canon(strip_unknown_keys(doc)))


def get_canonical(emu, path, **params):
    """A unary GET under /v1/scriptum, canonical: what it says, however the
    emulator's --wire spells it (canonical_message)."""
    return canonical_message(emu.get(path, **params))


def list_all_canonical(emu, **params):
    """Every thread ListThreads gives (newest first), canonical."""
    return list_all(emu, page_size=1000, **params)[0]


def wire_framing(mode):
    """The stream framing of a --wire mode; "auto" (sniff it from the body)
    for random, which picks one per stream."""
    base = mode.split(",")[0]
    return {"array": "array", "sse": "sse", "random": "auto"}.get(base, "ndjson")


def stream_canonical(emu, path, mode=None, params=None, timeout=120):
    """A whole stream under /v1/scriptum: (canonical messages, error).
    mode: the emulator's --wire (None: the one it was started with)."""
    status, body = emu.stream(path, params=params, timeout=timeout)
    assert status == 200, body[:300]
    messages, error = parse_stream(body, wire_framing(mode or emu.wire or "canonical"))
    return [canonical_message(m, unwrap=False) for m in messages], error


def wait_for_status(emu, thread_id, statuses, timeout=30):
    """Polls GetThread (any --wire) until the thread's status word is one of
    statuses; returns the canonical thread."""
    deadline = time.monotonic() + timeout
    while True:
        t = get_canonical(emu, f"/threads/{thread_id}")
        if status_word(t.get("status")) in statuses:
            return t
        if time.monotonic() > deadline:
            raise AssertionError(f"{thread_id} stayed {t.get('status')}")
        time.sleep(0.05)


def step_payloads(emu, thread_id, step_path=None, mode=None):
    """StreamStepResult of a thread: {path: (stepMeta, input bytes, output
    bytes)} in the stream's order."""
    params = {"stepPath": step_path} if step_path else None
    messages, error = stream_canonical(emu, f"/threads/{thread_id}/steps/stream", mode, params)
    assert error is None, error
    out = {}
    current = None
    for m in messages:
        if "stepMeta" in m:
            current = m["stepMeta"]["stepPath"]
            out[current] = [m["stepMeta"], bytearray(), bytearray()]
        elif "stepChunk" in m:
            c = m["stepChunk"]
            part = 1 if c.get("part") == "STEP_PART_INPUT" else 2
            out[c["stepPath"]][part] += base64.b64decode(c.get("data", ""))
    return {p: (v[0], bytes(v[1]), bytes(v[2])) for p, v in out.items()}


def is_zero_value(value):
    """Whether value is a field's zero value, which a message may carry or
    leave out (§2.6)."""
    return value in (None, "", 0, "0", False, [], {}) or (
        isinstance(value, str) and value.endswith("_UNSPECIFIED"))


def assert_same_message(got, want, where="$"):
    """got (the CLI's canonical output) says what want (the API's answer,
    canonical) says: every field equal, a field missing on one side only
    when its value is the zero value."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        for k, v in want.items():
            if k in got:
                assert_same_message(got[k], v, f"{where}.{k}")
            else:
                assert is_zero_value(v), f"{where}.{k} is missing (the API says {v!r})"
        for k in got.keys() - want.keys():
            assert is_zero_value(got[k]), \
                f"{where}.{k} = {got[k]!r} is not in the API's answer"
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: {got!r} is not an array"
        assert len(got) == len(want), f"{where}: {len(got)} items, the API has {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_message(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r}, the API says {want!r}"


def assert_camel_case_keys(value, where="$"):
    """Every key camelCase (the keys of a metadata map are data and exempt)."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            assert_camel_case_keys(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            assert re.fullmatch(r"[a-z][A-Za-z0-9]*", k), f"{where}: key {k!r} is not camelCase"
            if k != "metadata":
                assert_camel_case_keys(v, f"{where}.{k}")


def temp_files(directory):
    """Files under directory named like the CLI's temporary files
    (.name.tmp-XXXXXX)."""
    found = []
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            if ".tmp-" in name or name.endswith(".tmp"):
                found.append(os.path.join(root, name))
    return found


def tree(directory):
    """{relative path: bytes} of every file under directory."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def scriptum_measured(emu, *args, timeout=600, token=EMULATOR_TOKEN, endpoint=True, env=None):
    """Runs the CLI like scriptum() (stdout and stderr to files, for large
    outputs) and also measures it: returns (CLIResult, peak RSS in KiB of
    the CLI process itself, from wait4(2))."""
    home = tempfile.mkdtemp(prefix="scriptum-home-")
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    try:
        p = subprocess.Popen(cli_command(emu, args, endpoint), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, env=cli_env(emu, home, token, env))
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                raise AssertionError(f"scriptum {' '.join(map(str, args))} did not end "
                                     f"within {timeout} s")
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        stdout = out.read()
        SECRETS.scan(f"the stdout of scriptum {_label(args)}", stdout)
        SECRETS.scan(f"the stderr of scriptum {_label(args)}", stderr)
        check_no_sanitizer_report(stderr, "scriptum " + " ".join(map(str, args)))
        return CLIResult(p.returncode, stdout, stderr), usage.ru_maxrss
    finally:
        out.close()
        err.close()
        shutil.rmtree(home, ignore_errors=True)


def sanitized_build():
    """Whether the binaries under test are a sanitizer's build (ASan+UBSan,
    or ThreadSanitizer), whose memory figures mean nothing."""
    return os.path.basename(os.path.normpath(BUILD)) in ("asan", "tsan")


# ---- additions for the mounted tests (tests/test_fs_*.py) ----

import errno as _errno
import stat as _stat

# Where mount points are made: a directory every user can traverse (pytest's
# tmp_path is under a 0700 directory, which would hide a mount from another
# user for the wrong reason).
MOUNT_ROOT = os.environ.get("SCRIPTUMFS_TEST_MOUNT_ROOT", "/tmp")

# Every Mount started and not yet stopped, so that a session end can unmount
# what a crashed test left behind.
LIVE_MOUNTS = []


def run_cmd(cmd, timeout=60, cwd=None, input=None, env=None, check=False, shell=False):
    """Runs a real program (argv list, or a string with shell=True: bash -c)
    with a deadline; returns CompletedProcess with bytes stdout and text
    stderr. A program still running at the deadline is killed and the test
    fails, saying which program hung."""
    if shell:
        cmd = ["bash", "-c", cmd]
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        out, err = p.communicate()
        if _ours(cmd):
            SECRETS.scan(f"the stdout of {_label([os.path.basename(str(cmd[0]))] + cmd[1:])}", out)
            SECRETS.scan(f"the stderr of {_label([os.path.basename(str(cmd[0]))] + cmd[1:])}", err)
        raise AssertionError(f"{cmd!r} did not end within {timeout} s; stderr: "
                             f"{err.decode(errors='replace')[-2000:]!r}") from None
    res = subprocess.CompletedProcess(cmd, p.returncode, out, err.decode(errors="replace"))
    if _ours(cmd):
        SECRETS.scan(f"the stdout of {_label([os.path.basename(str(cmd[0]))] + cmd[1:])}", out)
        SECRETS.scan(f"the stderr of {_label([os.path.basename(str(cmd[0]))] + cmd[1:])}", err)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd!r} exited {res.returncode}: {res.stderr[-2000:]}")
    return res


def _kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def timed_cmd(cmd, **kw):
    """run_cmd, and how long it took in seconds."""
    t0 = time.monotonic()
    res = run_cmd(cmd, **kw)
    return res, time.monotonic() - t0


def fuse_mount_points():
    """The mount points of the FUSE filesystems mounted now."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1].startswith("fuse"):
                out.append(fields[4].replace("\\040", " "))
    return out


def force_unmount(path):
    """Unmounts path however it can: fusermount3 -u (tried for a while, as a
    file may be about to close), then umount, then a lazy umount. Returns
    the messages of the attempts that failed."""
    notes = []
    deadline = time.monotonic() + 5
    while True:
        if path not in fuse_mount_points():
            return notes
        r = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True)
        if r.returncode == 0:
            return notes
        if time.monotonic() > deadline:
            notes.append(f"fusermount3 -u: {r.stderr.strip()}")
            break
        time.sleep(0.2)
    for cmd in (["umount", path], ["umount", "-l", path]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0 or path not in fuse_mount_points():
            return notes
        notes.append(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return notes


def mount_env(home, env=None):
    """The daemon's environment: the caller's minus the variables the CLI
    and the mount read (SCRIPTUM_*), HOME set to home, the sanitizer
    options, then env (a value of None removes a variable)."""
    out = {k: v for k, v in os.environ.items() if k not in CLI_ENV_VARS}
    out.update(SANITIZER_ENV)
    out["HOME"] = str(home)
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out


class MountFailed(Exception):
    """The daemon ended before its mount was ready."""

    def __init__(self, rc, stderr):
        super().__init__(f"scriptumfs exited with {rc} before mounting:\n{stderr}")
        self.rc = rc
        self.stderr = stderr


class Mount:
    """One scriptumfs daemon serving one mount point.

    build/scriptumfs -f -o endpoint=URL,cache_dir=DIR,list_limit=N,
    running_ttl=1s[,token_file=PATH][,...] MOUNTPOINT, with HOME a fresh
    empty directory (no real configuration is read). Ready when the mount
    point is a mount; stop() unmounts it (fusermount3 -u, then umount,
    then umount -l) and fails if the daemon did not exit 0 or printed a
    sanitizer report."""

    def __init__(self, emu, endpoint=True, cache_dir=None, list_limit=None, running_ttl="1s",
                 token_file=None, profile=None, options=(), foreground=True, home=None,
                 env=None, ready_timeout=10, mountpoint=None):
        exe = binary("scriptumfs")
        self._tmp = tempfile.mkdtemp(prefix="scriptumfs-test-", dir=MOUNT_ROOT)
        os.chmod(self._tmp, 0o755)
        self.path = mountpoint or os.path.join(self._tmp, "mnt")
        os.makedirs(self.path, exist_ok=True)
        self.home = home or os.path.join(self._tmp, "home")
        os.makedirs(self.home, exist_ok=True)
        self.cache_dir = cache_dir or os.path.join(self._tmp, "cache")
        self.emu = emu
        self.endpoint = emu.url if endpoint is True else endpoint
        # token_file: None = the emulator's token (if it has one) in a 0600
        # file, unless a profile is used; False = none; else a path
        self.token_file = token_file or None
        if token_file is None and emu is not None and emu.token is not None and profile is None:
            self.token_file = os.path.join(self._tmp, "token")
            with open(os.open(self.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(emu.token + "\n")
        elif self.token_file:
            try:
                with open(self.token_file, "rb") as f:
                    SECRETS.register(f.read(4096).decode(errors="replace"),
                                     "a Mount's token_file")
            except OSError:
                pass
        opts = []
        if self.endpoint:
            opts.append(f"endpoint={self.endpoint}")
        opts.append(f"cache_dir={self.cache_dir}")
        if list_limit is not None:
            opts.append(f"list_limit={list_limit}")
        if running_ttl is not None:
            opts.append(f"running_ttl={running_ttl}")
        if self.token_file:
            opts.append(f"token_file={self.token_file}")
        if profile is not None:
            opts.append(f"profile={profile}")
        opts += list(options)
        self.options = opts
        self.foreground = foreground
        self.cmd = [exe] + (["-f"] if foreground else []) + \
            ["-o", ",".join(opts), self.path]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr,
                                     env=mount_env(self.home, env))
        self.daemon_pid = self.proc.pid if foreground else None
        self.stopped = False
        self.rc = None
        self._err_text = ""
        LIVE_MOUNTS.append(self)
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self._abandon()
            raise

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if os.path.ismount(self.path):
                if not self.foreground:
                    # the parent returns once the daemon is detached and mounted
                    self.proc.wait(timeout=max(1, deadline - time.monotonic()))
                    self.daemon_pid = self._find_daemon()
                return
            rc = self.proc.poll()
            if rc is not None and (self.foreground or rc != 0):
                raise MountFailed(rc, self.stderr_text())
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.path} was not mounted within {timeout} s; "
                                     f"stderr: {self.stderr_text()[-3000:]}")
            time.sleep(0.05)

    def _find_daemon(self):
        """The pid of the detached daemon serving this mount point."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if self.path.encode() in argv and argv[0].endswith(b"scriptumfs"):
                return int(pid)
        return None

    def _abandon(self):
        """Cleans up after a start that failed."""
        force_unmount(self.path)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.foreground:
            pid = self._find_daemon()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        self._err_text = self.stderr_text()
        self._scan_stderr(self._err_text)
        self.stopped = True
        if self in LIVE_MOUNTS:
            LIVE_MOUNTS.remove(self)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def stderr_text(self):
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _scan_meta(self, timeout=3):
        """Scans .scriptumfs/errors and .scriptumfs/config for secrets, from
        a live mount (read in a thread, so that a wedged daemon costs at most
        timeout seconds here)."""
        if not self.alive() or not os.path.ismount(self.path):
            return

        def scan():
            for name in ("errors", "config"):
                try:
                    with open(self(".scriptumfs", name), "rb") as f:
                        data = f.read(16 << 20)
                except OSError:
                    continue
                SECRETS.scan(f"the .scriptumfs/{name} of a mount", data, test=test)

        test = SECRETS.test
        t = threading.Thread(target=scan, daemon=True)
        t.start()
        t.join(timeout)

    def _scan_stderr(self, err):
        SECRETS.scan("the log (stderr) of scriptumfs" +
                     ("" if self.foreground else " before it went to the background"), err)

    def __call__(self, *parts):
        """A path inside the mount."""
        return os.path.join(self.path, *[str(p) for p in parts])

    def thread(self, tid, *parts):
        return self("threads", tid, *parts)

    def read(self, *parts):
        with open(self(*parts), "rb") as f:
            return f.read()

    def alive(self):
        if self.foreground:
            return self.proc.poll() is None
        return self.daemon_pid is not None and os.path.exists(f"/proc/{self.daemon_pid}")

    def stop(self, timeout=20):
        """Unmounts; waits for the daemon to exit; raises if it did not exit
        0, printed a sanitizer report, or had to be killed. Returns its
        stderr."""
        if self.stopped:
            return self._err_text
        self.stopped = True
        if self in LIVE_MOUNTS:
            LIVE_MOUNTS.remove(self)
        self._scan_meta()
        problems = force_unmount(self.path)
        killed = False
        if self.foreground:
            try:
                self.rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.rc = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.rc = self.proc.wait()
                killed = True
        else:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                os.kill(self.daemon_pid, signal.SIGKILL)
                killed = True
        err = self._err_text = self.stderr_text()
        self._stderr.close()
        self._scan_stderr(err)
        still = self.path in fuse_mount_points()
        if not still:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if SANITIZER_REPORT.search(err):
            raise AssertionError("sanitizer report from scriptumfs:\n" + err)
        if still:
            raise AssertionError(f"{self.path} is still mounted: {problems}")
        if killed:
            raise AssertionError(f"scriptumfs did not exit within {timeout} s of the "
                                 f"unmount ({problems}); stderr:\n{err[-3000:]}")
        if self.foreground and self.rc != 0:
            raise AssertionError(f"scriptumfs exited with {self.rc} after the unmount:\n"
                                 f"{err[-3000:]}")
        return err


def unmount_leftovers():
    """Unmounts every Mount still live (a test that crashed past its
    fixture); returns their mount points."""
    left = []
    for m in list(LIVE_MOUNTS):
        left.append(m.path)
        try:
            m.stop()
        except AssertionError:
            pass
    return left


def start_emulator_on_port(port, *args, timeout=15, **kw):
    """An emulator listening on a given loopback port (to stand in for one
    that died there); tries again while the port is not yet free."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Emulator(*args, listen=f"127.0.0.1:{port}", **kw)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def calls(emu, name=None):
    """How many calls of the API the emulator answered: of one call (by its
    name, e.g. "GetThread"), or {name: count} of all."""
    by = emu.requests_log()["byCall"]
    return by if name is None else by.get(name, 0)


def wait_calls(emu, name, n, timeout=5):
    """Waits until the emulator has logged at least n calls of name (a
    request is logged when its response is complete); returns the count."""
    return wait_until(lambda: calls(emu, name) >= n and calls(emu, name), timeout,
                      what=f"{n} {name} call(s)")


def thread_ids_of(emu, **params):
    """Every thread id ListThreads gives, newest first."""
    return [t["threadId"] for t in list_all_canonical(emu, **params)]


def raw_output_slice(emu, thread_id, start, length, piece=1 << 20):
    """Bytes [start, start+length) of /_emulator/threads/{id}/output, read
    as a stream (for outputs too large to hold whole)."""
    conn = emu.connection(timeout=300)
    try:
        conn.request("GET", f"/_emulator/threads/{urllib.parse.quote(thread_id)}/output")
        resp = conn.getresponse()
        if resp.status != 200:
            raise HTTPError(resp.status, resp.read(), dict(resp.getheaders()))
        out, pos = bytearray(), 0
        while pos < start + length:
            data = resp.read(piece)
            if not data:
                break
            lo, hi = max(start, pos), min(start + length, pos + len(data))
            if lo < hi:
                out += data[lo - pos:hi - pos]
            pos += len(data)
        return bytes(out)
    finally:
        conn.close()


def mode_of(path):
    """(file type letter, permission bits) from lstat: 'd', 'f' or 'l'."""
    st = os.lstat(path)
    kind = "d" if _stat.S_ISDIR(st.st_mode) else "l" if _stat.S_ISLNK(st.st_mode) else \
        "f" if _stat.S_ISREG(st.st_mode) else "?"
    return kind, _stat.S_IMODE(st.st_mode)


def os_error(fn, *args, **kw):
    """Calls fn, which must fail with OSError; returns its errno name."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return _errno.errorcode.get(e.errno, str(e.errno))
    raise AssertionError(f"{getattr(fn, '__name__', fn)}{args!r} did not fail")


def write_file(path, data, mode="wb"):
    """open(path, mode).write(data) and close, as a program would: the
    error of the write or of the close (OSError) propagates."""
    f = open(path, mode)
    try:
        f.write(data)
    except BaseException:
        try:
            f.close()
        except OSError:
            pass
        raise
    f.close()


def ceil_div(a, b):
    return -(-a // b)


def settled_log(emu, quiet=0.3, timeout=10):
    """The emulator's request log once it has stopped growing for `quiet`
    seconds (or after `timeout`): a request is logged only after its answer
    went out, so a log read the moment a program returns can miss the last
    one."""
    deadline = time.monotonic() + timeout
    log = emu.requests_log()
    stable_since = time.monotonic()
    while True:
        time.sleep(0.05)
        now = emu.requests_log()
        if now["total"] != log["total"]:
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= quiet or time.monotonic() > deadline:
            return now
        log = now


def settled_calls(emu, quiet=0.3, timeout=10):
    """{call name: count} once the request log has settled (settled_log)."""
    return settled_log(emu, quiet, timeout)["byCall"]


def make_pki(d, ca_name):
    """A test CA (ca.pem), a server certificate it signed for 127.0.0.1
    (server.pem, server.key), and another CA that did not sign it
    (other.pem), made with openssl in directory d; their paths by name."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", f"/CN={ca_name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    # a second CA the server's certificate does not chain to
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key",
            "-out", "other.pem", "-days", "2", "-subj", "/CN=another CA")
    return {name: os.path.join(d, name) for name in
            ("ca.pem", "server.pem", "server.key", "other.pem")}
