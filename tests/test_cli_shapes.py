"""Answers of any plausible shape and answers that break the protocol, for
the CLI and the mount (doc/SEMANTICS.md, "Answers of unknown shape"): a
wrapper with siblings is read, not taken for an empty thread; enums of any
spelling or unknown value never fail a call; minimal create/cancel/resume
answers keep the id and are completed with GetThread; an answer without
its identity, or about another thread, is exit 10 / EIO, never data.

The shapes come from the emulator's --wire knobs; answers no honest
server gives come from a canned gateway (a few fixed routes)."""

import http.server
import json
import os
import threading

import pytest

from harness import Mount, MountFailed, read, run_cmd, scriptum, wait_for_status, wait_until

pytestmark = pytest.mark.timeout(90)


def cli_json(emu, *args):
    res = scriptum(emu, "-o", "json", *args)
    assert res.rc == 0, f"exit {res.rc}: {res.err}"
    return json.loads(res.out)


# ---- a wrapper with siblings (bug 2) ----

def test_get_of_a_wrapped_answer_with_siblings_is_the_whole_thread(new_emulator):
    emu = new_emulator("--wire", "wrapped,siblings", seed=None)
    tid = emu.seed("echo", input='{"n": 1}')[0]
    t = cli_json(emu, "thread", "get", tid)
    assert t["threadId"] == tid
    assert t["scriptName"] == "echo"
    assert t["status"] == "THREAD_STATUS_COMPLETED"


def test_create_then_run_through_wrappers_with_siblings(new_emulator):
    emu = new_emulator("--wire", "wrapped,siblings", seed=None)
    t = cli_json(emu, "thread", "create", "echo", "--input", '{"n": 2}')
    assert t["threadId"].startswith("thr_")
    res = scriptum(emu, "thread", "run", "echo", "--input", '{"n": 3}', "--result")
    assert res.rc == 0, res.err
    assert json.loads(res.out) == {"n": 3}


def test_the_mount_shows_statuses_through_wrappers_with_siblings(new_emulator, mount_fs):
    emu = new_emulator("--wire", "wrapped,siblings,unknownkeys", seed=None)
    done = emu.seed("echo")[0]
    failed = emu.seed("strict", status="failed")[0]
    fs = mount_fs(emu)
    assert read(fs.thread(done, "status")) == b"completed\n"
    assert read(fs.thread(failed, "status")) == b"failed\n"
    assert os.listdir(fs("by-status", "failed")) == [failed]


# ---- enums of any spelling (bug 4) ----

@pytest.mark.parametrize("knobs", ["intenums", "unknownenums", "intenums,mixedcase,nulls"])
def test_scripts_list_whatever_their_status_spelling(new_emulator, mount_fs, knobs):
    emu = new_emulator("--wire", knobs, seed=None)
    fs = mount_fs(emu)
    names = os.listdir(fs("scripts"))
    assert "echo" in names and "approval" in names
    doc = json.loads(read(fs("scripts", "echo", "script.json")))
    want = "SCRIPT_STATUS_ACTIVE" if knobs.startswith("intenums") else \
        "SCRIPT_STATUS_ARCHIVED_FOR_TEST"
    assert doc["status"] == want


# ---- minimal answers (bug 5) ----

def test_new_with_a_minimal_create_answer_shows_the_right_status(new_emulator, mount_fs):
    emu = new_emulator("--wire", "canonical,minimal", seed=None)
    fs = mount_fs(emu)
    fd = os.open(fs("scripts", "echo", "new"), os.O_RDWR)
    try:
        os.write(fd, b"{}\n")
        os.close(os.dup(fd))  # the flush that creates it
        tid = os.pread(fd, 100, 0).decode().strip()  # the id, read back from the same file
    finally:
        os.close(fd)
    # at once: the answer to the create told no status, so none is made up
    assert read(fs.thread(tid, "status")).decode().strip() in \
        ("pending", "running", "completed"), "not a status of the thread"
    wait_for_status(emu, tid, {"completed"})
    wait_until(lambda: read(fs.thread(tid, "status")) == b"completed\n", timeout=5,
               what="status to say completed")


def test_cli_create_cancel_resume_with_minimal_answers(new_emulator):
    emu = new_emulator("--wire", "canonical,minimal", seed=None)
    t = cli_json(emu, "thread", "create", "nightly")
    assert t["threadId"].startswith("thr_")
    assert t["scriptName"] == "nightly"  # completed with GetThread
    assert t["status"] != "THREAD_STATUS_UNSPECIFIED"
    c = cli_json(emu, "thread", "cancel", t["threadId"])
    assert c["threadId"] == t["threadId"]
    assert c["status"] == "THREAD_STATUS_CANCELLED"
    a = cli_json(emu, "thread", "create", "approval", "--input", '{"title": "x"}')
    wait_for_status(emu, a["threadId"], {"paused"})
    r = cli_json(emu, "thread", "resume", a["threadId"], "--input", '{"value": "approve"}')
    assert r["threadId"] == a["threadId"]
    assert r["scriptName"] == "approval"


# ---- answers without their identity (bug 3) ----

class Canned(http.server.ThreadingHTTPServer):
    """A gateway of fixed answers: routes maps "METHOD /path" to a JSON
    body (200); anything else is 404."""

    daemon_threads = True

    def __init__(self, routes):
        self.routes = routes
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


class CannedHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = self.path.split("?")[0]
        body = self.server.routes.get(f"{self.command} {path}")
        status = 200 if body is not None else 404
        if body is None:
            body = {"code": 5, "message": "not found", "details": []}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


API = "/v1/scriptum"
THREAD_B = {"threadId": "thr_bbbb", "scriptName": "echo", "status": "THREAD_STATUS_COMPLETED",
            "createdAtMs": "1700000000000", "finishedAtMs": "1700000001000"}


@pytest.fixture
def canned():
    started = []

    def start(routes):
        routes = dict({f"GET {API}/health": {"status": "SERVING"},
                       f"GET {API}/threads": {"threads": []},
                       f"GET {API}/scripts": {"scripts": []}}, **routes)
        c = Canned(routes)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()


class Endpoint:
    """What harness.scriptum() needs of an emulator, for a canned gateway."""

    def __init__(self, url):
        self.url = url
        self.token = None


@pytest.mark.parametrize("answer,missing", [
    ({"requestId": "r1", "status": "THREAD_STATUS_RUNNING"}, "no threadId"),
    (THREAD_B, '"thr_bbbb"'),
    ({"thread": THREAD_B, "requestId": "r1"}, '"thr_bbbb"'),
], ids=["no-id", "another-thread", "another-thread-wrapped"])
def test_get_of_an_answer_without_its_identity_exits_10_naming_the_call(canned, answer, missing):
    c = canned({f"GET {API}/threads/thr_aaaa": answer})
    res = scriptum(Endpoint(c.url), "-o", "json", "thread", "get", "thr_aaaa")
    assert res.rc == 10, (res.rc, res.out, res.err)
    assert res.out.strip() == b""
    assert "GetThread thr_aaaa" in res.err, res.err
    assert missing in res.err, res.err


def test_create_whose_answer_has_no_id_exits_10(canned):
    c = canned({f"POST {API}/threads": {"requestId": "r1"}})
    res = scriptum(Endpoint(c.url), "thread", "create", "echo")
    assert res.rc == 10, (res.rc, res.out, res.err)
    assert "CreateThread echo" in res.err and "no threadId" in res.err, res.err


def test_the_mount_refuses_another_threads_answer_with_eio(canned, tmp_path):
    result_b = {"threadId": "thr_bbbb", "status": "THREAD_STATUS_COMPLETED",
                "outputTotalBytes": "3", "outputData": "YWJj"}
    c = canned({f"GET {API}/threads/thr_aaaa": THREAD_B,
                f"GET {API}/threads/thr_aaaa/result": result_b})
    try:
        fs = Mount(None, endpoint=c.url, token_file=False)
    except MountFailed as e:
        pytest.fail(f"the mount did not start against the canned gateway: {e}")
    try:
        res = run_cmd(["cat", fs.thread("thr_aaaa", "status")])
        assert res.returncode != 0 and "Input/output error" in res.stderr, res
        res = run_cmd(["cat", fs.thread("thr_aaaa", "output.json")])
        assert res.returncode != 0 and res.stdout == b"", res
        errors = read(fs(".scriptumfs", "errors")).decode()
        assert "GetThread thr_aaaa" in errors and "thr_bbbb" in errors, errors
    finally:
        fs.stop()


STEP_1_DETAIL = {"stepPath": "1", "name": "fetch", "status": "STEP_STATUS_COMPLETED",
                 "outputJson": '{"secret_of_step_1": true}'}


def test_steps_detail_answered_with_another_steps_detail_exits_10(canned):
    # asked for step 2, the server sends step 1's detail only
    c = canned({f"GET {API}/threads/thr_aaaa/result": {
        "threadId": "thr_aaaa", "status": "THREAD_STATUS_COMPLETED",
        "steps": [{"stepPath": "1", "name": "fetch"}, {"stepPath": "2", "name": "send"}],
        "stepDetails": [STEP_1_DETAIL]}})
    for fmt in ("table", "json"):
        res = scriptum(Endpoint(c.url), "-o", fmt, "thread", "steps", "thr_aaaa",
                       "--step", "2", "--detail")
        assert res.rc == 10, (fmt, res.rc, res.out, res.err)
        assert b"secret_of_step_1" not in res.out, res.out
        assert "GetThreadResult thr_aaaa" in res.err and 'step "1"' in res.err, res.err


def test_steps_of_one_step_shows_that_step_alone(canned):
    c = canned({f"GET {API}/threads/thr_aaaa/result": {
        "threadId": "thr_aaaa", "status": "THREAD_STATUS_COMPLETED",
        "steps": [{"stepPath": "1", "name": "fetch"}, {"stepPath": "2", "name": "send"}],
        "stepDetails": [dict(STEP_1_DETAIL, stepPath="2", name="send",
                             outputJson='{"of_step_2": true}'), STEP_1_DETAIL]}})
    res = scriptum(Endpoint(c.url), "-o", "json", "thread", "steps", "thr_aaaa",
                   "--step", "2", "--detail")
    assert res.rc == 0, res.err
    [d] = json.loads(res.out)
    assert d["stepPath"] == "2" and "of_step_2" in d["outputJson"], d
    res = scriptum(Endpoint(c.url), "-o", "json", "thread", "steps", "thr_aaaa", "--step", "2")
    assert res.rc == 0, res.err
    assert [s["stepPath"] for s in json.loads(res.out)] == ["2"]
