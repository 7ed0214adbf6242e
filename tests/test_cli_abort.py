"""Ctrl-C and SIGTERM end any command of the CLI at once (scriptum(1),
SIGNALS): a unary call the server holds for 30 s, a listing, a create, a
back-off before a retry, and `thread watch` polling GetThread when it has
no stream. Each exits 130 (SIGINT) or 143 (SIGTERM) within a second of
the signal, whatever the server is doing."""

import http.server
import json
import signal
import subprocess
import tempfile
import threading
import time
import shutil

import pytest

from harness import cli_command, cli_env, scan_output

pytestmark = pytest.mark.timeout(120)

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
SIGNAL_IDS = ["SIGINT", "SIGTERM"]
# a call deadline longer than the server's delays: only the signal ends it
LONG = ["--timeout", "90s"]


def interrupted(emu, args, sig, settle=0.5, stdin=subprocess.DEVNULL):
    """Runs the CLI, sends sig after settle seconds, and returns (exit
    status, seconds from the signal to the exit, stderr). The process is
    killed if it outlives the signal by 5 s (status None then)."""
    home = tempfile.mkdtemp(prefix="scriptum-home-")
    emu.last_call = time.monotonic()
    p = subprocess.Popen(cli_command(emu, args), stdin=stdin,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=cli_env(emu, home))
    try:
        time.sleep(settle)
        assert p.poll() is None, f"scriptum {args} ended before the signal: {p.returncode}"
        sent = time.monotonic()
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        shutil.rmtree(home, ignore_errors=True)
        scan_output(f"the stderr of scriptum {' '.join(map(str, args[:4]))}", err)
    return rc, took, err


def assert_ended(res, want):
    rc, took, err = res
    assert rc == want and took < 1.0, f"exit {rc} {took:.2f} s after the signal; stderr: {err}"


@pytest.fixture(scope="module")
def slow(start_emulator):
    """An emulator with threads, every API call answered after 30 s."""
    emu = start_emulator()
    emu.tid = emu.seed("echo", count=3)[0]
    emu.faults(latencyMs=30000, match="/threads")
    emu.last_call = time.monotonic()
    yield emu
    emu.clear_faults()
    # the emulator cannot stop while it sleeps on an answer: let the last end
    time.sleep(max(0.0, emu.last_call + 31 - time.monotonic()))


@pytest.mark.parametrize("sig,want", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_ends_a_get_the_server_holds(slow, sig, want):
    assert_ended(interrupted(slow, LONG + ["thread", "get", slow.tid], sig), want)


@pytest.mark.parametrize("sig,want", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_ends_a_listing_the_server_holds(slow, sig, want):
    res = interrupted(slow, LONG + ["thread", "list", "--all", "--page-size", "1"], sig)
    assert_ended(res, want)


@pytest.mark.parametrize("sig,want", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_ends_a_create_the_server_holds(slow, sig, want):
    assert_ended(interrupted(slow, ["--call-timeout", "90s", "thread", "create", "echo"], sig),
                 want)


@pytest.mark.parametrize("sig,want", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_ends_a_create_waiting_for_its_input_on_stdin(slow, sig, want):
    # stdin stays open and silent, as a terminal nobody types into
    with subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE) as quiet:
        try:
            res = interrupted(slow, ["thread", "create", "echo", "--input", "@-"], sig,
                              stdin=quiet.stdout)
        finally:
            quiet.kill()
    assert_ended(res, want)


@pytest.fixture(scope="module")
def unavailable(start_emulator):
    """An emulator answering every thread call 503 with Retry-After: 20,
    so that the client waits 20 s before each retry."""
    emu = start_emulator()
    emu.tid = emu.seed("echo", count=1)[0]
    emu.faults(errorRate=1, errorStatus=503, retryAfter=20, match="/threads")
    yield emu
    emu.clear_faults()


@pytest.mark.parametrize("sig,want", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_ends_the_wait_before_a_retry(unavailable, sig, want):
    assert_ended(interrupted(unavailable, LONG + ["thread", "get", unavailable.tid], sig,
                             settle=1.0), want)


def test_a_signal_ends_a_listing_in_its_back_off(unavailable):
    assert_ended(interrupted(unavailable, LONG + ["thread", "list", "--all"], signal.SIGINT,
                             settle=1.0), 130)


# ---- thread watch polling a gateway that has no watch stream ----

API = "/v1/scriptum"
RUNNING = {"threadId": "thr_slow", "scriptName": "echo", "status": "THREAD_STATUS_RUNNING",
           "createdAtMs": "1700000000000"}


class SlowGateway(http.server.ThreadingHTTPServer):
    """A gateway with no watch stream (501), whose GetThread answers at
    once the first time and after 30 s every later time: a watch falls
    back to polling and is then held in a poll."""

    daemon_threads = True

    def __init__(self):
        self.gets = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), SlowHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.token = None
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.stopping.set()
        self.shutdown()
        self.server_close()


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the client was interrupted and went away

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/watch"):
            return self._send(501, {"code": 12, "message": "no streams here", "details": []})
        if path == f"{API}/threads/thr_slow":
            with self.server.lock:
                self.server.gets += 1
                first = self.server.gets == 1
            if not first:
                self.server.stopping.wait(30)
            return self._send(200, RUNNING)
        return self._send(404, {"code": 5, "message": "not found", "details": []})


@pytest.fixture
def gateway():
    g = SlowGateway()
    yield g
    g.stop()


@pytest.mark.parametrize("sig,want", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_ends_a_watch_held_in_its_polling(gateway, sig, want):
    # the first poll answers at once; the next (about 1 s later) is held
    res = interrupted(gateway, LONG + ["thread", "watch", "thr_slow"], sig, settle=3.0)
    assert gateway.gets >= 2, f"the watch did not poll twice: {res}"
    assert_ended(res, want)
