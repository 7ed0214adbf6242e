"""The mount against each --wire variant of the emulator (SPEC §2.6): the
files say the same whatever the server's spelling and framing (snake_case,
wrapped unary answers, streams as one JSON array or as server-sent events),
output.json streams byte-exact, and a mounted thread still diffs equal to
its save."""

import hashlib
import json
import os

import pytest

from harness import (canonical, MiB, raw_output_sha256, read, run_cmd, scriptum, step_payloads,
                     thread_ids_of, wait_for_status, wait_until)

pytestmark = pytest.mark.timeout(120)

MODES = ["canonical", "snake", "wrapped", "array", "sse"]


@pytest.fixture(params=MODES)
def wire(request, new_emulator, mount_fs):
    """(mode, an emulator in that mode with no threads, its mount)."""
    emu = new_emulator("--wire", request.param, seed=None)
    return request.param, emu, mount_fs(emu)


def test_a_finished_fanout_thread_reads_the_same_in_every_wire_mode(wire):
    mode, emu, fs = wire
    tid = emu.seed("fanout")[0]
    assert tid in os.listdir(fs("threads"))
    res = run_cmd(["cat", fs.thread(tid, "status")], check=True)
    assert res.stdout == b"completed\n"
    res = run_cmd(["jq", "-r", ".threadId, .status, .scriptName, (.createdAtMs|type)",
                   fs.thread(tid, "thread.json")], check=True)
    assert res.stdout.decode().split() == [tid, "THREAD_STATUS_COMPLETED", "fanout", "string"]
    res = run_cmd(["sha256sum", fs.thread(tid, "output.json")], check=True)
    assert res.stdout.decode().split()[0] == hashlib.sha256(emu.raw_output(tid)).hexdigest()
    lines = read(fs.thread(tid, "yields.ndjson")).decode().splitlines()
    assert [json.loads(l) for l in lines] == [{"seq": i, "value": f"item-{i}"} for i in range(3)]
    steps = os.listdir(fs.thread(tid, "steps"))
    assert len(steps) == 28 and steps == sorted(steps, key=lambda p: [int(x) for x in
                                                                       p.split(".")])
    assert read(fs.thread(tid, "steps", "2.3.1", "status")) == b"completed\n"


def test_a_large_output_streams_byte_exact_in_every_wire_mode(wire):
    mode, emu, fs = wire
    tid = emu.seed("echo", outputBytes=6 * MiB + 3)[0]
    path = fs.thread(tid, "output.json")
    assert os.stat(path).st_size == 6 * MiB + 3
    res = run_cmd(["sha256sum", path], check=True, timeout=90)
    assert res.stdout.decode().split()[0] == raw_output_sha256(emu, tid)[0]


def test_a_step_payload_streams_byte_exact_in_every_wire_mode(wire):
    mode, emu, fs = wire
    tid = emu.seed("bigreport", outputBytes=10)[0]
    _, _, sout = step_payloads(emu, tid, mode=mode)["2"]
    assert read(fs.thread(tid, "steps", "2", "output.json")) == sout


def test_a_mounted_thread_diffs_equal_to_its_save_in_every_wire_mode(wire, tmp_path):
    mode, emu, fs = wire
    for tid in emu.seed("fanout") + emu.seed("strict", status="failed"):
        d = tmp_path / tid
        res = scriptum(emu, "thread", "result", tid, "--save", str(d))
        assert res.rc in (0, 1), res.err
        res = run_cmd(["diff", "-r", "-x", "events", "-x", "cancel", "-x", "resume",
                       fs.thread(tid), str(d)], timeout=60)
        assert res.returncode == 0, res.stdout.decode(errors="replace")[-3000:]


@pytest.mark.timeout(60)
def test_new_and_resume_in_every_wire_mode(wire):
    mode, emu, fs = wire
    with open(fs("scripts", "approval", "new"), "w") as f:
        f.write('{"title": "wire"}')
    tid = os.path.basename(os.readlink(fs("scripts", "approval", "latest")))
    assert tid.startswith("thr_")
    assert thread_ids_of(emu) == [tid]
    wait_for_status(emu, tid, {"paused"})
    wait_until(lambda: read(fs.thread(tid, "status")) == b"paused\n", timeout=5,
               what="status to read paused")
    with open(fs.thread(tid, "resume"), "w") as f:
        f.write('{"value": "approve"}')
    wait_until(lambda: read(fs.thread(tid, "status")) == b"completed\n", timeout=10,
               what="status to read completed")

    def last_event_status():
        lines = read(fs.thread(tid, "events")).decode().splitlines()
        return lines and canonical(json.loads(lines[-1]), unwrap=False)["thread"]["status"]

    wait_until(lambda: last_event_status() == "THREAD_STATUS_COMPLETED", timeout=5,
               what="the completed status as the last event")
