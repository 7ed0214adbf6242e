"""`thread result --save DIR` and `thread run --save DIR` (scriptum(1)): the
thread directory they write (status, thread.json, input.json, output.json,
summary.json, yields.ndjson, error, steps/<path>/...), byte-exact outputs of
every size up to 256 MiB streamed to disk in constant memory, the same tree
from run and from result, and what a save that fails leaves behind (no
output.json, no temporary file)."""

import json
import os
import re
import shutil

import pytest

from harness import (assert_same_message, file_sha256, get_canonical, MiB, raw_output_sha256, read,
                     sanitized_build, scriptum, scriptum_measured, step_payloads, temp_files, tree,
                     wait_for_status)

pytestmark = pytest.mark.timeout(120)

STEP_FILES = {"status", "step.json", "input.json", "output.json", "error"}


def save(emu, tid, directory, *extra, **kw):
    return scriptum(emu, *extra, "thread", "result", tid, "--save", str(directory), **kw)


def read_json(path):
    data = read(path)
    assert data.endswith(b"\n"), f"{path} does not end with a newline"
    return json.loads(data)


def assert_pretty(path):
    """Pretty JSON with a 2-space indent."""
    lines = read(path).decode().splitlines()
    assert len(lines) > 1, f"{path} is not pretty-printed: {lines[:1]}"
    indented = [l for l in lines[1:-1] if l.strip()]
    assert indented and all(l.startswith("  ") for l in indented), lines[:5]
    assert re.match(r'^  "', indented[0]), f"{path}: first member not indented by 2: {lines[1]!r}"


def saved_line(res, tid, directory):
    m = re.search(rf"^saved thread {tid} to {re.escape(str(directory))}/?: output (.*), "
                  rf"(\d+) steps?$", res.err, re.M)
    assert m, f"no 'saved thread' line on stderr: {res.err!r}"
    return m.group(1), int(m.group(2))


def step_dirs(directory):
    return sorted(os.listdir(os.path.join(directory, "steps")),
                  key=lambda p: [int(x) for x in p.split(".")])


# ---- output.json, byte for byte, any size ----

@pytest.mark.parametrize("size", [1, 100, 3 * MiB + 1], ids=["1B", "100B", "3MiB+1"])
def test_save_writes_output_json_byte_exact(emu, tmp_path, size):
    tid = emu.seed("echo", outputBytes=size)[0]
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    assert res.out == b""  # messages go to stderr
    assert read(d / "output.json") == emu.raw_output(tid)
    assert read(d / "status") == b"completed\n"
    _, nsteps = saved_line(res, tid, d)
    assert nsteps == 2
    assert temp_files(d) == []


def test_save_of_an_empty_output_writes_no_bytes(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=0)[0]
    assert emu.raw_output(tid) == b""
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    assert read(d / "status") == b"completed\n"
    # "only for a terminal thread that has output": absent, or empty, never anything else
    if (d / "output.json").exists():
        assert read(d / "output.json") == b""
    assert read_json(d / "summary.json").get("outputTotalBytes", "0") in ("0", 0)
    assert temp_files(d) == []


@pytest.mark.timeout(300)
def test_save_of_a_64_mib_output_is_byte_exact(emu, tmp_path):
    size = 64 * MiB
    tid = emu.seed("echo", outputBytes=size)[0]
    d = tmp_path / "save"
    try:
        res, rss_kib = scriptum_measured(emu, "thread", "result", tid, "--save", str(d))
        assert res.rc == 0, res.err
        assert file_sha256(d / "output.json") == raw_output_sha256(emu, tid)
        size_text, _ = saved_line(res, tid, d)
        assert re.fullmatch(r"64(\.0)? MiB", size_text), size_text
        assert temp_files(d) == []
        if not sanitized_build():
            assert rss_kib < 64 * 1024, f"peak RSS {rss_kib} KiB saving 64 MiB"
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_save_of_a_256_mib_output_is_byte_exact_in_constant_memory(emu, tmp_path):
    size = 256 * MiB
    tid = emu.seed("echo", outputBytes=size)[0]
    d = tmp_path / "save"
    try:
        res, rss_kib = scriptum_measured(emu, "thread", "result", tid, "--save", str(d))
        assert res.rc == 0, res.err
        assert os.path.getsize(d / "output.json") == size
        assert file_sha256(d / "output.json") == raw_output_sha256(emu, tid)
        size_text, _ = saved_line(res, tid, d)
        assert re.fullmatch(r"256(\.0)? MiB", size_text), size_text
        assert temp_files(d) == []
        if not sanitized_build():
            # streamed to disk: far less than the output, and not its 4/3 base64 either
            assert rss_kib < 64 * 1024, f"peak RSS {rss_kib} KiB saving 256 MiB"
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- the layout ----

def test_save_layout_of_a_completed_thread(emu, tmp_path):
    inp = '{"month": "2024-05", "n": 1.50, "big": 9007199254740993, "s": "\\u00e9"}'
    tid = emu.seed("bigreport", outputBytes=1000, input=inp)[0]
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    names = set(os.listdir(d))
    assert names == {"status", "thread.json", "input.json", "output.json", "summary.json",
                     "steps"}, names

    assert read(d / "status") == b"completed\n"

    thread = read_json(d / "thread.json")
    assert thread["threadId"] == tid
    assert_same_message(thread, get_canonical(emu, f"/threads/{tid}"))
    assert thread["status"] == "THREAD_STATUS_COMPLETED"
    assert isinstance(thread["createdAtMs"], str)
    assert_pretty(d / "thread.json")

    text = read(d / "input.json").decode()
    assert text.endswith("\n")
    assert json.loads(text) == json.loads(inp)
    # numbers and strings kept verbatim
    assert "1.50" in text and "9007199254740993" in text and "\\u00e9" in text
    assert len(text.splitlines()) > 1  # pretty

    assert read(d / "output.json") == emu.raw_output(tid)

    summary = read_json(d / "summary.json")
    assert_pretty(d / "summary.json")
    assert summary["threadId"] == tid
    assert summary["scriptName"] == "bigreport"
    assert summary["version"] == 1
    assert re.fullmatch(r"(THREAD_STATUS_)?COMPLETED", str(summary["status"]), re.I)
    assert int(summary["outputTotalBytes"]) == 1000
    assert int(summary["totalSteps"]) == 3
    assert int(summary.get("totalYielded", 0)) == 0
    for k in ("createdAtMs", "startedAtMs", "finishedAtMs"):
        assert int(summary[k]) == int(thread[k])
    assert int(summary["durationMs"]) == int(thread["finishedAtMs"]) - int(thread["startedAtMs"])
    api_steps = get_canonical(emu, f"/threads/{tid}/result")["steps"]
    assert_same_message(summary["steps"], api_steps)

    assert step_dirs(d) == ["1", "2", "3"]
    payloads = step_payloads(emu, tid)
    for path, (meta, sin, sout) in payloads.items():
        sd = d / "steps" / path
        assert read(sd / "status") == b"completed\n"
        step = read_json(sd / "step.json")
        assert_pretty(sd / "step.json")
        assert "inputJson" not in step and "outputJson" not in step
        # the inline payloads are left out, and with them (optionally) their cut flags
        assert_same_message(step, {k: v for k, v in meta.items()
                                   if k not in ("inputTruncated", "outputTruncated")
                                   or k in step})
        files = set(os.listdir(sd))
        assert files <= STEP_FILES, files
        assert "error" not in files
        if sin:
            assert read(sd / "input.json") == sin
        else:
            assert "input.json" not in files
        if sout:
            assert read(sd / "output.json") == sout
        else:
            assert "output.json" not in files
    # the render step's 200000-byte output, exactly as StreamStepResult gives it
    assert len(payloads["2"][2]) == 200000
    assert read(d / "steps" / "2" / "output.json") == payloads["2"][2]
    # the first step's input is the thread's input
    assert read(d / "steps" / "1" / "input.json") == inp.encode()
    assert temp_files(d) == []


def test_save_writes_yields_ndjson_and_nested_steps(emu, tmp_path):
    tid = emu.seed("fanout")[0]
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    r = get_canonical(emu, f"/threads/{tid}/result")
    lines = read(d / "yields.ndjson").decode().split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == r["yieldedValues"]  # compact, one per line
    assert [json.loads(l) for l in lines[:-1]] == [{"seq": i, "value": f"item-{i}"}
                                                  for i in range(3)]
    assert step_dirs(d) == [s["stepPath"] for s in r["steps"]]
    assert read(d / "steps" / "2.10.1" / "status") == b"completed\n"
    assert read_json(d / "steps" / "2.10.1" / "step.json")["name"] == "transform"
    assert int(read_json(d / "summary.json")["totalYielded"]) == 3
    _, nsteps = saved_line(res, tid, d)
    assert nsteps == 28


def test_save_of_a_failed_thread_writes_its_error_and_exits_1(emu, tmp_path):
    tid = emu.seed("strict", status="failed")[0]
    t = get_canonical(emu, f"/threads/{tid}")
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 1, res.err
    assert read(d / "status") == b"failed\n"
    assert read(d / "error") == (t["error"] + "\n").encode()
    assert not (d / "output.json").exists()
    assert read_json(d / "thread.json")["status"] == "THREAD_STATUS_FAILED"
    steps = d / "steps"
    assert read(steps / "1" / "status") == b"completed\n"
    assert read(steps / "2" / "status") == b"failed\n"
    assert read(steps / "2" / "error").decode().rstrip("\n") == \
        "input does not match the contract: field 'id' is required"
    assert read(steps / "3" / "status") == b"skipped\n"
    assert not (steps / "3" / "error").exists()
    assert temp_files(d) == []


def test_save_of_a_cancelled_thread(emu, tmp_path):
    tid = emu.seed("nightly", status="cancelled")[0]
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 1, res.err
    assert read(d / "status") == b"cancelled\n"
    assert not (d / "output.json").exists() or read(d / "output.json") == emu.raw_output(tid)


@pytest.mark.timeout(60)
def test_save_of_a_thread_without_input_writes_null(emu, tmp_path):
    tid = emu.post("/threads", {"scriptName": "echo"})["threadId"]
    wait_for_status(emu, tid, {"completed"})
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    assert read(d / "input.json") == b"null\n"


@pytest.mark.timeout(60)
def test_save_of_a_running_thread_writes_what_is_known_and_no_output(emu, tmp_path):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    wait_for_status(emu, tid, {"running"})
    try:
        d = tmp_path / "save"
        res = save(emu, tid, d)
        assert res.rc == 0, res.err
        assert read(d / "status") == b"running\n"
        assert read_json(d / "thread.json")["status"] == "THREAD_STATUS_RUNNING"
        assert not (d / "output.json").exists()
        assert read(d / "steps" / "1" / "status") == b"running\n"
        assert read(d / "steps" / "3" / "status") == b"pending\n"
        assert tid in res.err and "running" in res.err  # the note
        assert temp_files(d) == []
    finally:
        emu.post(f"/threads/{tid}/cancel")


def test_save_creates_the_directory_with_its_parents(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=10)[0]
    d = tmp_path / "a" / "b" / "c"
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    assert read(d / "output.json") == emu.raw_output(tid)


def test_save_replaces_existing_files(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=1000)[0]
    d = tmp_path / "save"
    (d / "steps" / "1").mkdir(parents=True)
    (d / "status").write_text("stale\n")
    (d / "output.json").write_bytes(b"x" * 5000)
    (d / "steps" / "1" / "status").write_text("stale\n")
    res = save(emu, tid, d)
    assert res.rc == 0, res.err
    assert read(d / "status") == b"completed\n"
    assert read(d / "output.json") == emu.raw_output(tid)
    assert read(d / "steps" / "1" / "status") == b"completed\n"


def test_save_into_a_path_that_is_a_file_exits_10(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=10)[0]
    (tmp_path / "file").write_text("x")
    res = save(emu, tid, tmp_path / "file")
    assert res.rc != 0
    assert res.rc == 10, res.err  # a local I/O error while saving
    assert str(tmp_path / "file") in res.err


def test_save_of_an_unknown_thread_exits_5_and_writes_nothing(emu, tmp_path):
    d = tmp_path / "save"
    res = save(emu, "thr_missing", d)
    assert res.rc == 5
    assert "thr_missing" in res.err
    assert not d.exists() or os.listdir(d) == []


# ---- run --save and result --save write the same tree ----

@pytest.mark.timeout(60)
@pytest.mark.parametrize("script,rc", [("echo", 0), ("fanout", 0), ("strict", 1)])
def test_run_save_and_result_save_write_the_same_tree(emu, tmp_path, script, rc):
    d1, d2 = tmp_path / "run", tmp_path / "result"
    res = scriptum(emu, "thread", "run", script, "--input", '{"x": [1, 2.0]}', "--save", str(d1))
    assert res.rc == rc, res.err
    tid = read_json(d1 / "thread.json")["threadId"]
    assert get_canonical(emu, f"/threads/{tid}")["status"] == \
        ("THREAD_STATUS_COMPLETED" if rc == 0 else "THREAD_STATUS_FAILED")
    res2 = save(emu, tid, d2)
    a, b = tree(d1), tree(d2)
    assert sorted(a) == sorted(b)
    diff = [name for name in a if a[name] != b[name]]
    assert diff == [], f"files that differ: {diff}"
    assert res2.rc == rc, res2.err  # result exits as run does: 1 for a failed thread
    assert "status" in a and "thread.json" in a and "summary.json" in a
    if script == "echo":
        assert a["output.json"] == b'{"x": [1, 2.0]}'


@pytest.mark.timeout(60)
def test_run_save_with_result_prints_the_output_and_saves(emu, tmp_path):
    d = tmp_path / "run"
    res = scriptum(emu, "thread", "run", "echo", "--input", '{"both":true}', "--result",
                   "--save", str(d))
    assert res.rc == 0, res.err
    assert res.out == b'{"both":true}'
    assert read(d / "output.json") == b'{"both":true}'


# ---- a save that fails ----

def test_a_stream_cut_midway_fails_with_9_and_leaves_no_output_json(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=8 * MiB)[0]
    emu.faults(cutAfterBytes=MiB, match="/result/stream")
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 9, res.err
    assert not (d / "output.json").exists()
    assert temp_files(d) == []
    assert "StreamThreadResult" in res.err and tid in res.err
    assert "saved thread" not in res.err


def test_a_cut_stream_removes_a_stale_output_json(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=4 * MiB)[0]
    d = tmp_path / "save"
    d.mkdir()
    (d / "output.json").write_bytes(b'{"stale": true}')
    emu.faults(cutAfterBytes=300000, match="/result/stream")
    res = save(emu, tid, d)
    assert res.rc == 9, res.err
    assert not (d / "output.json").exists()
    assert temp_files(d) == []


def test_an_error_line_in_the_stream_fails_and_leaves_no_output_json(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=4 * MiB)[0]
    emu.faults(errorAfterBytes=500000, match="/result/stream")
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 9, res.err  # the error line's code is UNAVAILABLE
    assert not (d / "output.json").exists()
    assert temp_files(d) == []
    assert "StreamThreadResult" in res.err and tid in res.err


def test_a_cut_step_stream_fails_and_leaves_no_step_output(emu, tmp_path):
    tid = emu.seed("bigreport", outputBytes=100)[0]
    emu.faults(cutAfterBytes=100000, match="/steps/stream")
    d = tmp_path / "save"
    res = save(emu, tid, d)
    assert res.rc == 9, res.err
    assert not (d / "steps" / "2" / "output.json").exists()
    assert temp_files(d) == []
    assert "StreamStepResult" in res.err and tid in res.err


def test_a_stream_cut_without_save_exits_9_naming_the_call(emu):
    tid = emu.seed("echo", outputBytes=8 * MiB)[0]
    raw = emu.raw_output(tid)
    emu.faults(cutAfterBytes=MiB, match="/result/stream")
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 9
    assert "StreamThreadResult" in res.err and tid in res.err
    assert len(res.out) < len(raw) and raw.startswith(res.out)
