"""A thread looked at while it runs shows the finished thread once it has
finished (doc/SEMANTICS.md, "Freshness"): each cached answer (the thread,
its result, each step) is judged fresh or final by its own status, never
by another's, so nothing read mid-run freezes. Each test reads files of a
live thread in a different way, waits for the end, and then compares the
mount with the API and with `scriptum thread result --save` under diff -r,
with no remount."""

import json
import os

import pytest

from harness import (raw_output_sha256, file_sha256, read, run_cmd, scriptum, wait_for_status,
                     wait_until, write_file, get_canonical, status_word)

pytestmark = pytest.mark.timeout(120)

MOUNT_ONLY = ("events", "cancel", "resume")


def new_thread(fs, script, body=b"{}"):
    """A thread made through scripts/<script>/new; its id read back from
    the same open file."""
    fd = os.open(fs("scripts", script, "new"), os.O_RDWR)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    return os.path.basename(os.readlink(fs("scripts", script, "latest")))


def diff_against_save(emu, fs, tid, tmp_path):
    saved = tmp_path / f"save-{tid}"
    res = scriptum(emu, "thread", "result", tid, "--save", str(saved))
    assert res.rc in (0, 1), res.err
    args = ["diff", "-r"]
    for name in MOUNT_ONLY:
        args += ["-x", name]
    res = run_cmd(args + [fs.thread(tid), str(saved)], timeout=120)
    assert res.returncode == 0, res.stdout.decode(errors="replace")[-3000:] + res.stderr


def settle(emu, tid, statuses=("completed", "failed", "cancelled")):
    wait_for_status(emu, tid, statuses, timeout=30)


def assert_output_is_the_apis(emu, fs, tid):
    path = fs.thread(tid, "output.json")
    digest, size = raw_output_sha256(emu, tid)
    assert os.stat(path).st_size == size, "output.json's size is not the API's"
    assert file_sha256(path) == (digest, size), "output.json's bytes are not the API's"


def test_an_echo_thread_listed_while_running_has_its_output_after(emu, fs):
    tid = new_thread(fs, "echo", b'{"n": 1}')
    os.listdir(fs.thread(tid))  # looked at while it runs
    for name in ("status", "summary.json", "thread.json"):
        read(fs.thread(tid, name))
    settle(emu, tid)
    wait_until(lambda: read(fs.thread(tid, "status")) == b"completed\n", timeout=5,
               what="status to say completed")
    assert_output_is_the_apis(emu, fs, tid)
    assert read(fs.thread(tid, "output.json")) == b'{"n": 1}'
    res = run_cmd(["stat", "-c", "%s", fs.thread(tid, "output.json")], check=True)
    assert res.stdout.strip() == b"8"


def test_summary_and_steps_read_mid_run_show_the_finished_thread(emu, fs, tmp_path):
    tid = new_thread(fs, "fanout")
    read(fs.thread(tid, "summary.json"))
    steps = os.listdir(fs.thread(tid, "steps"))
    for s in steps:
        read(fs.thread(tid, "steps", s, "status"))
        read(fs.thread(tid, "steps", s, "step.json"))
    assert status_word(get_canonical(emu, f"/threads/{tid}").get("status")) != "completed", \
        "the thread ended before it was looked at: this test shows nothing"
    settle(emu, tid)
    wait_until(lambda: read(fs.thread(tid, "status")) == b"completed\n", timeout=5,
               what="status to say completed")
    summary = get_canonical(emu, f"/threads/{tid}/result", metadataOnly="true")
    want = {s["stepPath"]: status_word(s.get("status")) for s in summary.get("steps", [])}
    got = {s: read(fs.thread(tid, "steps", s, "status")).decode().strip()
           for s in os.listdir(fs.thread(tid, "steps"))}
    assert got == want
    mounted = json.loads(read(fs.thread(tid, "summary.json")))
    assert mounted["status"] in ("completed", "THREAD_STATUS_COMPLETED"), mounted
    diff_against_save(emu, fs, tid, tmp_path)


def test_cp_r_of_a_running_thread_then_the_finished_thread_equals_its_save(emu, fs, tmp_path):
    tid = new_thread(fs, "fanout")
    run_cmd(["cp", "-r", fs.thread(tid), str(tmp_path / "mid")], timeout=60)
    settle(emu, tid)
    wait_until(lambda: read(fs.thread(tid, "status")) == b"completed\n", timeout=5,
               what="status to say completed")
    assert_output_is_the_apis(emu, fs, tid)
    diff_against_save(emu, fs, tid, tmp_path)
    res = run_cmd(["cp", "-r", fs.thread(tid), str(tmp_path / "after")], timeout=60)
    assert res.returncode == 0, res.stderr


def test_a_thread_resumed_through_the_file_shows_its_end(emu, fs, tmp_path):
    tid = new_thread(fs, "approval", b'{"title": "Q3"}')
    settle(emu, tid, ("paused",))
    wait_until(lambda: read(fs.thread(tid, "status")) == b"paused\n", timeout=5,
               what="status to say paused")
    read(fs.thread(tid, "summary.json"))
    for s in os.listdir(fs.thread(tid, "steps")):
        read(fs.thread(tid, "steps", s, "status"))
    write_file(fs.thread(tid, "resume"), b'{"value": "approve"}')
    settle(emu, tid)
    wait_until(lambda: read(fs.thread(tid, "status")) == b"completed\n", timeout=5,
               what="status to say completed")
    assert_output_is_the_apis(emu, fs, tid)
    diff_against_save(emu, fs, tid, tmp_path)
