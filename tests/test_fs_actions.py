"""threads/<id>/resume, threads/<id>/cancel, and following a live thread
(SPEC §3, §4): an answer written to resume continues a paused thread, a
wrong one fails the close with EINVAL, a thread not in a state for the
action is EBUSY; tail -f of events shows new events up to the final status;
a running thread's status is fresh within about a second (running_ttl=1s)."""

import errno
import json
import os
import subprocess
import threading
import time

import pytest

from harness import (canonical, get_canonical, read, run_cmd, settled_calls, wait_for_status,
                     wait_until, write_file)

pytestmark = pytest.mark.timeout(90)


def paused_approval(emu, title="Launch"):
    tid = emu.post("/threads", {"scriptName": "approval",
                                "inputJson": json.dumps({"title": title})})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    return tid


def running_nightly(emu):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    wait_for_status(emu, tid, {"running"})
    return tid


def status_word_of(emu, tid):
    return get_canonical(emu, f"/threads/{tid}")["status"].split("_")[-1].lower()


def wait_status_file(fs, tid, word, timeout=5):
    want = f"{word}\n".encode()
    last = []

    def check():
        last[:] = [read(fs.thread(tid, "status"))]
        return last[0] == want

    try:
        wait_until(check, timeout=timeout, interval=0.05)
    except AssertionError:
        raise AssertionError(f"threads/{tid}/status stayed {last[0]!r}, not {want!r}") from None


# ---- resume ----

def test_resume_with_the_answer_completes_a_paused_thread(emu, fs):
    tid = paused_approval(emu)
    assert read(fs.thread(tid, "status")) == b"paused\n"
    res = run_cmd(f"echo '{{\"value\":\"approve\"}}' > {fs.thread(tid, 'resume')}", shell=True)
    assert res.returncode == 0, res.stderr
    assert settled_calls(emu).get("ResumeThread", 0) == 1
    wait_status_file(fs, tid, "completed", timeout=10)
    assert status_word_of(emu, tid) == "completed"
    wait_until(lambda: os.path.exists(fs.thread(tid, "output.json")), timeout=5,
               what="output.json of the completed thread")
    assert read(fs.thread(tid, "output.json")) == emu.raw_output(tid)
    assert read(fs.thread(tid, "steps", "2", "status")) == b"completed\n"


def test_resume_from_python_completes_a_paused_thread(emu, fs):
    tid = paused_approval(emu)
    write_file(fs.thread(tid, "resume"), b'"approve"', mode="wb")
    wait_status_file(fs, tid, "completed", timeout=10)


def test_a_wrong_answer_fails_the_close_with_einval_and_the_thread_stays_paused(emu, fs, tmp_path):
    tid = paused_approval(emu)
    with pytest.raises(OSError) as e:
        write_file(fs.thread(tid, "resume"), b'{"value": "maybe"}')
    assert e.value.errno == errno.EINVAL, e.value
    src = tmp_path / "answer.json"
    src.write_text('{"value": 42}')
    res = run_cmd(f"cat {src} > {fs.thread(tid, 'resume')}", shell=True)
    assert res.returncode != 0 and "Invalid argument" in res.stderr, res.stderr
    assert status_word_of(emu, tid) == "paused"
    time.sleep(1.2)
    assert read(fs.thread(tid, "status")) == b"paused\n"


def test_an_answer_that_is_not_json_is_einval_and_not_sent(emu, fs):
    tid = paused_approval(emu)
    with pytest.raises(OSError) as e:
        write_file(fs.thread(tid, "resume"), b"approve")
    assert e.value.errno == errno.EINVAL
    assert settled_calls(emu).get("ResumeThread", 0) == 0
    assert status_word_of(emu, tid) == "paused"


def test_resume_of_a_completed_thread_is_ebusy(emu, fs):
    tid = emu.seed("approval")[0]
    with pytest.raises(OSError) as e:
        write_file(fs.thread(tid, "resume"), b'{"value": "approve"}')
    assert e.value.errno == errno.EBUSY, e.value
    res = run_cmd(f"/bin/echo '\"approve\"' > {fs.thread(tid, 'resume')}", shell=True)
    assert res.returncode != 0 and "Device or resource busy" in res.stderr, res.stderr
    assert read(fs.thread(tid, "status")) == b"completed\n"


def test_resume_of_a_running_thread_is_ebusy(emu, fs):
    tid = running_nightly(emu)
    try:
        with pytest.raises(OSError) as e:
            write_file(fs.thread(tid, "resume"), b'"approve"')
        assert e.value.errno == errno.EBUSY, e.value
    finally:
        emu.post(f"/threads/{tid}/cancel")


# ---- cancel ----

def test_cancel_of_a_running_thread_cancels_it(emu, fs):
    tid = running_nightly(emu)
    assert read(fs.thread(tid, "status")) == b"running\n"
    res = run_cmd(f"echo x > {fs.thread(tid, 'cancel')}", shell=True)
    assert res.returncode == 0, res.stderr
    assert settled_calls(emu).get("CancelThread", 0) == 1
    assert status_word_of(emu, tid) == "cancelled"
    wait_status_file(fs, tid, "cancelled", timeout=3)
    assert json.loads(read(fs.thread(tid, "thread.json")))["status"] == "THREAD_STATUS_CANCELLED"


def test_cancel_of_a_paused_thread_from_python(emu, fs):
    tid = paused_approval(emu)
    write_file(fs.thread(tid, "cancel"), b"\n")
    assert status_word_of(emu, tid) == "cancelled"
    wait_status_file(fs, tid, "cancelled", timeout=3)


def test_cancel_of_a_completed_thread_is_ebusy(emu, fs):
    tid = emu.seed("nightly")[0]
    with pytest.raises(OSError) as e:
        write_file(fs.thread(tid, "cancel"), b"1")
    assert e.value.errno == errno.EBUSY, e.value
    res = run_cmd(f"/bin/echo yes > {fs.thread(tid, 'cancel')}", shell=True)
    assert res.returncode != 0 and "Device or resource busy" in res.stderr, res.stderr
    assert read(fs.thread(tid, "status")) == b"completed\n"


def test_cancel_of_an_unknown_thread_is_enoent(emu, fs):
    res = run_cmd(f"echo x > {fs.thread('thr_nosuchthread0', 'cancel')}", shell=True)
    assert res.returncode != 0 and "No such file or directory" in res.stderr
    assert settled_calls(emu).get("CancelThread", 0) == 0


# ---- following a live thread ----

class Tail:
    """tail -f of a file, its lines collected as they come."""

    def __init__(self, path):
        self.proc = subprocess.Popen(["tail", "-n", "+1", "-f", path], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"tail -f showed no {what} within {timeout} s; "
                                         f"lines: {self.lines!r}")
                self.cond.wait(min(left, 0.2))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=10)
        self.reader.join(5)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return err


def event(line):
    return canonical(json.loads(line), unwrap=False)


def is_event(line, type_=None, status=None):
    try:
        e = event(line)
    except ValueError:
        return False
    if type_ is not None and e.get("type") != "THREAD_EVENT_TYPE_" + type_:
        return False
    if status is not None and e.get("thread", {}).get("status") != "THREAD_STATUS_" + status:
        return False
    return True


@pytest.mark.timeout(60)
def test_tail_f_of_events_shows_new_events_and_the_final_status(emu, fs):
    tid = paused_approval(emu)
    tail = Tail(fs.thread(tid, "events"))
    try:
        first = tail.wait_for(lambda l: True, 10, "first event")
        assert is_event(first, "SNAPSHOT"), first
        time.sleep(0.5)
        emu.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
        tail.wait_for(lambda l: is_event(l, "STEP_STARTED") and
                      event(l)["step"]["stepPath"] == "3", 15, "STEP_STARTED of step 3")
        last = tail.wait_for(lambda l: is_event(l, "STATUS", "COMPLETED"), 15,
                             "the final status event")
        assert event(last)["thread"]["threadId"] == tid
    finally:
        err = tail.stop()
    assert "error" not in err.lower(), err
    for line in tail.lines:
        assert line.endswith(b"\n")
        json.loads(line)  # NDJSON: one document a line


def test_events_of_a_running_thread_start_with_a_snapshot(emu, fs):
    tid = running_nightly(emu)
    try:
        data = read(fs.thread(tid, "events"))
        lines = data.decode().splitlines()
        assert lines, "no events"
        assert is_event(lines[0], "SNAPSHOT"), lines[0]
        assert event(lines[0])["thread"]["threadId"] == tid
        emu.post(f"/threads/{tid}/cancel")
        wait_until(lambda: any(is_event(l, "STATUS", "CANCELLED") for l in
                               read(fs.thread(tid, "events")).decode().splitlines()),
                   timeout=5, what="the cancelled status event in events")
        res = run_cmd(["jq", "-c", ".type", fs.thread(tid, "events")], check=True)
        assert res.stdout.decode().splitlines()[0].strip('"').endswith("SNAPSHOT")
    finally:
        try:
            emu.post(f"/threads/{tid}/cancel")
        except Exception:
            pass


@pytest.mark.timeout(60)
def test_a_running_threads_status_changes_within_a_second_of_the_api(emu, fs):
    tid = paused_approval(emu)
    assert read(fs.thread(tid, "status")) == b"paused\n"
    emu.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
    wait_for_status(emu, tid, {"completed"})
    t_api = time.monotonic()
    wait_status_file(fs, tid, "completed", timeout=3)
    took = time.monotonic() - t_api
    assert took <= 2.0, f"status changed {took:.2f} s after the API's (running_ttl=1s)"
    t = json.loads(read(fs.thread(tid, "thread.json")))
    assert t["status"] == "THREAD_STATUS_COMPLETED"


@pytest.mark.timeout(60)
def test_a_running_threads_thread_json_and_summary_follow_it(emu, fs):
    tid = running_nightly(emu)
    try:
        assert json.loads(read(fs.thread(tid, "thread.json")))["status"] == \
            "THREAD_STATUS_RUNNING"
        s1 = json.loads(read(fs.thread(tid, "summary.json")))
        assert "RUNNING" in str(s1["status"]).upper()
        emu.post(f"/threads/{tid}/cancel")
        t_api = time.monotonic()
        wait_until(lambda: json.loads(read(fs.thread(tid, "thread.json")))["status"] ==
                   "THREAD_STATUS_CANCELLED", timeout=3, what="thread.json to say cancelled")
        wait_until(lambda: "CANCELLED" in str(json.loads(
            read(fs.thread(tid, "summary.json")))["status"]).upper(), timeout=3,
            what="summary.json to say cancelled")
        assert time.monotonic() - t_api <= 3
    finally:
        try:
            emu.post(f"/threads/{tid}/cancel")
        except Exception:
            pass
