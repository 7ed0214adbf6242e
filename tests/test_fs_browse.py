"""Browsing a mount (SPEC §3, §4): the top level, threads/ newest first and
cut at list_limit with no request per entry, any thread reachable by name,
unknown names ENOENT, every file of a thread directory (existence, type,
mode, owner, content), a mounted thread equal to `scriptum thread result
--save` under `diff -r`, and find, cp -r, grep -r and os.walk over it. Each
test has its own emulator and mount, driven with real programs."""

import json
import os
import re
import stat
import time
import urllib.parse

import pytest

from harness import (assert_same_message, ceil_div, get_canonical, MiB, mode_of, os_error, read,
                     run_cmd, scriptum, settled_calls, step_payloads, thread_ids_of, timed_cmd,
                     wait_for_status, wait_until)

pytestmark = pytest.mark.timeout(120)

TOP = {"threads", "scripts", "by-status", ".scriptumfs"}
THREAD_FILES = {"status", "thread.json", "input.json", "output.json", "summary.json",
                "yields.ndjson", "error", "events", "cancel", "resume", "steps"}
MOUNT_ONLY = ("events", "cancel", "resume")
STEP_FILES = {"status", "step.json", "input.json", "output.json", "error"}
PER_THREAD_CALLS = ("GetThread", "GetThreadResult", "WatchThread", "StreamThreadResult",
                    "StreamStepResult", "WatchStep")


def read_json(path):
    data = read(path)
    assert data.endswith(b"\n"), f"{path} does not end with a newline: {data[-40:]!r}"
    return json.loads(data)


def assert_pretty(path):
    """Pretty JSON with a 2-space indent (the layout of client/layout.c)."""
    lines = read(path).decode().splitlines()
    assert len(lines) > 1, f"{path} is not pretty-printed: {lines[:1]}"
    indented = [l for l in lines[1:-1] if l.strip()]
    assert indented and all(l.startswith("  ") for l in indented), lines[:5]
    assert re.match(r'^  "', indented[0]), f"{path}: first member not indented by 2"


def numeric(path):
    return [int(x) for x in path.split(".")]


def save(emu, tid, directory):
    res = scriptum(emu, "thread", "result", tid, "--save", str(directory))
    assert res.rc in (0, 1), res.err  # 1: a saved failed or cancelled thread
    return res


def diff_r(a, b):
    """diff -r of two thread directories, the mount-only entries excluded."""
    args = ["diff", "-r"]
    for name in MOUNT_ONLY:
        args += ["-x", name]
    return run_cmd(args + [str(a), str(b)], timeout=120)


# ---- the top level ----

def test_the_root_holds_threads_scripts_by_status_and_scriptumfs(fs):
    assert set(os.listdir(fs.path)) == TOP
    res = run_cmd(["ls", fs.path], check=True)
    assert res.stdout.decode().split() == ["by-status", "scripts", "threads"]
    for name in TOP:
        assert mode_of(fs(name)) == ("d", 0o555), name
    st = os.stat(fs.path)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_stat_of_the_top_directories_shows_mode_and_owner(fs):
    res = run_cmd(["stat", "-c", "%n %A %U %F", fs("threads"), fs("scripts"),
                   fs("by-status")], check=True)
    user = run_cmd(["id", "-un"], check=True).stdout.decode().strip()
    for line in res.stdout.decode().splitlines():
        _, mode, owner, kind = line.split(" ", 3)
        assert (mode, owner, kind) == ("dr-xr-xr-x", user, "directory"), line


def test_a_mount_fetches_nothing_until_asked(emu, mount_fs):
    emu.seed("echo", count=20)
    emu.seed("fanout", count=5)
    fs = mount_fs(emu)
    time.sleep(0.5)
    emu.reset_requests()
    time.sleep(2)
    assert emu.requests_log()["recent"] == []  # idle: nothing at all
    os.stat(fs("threads"))
    os.stat(fs("scripts"))
    os.listdir(fs.path)
    by = settled_calls(emu)
    for name in PER_THREAD_CALLS:
        assert by.get(name, 0) == 0, by


# ---- threads/: newest first, list_limit, no request per entry ----

def test_threads_are_listed_newest_first(emu, fs):
    emu.seed("echo", count=6)
    emu.seed("fanout", count=3)
    emu.seed("strict", count=2, status="failed")
    want = thread_ids_of(emu)
    assert os.listdir(fs("threads")) == want  # directory order
    res = run_cmd(["ls", "-1U", fs("threads")], check=True)
    assert res.stdout.decode().split() == want


@pytest.mark.timeout(180)
def test_ls_l_of_threads_makes_no_request_per_thread(emu, mount_fs):
    n = 2500
    emu.seed("echo", count=n)
    fs = mount_fs(emu, list_limit=3000)
    emu.reset_requests()
    res = run_cmd(["ls", "-l", fs("threads")], timeout=120, check=True)
    lines = res.stdout.decode().splitlines()
    assert lines[0].startswith("total")
    entries = lines[1:]
    assert len(entries) == n
    by = settled_calls(emu)  # (before this test's own ListThreads below)
    for line in entries:
        assert line.startswith("dr-xr-xr-x"), line
    assert {line.split()[-1] for line in entries} == set(thread_ids_of(emu))
    for name in PER_THREAD_CALLS:
        assert by.get(name, 0) == 0, f"ls -l made {by.get(name)} {name} calls: {by}"
    assert 1 <= by.get("ListThreads", 0) <= ceil_div(n, 1000), by


def test_list_limit_cuts_threads_to_the_newest(emu, mount_fs):
    emu.seed("echo", count=12)
    want = thread_ids_of(emu)[:5]
    fs = mount_fs(emu, list_limit=5)
    emu.reset_requests()
    res = run_cmd(["ls", "-l", fs("threads")], check=True)
    lines = res.stdout.decode().splitlines()
    assert len(lines) == 1 + 5, lines
    assert {l.split()[-1] for l in lines[1:]} == set(want)
    by = settled_calls(emu)
    for name in PER_THREAD_CALLS:
        assert by.get(name, 0) == 0, by
    assert 1 <= by.get("ListThreads", 0) <= ceil_div(5, 1000), by
    assert os.listdir(fs("threads")) == want
    res = run_cmd(["ls", fs("threads")], check=True)
    assert sorted(res.stdout.decode().split()) == sorted(want)


def test_a_thread_older_than_list_limit_resolves_by_name(emu, mount_fs):
    old = emu.seed("echo", count=1, input='{"old": true}')[0]
    emu.seed("echo", count=10)
    fs = mount_fs(emu, list_limit=5)
    assert old not in os.listdir(fs("threads"))
    res = run_cmd(["cat", fs.thread(old, "status")])
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"completed\n"
    assert run_cmd(["ls", "-d", fs.thread(old)]).returncode == 0
    assert json.loads(read(fs.thread(old, "input.json"))) == {"old": True}
    assert read(fs.thread(old, "output.json")) == emu.raw_output(old)
    assert mode_of(fs.thread(old)) == ("d", 0o555)


@pytest.mark.parametrize("rel", [
    "threads/thr_nosuchthread0",
    "threads/thr_nosuchthread0/status",
    "scripts/nosuchscript",
    "scripts/nosuchscript/new",
    "by-status/nosuchstatus",
    ".scriptumfs/nosuchfile",
    "nosuchdir",
])
def test_an_unknown_name_is_enoent(emu, fs, rel):
    path = os.path.join(fs.path, rel)
    res = run_cmd(["cat", path])
    assert res.returncode != 0
    assert "No such file or directory" in res.stderr, res.stderr
    res = run_cmd(["ls", path])
    assert res.returncode == 2, res
    assert "No such file or directory" in res.stderr
    assert os_error(os.stat, path) == "ENOENT"


def test_an_unknown_file_or_step_of_a_known_thread_is_enoent(emu, fs):
    tid = emu.seed("echo")[0]
    for rel in ("nosuchfile", "steps/99", "steps/1/nosuchfile", "steps/1.0", "steps/01",
                "yields.ndjson", "error"):
        path = fs.thread(tid, rel)
        assert os_error(os.stat, path) == "ENOENT", rel
        res = run_cmd(["ls", path])
        assert res.returncode == 2, (rel, res)


@pytest.mark.parametrize("name", ["thr_a?b", "thr_a#b", "thr_a b", "thr_a%2Fb", "thr_%2e%2e",
                                  "..%2F..%2Fhealth", "thr_\u00e9", "x" * 255, "thr_a\\b",
                                  "thr_a;b", "thr_a&pageSize=1"])
def test_hostile_thread_names_are_enoent_and_sent_encoded(emu, fs, name):
    emu.seed("echo")
    emu.reset_requests()
    path = fs("threads", name)
    assert os_error(os.stat, path) == "ENOENT"
    assert os_error(os.listdir, path) == "ENOENT"
    assert fs.alive()
    for r in emu.requests_log()["recent"]:
        # whatever was sent went as one percent-encoded path segment that
        # decodes to the name: nothing cut at '?' or '#', nothing climbing up
        path = r["path"]
        assert re.fullmatch(r"/v1/scriptum/[\x21-\x7e]*", path), r
        assert "?" not in path and "#" not in path, r
        parts = path[len("/v1/scriptum/"):].split("/")
        if parts[0] == "threads" and len(parts) > 1:
            decoded = urllib.parse.unquote(parts[1])
            # (the emulator's log keeps the first 255 bytes of a path)
            assert decoded == name or (len(path) >= 255 and name.startswith(decoded)), r
            assert len(parts) <= 4, r
        else:
            assert parts[0] in ("threads", "health", "scripts"), r
    # and the mount still works
    assert os.listdir(fs("threads"))


# ---- a thread directory ----

def test_a_completed_thread_directory_has_every_file_with_its_mode(emu, fs):
    inp = '{"month": "2024-05", "n": 1.50, "big": 9007199254740993, "s": "\\u00e9"}'
    tid = emu.seed("bigreport", outputBytes=1000, input=inp)[0]
    d = fs.thread(tid)
    names = set(os.listdir(d))
    assert names == {"status", "thread.json", "input.json", "output.json", "summary.json",
                     "events", "cancel", "resume", "steps"}, names
    for name in names:
        want = ("d", 0o555) if name == "steps" else \
            ("f", 0o200) if name in ("cancel", "resume") else ("f", 0o444)
        assert mode_of(os.path.join(d, name)) == want, name
        st = os.lstat(os.path.join(d, name))
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), name
    assert mode_of(d) == ("d", 0o555)
    res = run_cmd(["ls", "-l", d], check=True)
    modes = {l.split()[-1]: l.split()[0] for l in res.stdout.decode().splitlines()[1:]}
    assert modes["cancel"] == "--w-------" and modes["resume"] == "--w-------"
    assert modes["status"] == "-r--r--r--" and modes["steps"] == "dr-xr-xr-x"


def test_a_completed_thread_directory_has_the_right_content(emu, fs):
    inp = '{"month": "2024-05", "n": 1.50, "big": 9007199254740993, "s": "\\u00e9"}'
    tid = emu.seed("bigreport", outputBytes=1000, input=inp)[0]
    d = fs.thread(tid)
    assert read(os.path.join(d, "status")) == b"completed\n"
    assert run_cmd(["cat", os.path.join(d, "status")], check=True).stdout == b"completed\n"

    thread = read_json(os.path.join(d, "thread.json"))
    assert_pretty(os.path.join(d, "thread.json"))
    assert thread["threadId"] == tid
    assert thread["status"] == "THREAD_STATUS_COMPLETED"
    assert isinstance(thread["createdAtMs"], str)  # int64 as strings
    assert_same_message(thread, get_canonical(emu, f"/threads/{tid}"))
    res = run_cmd(["jq", "-r", ".threadId, .scriptName, .status", os.path.join(d, "thread.json")],
                  check=True)
    assert res.stdout.decode().split() == [tid, "bigreport", "THREAD_STATUS_COMPLETED"]

    text = read(os.path.join(d, "input.json")).decode()
    assert text.endswith("\n") and len(text.splitlines()) > 1
    assert json.loads(text) == json.loads(inp)
    assert "1.50" in text and "9007199254740993" in text and "\\u00e9" in text

    assert read(os.path.join(d, "output.json")) == emu.raw_output(tid)
    assert os.stat(os.path.join(d, "output.json")).st_size == 1000

    summary = read_json(os.path.join(d, "summary.json"))
    assert_pretty(os.path.join(d, "summary.json"))
    assert summary["threadId"] == tid
    assert int(summary["outputTotalBytes"]) == 1000
    assert int(summary["totalSteps"]) == 3
    assert_same_message(summary["steps"], get_canonical(emu, f"/threads/{tid}/result")["steps"])
    res = run_cmd(["jq", "-r", ".outputTotalBytes", os.path.join(d, "summary.json")], check=True)
    assert res.stdout == b"1000\n"

    for gone in ("yields.ndjson", "error"):
        assert not os.path.exists(os.path.join(d, gone)), gone
    # the writable files read as nothing
    assert read(os.path.join(d, "cancel")) == b""
    assert read(os.path.join(d, "resume")) == b""


def test_steps_of_a_finished_thread(emu, fs):
    inp = '{"q": 1}'
    tid = emu.seed("bigreport", outputBytes=100, input=inp)[0]
    steps = fs.thread(tid, "steps")
    assert os.listdir(steps) == ["1", "2", "3"]
    payloads = step_payloads(emu, tid)
    for path, (meta, sin, sout) in payloads.items():
        sd = os.path.join(steps, path)
        assert mode_of(sd) == ("d", 0o555)
        files = set(os.listdir(sd))
        want = {"status", "step.json"} | ({"input.json"} if sin else set()) | \
            ({"output.json"} if sout else set())
        assert files == want, (path, files)
        for name in files:
            assert mode_of(os.path.join(sd, name)) == ("f", 0o444), (path, name)
        assert read(os.path.join(sd, "status")) == b"completed\n"
        step = read_json(os.path.join(sd, "step.json"))
        assert_pretty(os.path.join(sd, "step.json"))
        assert "inputJson" not in step and "outputJson" not in step
        assert step["stepPath"] == path and step["name"] == meta["name"]
        if sin:
            assert read(os.path.join(sd, "input.json")) == sin
            assert os.stat(os.path.join(sd, "input.json")).st_size == len(sin)
        if sout:
            assert read(os.path.join(sd, "output.json")) == sout
            assert os.stat(os.path.join(sd, "output.json")).st_size == len(sout)
    assert read(os.path.join(steps, "1", "input.json")) == inp.encode()
    assert os.stat(os.path.join(steps, "2", "output.json")).st_size == 200000


def test_yields_and_nested_steps_in_numeric_order(emu, fs):
    tid = emu.seed("fanout")[0]
    d = fs.thread(tid)
    r = get_canonical(emu, f"/threads/{tid}/result")
    lines = read(os.path.join(d, "yields.ndjson")).decode().split("\n")
    assert lines[-1] == ""
    assert [json.loads(l) for l in lines[:-1]] == [{"seq": i, "value": f"item-{i}"}
                                                  for i in range(3)]
    assert lines[:-1] == r["yieldedValues"]
    want = [s["stepPath"] for s in r["steps"]]
    assert want == sorted(want, key=numeric) and len(want) == 28
    assert os.listdir(os.path.join(d, "steps")) == want
    res = run_cmd(["ls", "-1U", os.path.join(d, "steps")], check=True)
    assert res.stdout.decode().split() == want
    assert read(os.path.join(d, "steps", "2.10.1", "status")) == b"completed\n"
    assert read_json(os.path.join(d, "steps", "2.10.1", "step.json"))["name"] == "transform"
    assert int(read_json(os.path.join(d, "summary.json"))["totalYielded"]) == 3
    res = run_cmd(["jq", "-c", ".seq", os.path.join(d, "yields.ndjson")], check=True)
    assert res.stdout == b"0\n1\n2\n"


def test_a_failed_thread_has_its_error_and_no_output(emu, fs):
    tid = emu.seed("strict", status="failed")[0]
    t = get_canonical(emu, f"/threads/{tid}")
    d = fs.thread(tid)
    assert read(os.path.join(d, "status")) == b"failed\n"
    assert read(os.path.join(d, "error")) == (t["error"] + "\n").encode()
    assert mode_of(os.path.join(d, "error")) == ("f", 0o444)
    assert not os.path.exists(os.path.join(d, "output.json"))
    assert os_error(open, os.path.join(d, "output.json"), "rb") == "ENOENT"
    steps = os.path.join(d, "steps")
    assert read(os.path.join(steps, "1", "status")) == b"completed\n"
    assert read(os.path.join(steps, "2", "status")) == b"failed\n"
    assert read(os.path.join(steps, "2", "error")).decode().rstrip("\n") == \
        "input does not match the contract: field 'id' is required"
    assert read(os.path.join(steps, "3", "status")) == b"skipped\n"
    assert not os.path.exists(os.path.join(steps, "3", "error"))


def test_a_cancelled_thread(emu, fs):
    tid = emu.seed("nightly", status="cancelled")[0]
    d = fs.thread(tid)
    assert read(os.path.join(d, "status")) == b"cancelled\n"
    assert read_json(os.path.join(d, "thread.json"))["status"] == "THREAD_STATUS_CANCELLED"
    total = int(get_canonical(emu, f"/threads/{tid}/result").get("outputTotalBytes", "0"))
    if total > 0:
        assert read(os.path.join(d, "output.json")) == emu.raw_output(tid)
    else:
        assert not os.path.exists(os.path.join(d, "output.json"))


def test_an_empty_output_of_a_completed_thread_is_an_empty_file(emu, fs):
    tid = emu.seed("echo", outputBytes=0)[0]
    path = fs.thread(tid, "output.json")
    assert os.stat(path).st_size == 0
    assert read(path) == b""
    assert mode_of(path) == ("f", 0o444)


@pytest.mark.timeout(60)
def test_a_thread_without_input_has_null_input(emu, fs):
    tid = emu.post("/threads", {"scriptName": "echo"})["threadId"]
    wait_for_status(emu, tid, {"completed"})
    assert read(fs.thread(tid, "input.json")) == b"null\n"


@pytest.mark.timeout(60)
def test_a_running_thread_shows_what_is_known_now(emu, fs):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    wait_for_status(emu, tid, {"running"})
    try:
        res, took = timed_cmd(["ls", fs.thread(tid)], check=True)
        assert took < 5, f"ls of a running thread took {took:.1f} s"
        names = set(res.stdout.decode().split())
        assert "output.json" not in names
        assert {"status", "thread.json", "input.json", "summary.json", "events", "cancel",
                "resume", "steps"} <= names, names
        assert read(fs.thread(tid, "status")) == b"running\n"
        assert read_json(fs.thread(tid, "thread.json"))["status"] == "THREAD_STATUS_RUNNING"
        assert read(fs.thread(tid, "steps", "1", "status")) == b"running\n"
        assert read(fs.thread(tid, "steps", "3", "status")) == b"pending\n"
        res, took = timed_cmd(["cat", fs.thread(tid, "output.json")])
        assert res.returncode != 0 and "No such file or directory" in res.stderr
        assert took < 5
    finally:
        emu.post(f"/threads/{tid}/cancel")
    # once it is over, its files say so (running_ttl=1s)
    wait_until(lambda: read(fs.thread(tid, "status")) == b"cancelled\n", timeout=5,
               what="status to read cancelled")
    total = int(get_canonical(emu, f"/threads/{tid}/result").get("outputTotalBytes", "0"))
    if total > 0:
        wait_until(lambda: os.path.exists(fs.thread(tid, "output.json")), timeout=5,
                   what="output.json to appear")
        assert read(fs.thread(tid, "output.json")) == emu.raw_output(tid)


# ---- the mount and `scriptum thread result --save` agree ----

@pytest.mark.parametrize("script,status,extra", [
    ("echo", "completed", {"input": '{"message": "hi", "n": 1.50}'}),
    ("echo", "completed", {"outputBytes": 0}),
    ("fanout", "completed", {}),
    ("bigreport", "completed", {"outputBytes": 5 * MiB}),
    ("approval", "completed", {"input": '{"title": "Q3"}'}),
    ("strict", "failed", {}),
    ("flaky", "failed", {}),
    ("nightly", "cancelled", {}),
    ("fanout", "cancelled", {}),
], ids=["echo", "echo-empty", "fanout", "bigreport-5MiB", "approval", "strict-failed",
        "flaky-failed", "nightly-cancelled", "fanout-cancelled"])
def test_a_mounted_thread_diffs_equal_to_its_save(emu, fs, tmp_path, script, status, extra):
    tid = emu.seed(script, status=status, **extra)[0]
    saved = tmp_path / "save"
    save(emu, tid, saved)
    res = diff_r(fs.thread(tid), saved)
    assert res.returncode == 0, res.stdout.decode(errors="replace")[-3000:] + res.stderr
    assert res.stdout == b""
    # and the mount-only entries are the only others
    extra_names = set(os.listdir(fs.thread(tid))) - set(os.listdir(saved))
    assert extra_names == set(MOUNT_ONLY), extra_names


def test_cp_r_of_a_thread_directory_equals_its_save(emu, fs, tmp_path):
    tid = emu.seed("fanout")[0]
    saved, copied = tmp_path / "save", tmp_path / "copy"
    save(emu, tid, saved)
    res = run_cmd(["cp", "-r", fs.thread(tid), str(copied)], timeout=120)
    assert res.returncode == 0, res.stderr
    res = diff_r(copied, saved)
    assert res.returncode == 0, res.stdout.decode(errors="replace")[-3000:]


def test_grep_r_over_a_thread_directory(emu, fs):
    tid = emu.seed("fanout")[0]
    res = run_cmd(["grep", "-rl", "item-2", fs.thread(tid)], timeout=60)
    assert res.returncode == 0, res.stderr
    assert fs.thread(tid, "yields.ndjson") in res.stdout.decode().splitlines()
    res = run_cmd(["grep", "-r", "-c", "THREAD_STATUS_COMPLETED", fs.thread(tid, "thread.json")],
                  check=True)
    assert res.stdout == b"1\n"


def test_os_walk_over_a_thread_directory_finds_every_file(emu, fs):
    tid = emu.seed("fanout", input='{"walk": true}')[0]
    top = fs.thread(tid)
    found = {}
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, top)
            found[rel] = read(path) if name not in ("cancel", "resume") else b""
        for name in dirs:
            assert mode_of(os.path.join(root, name)) == ("d", 0o555)
    payloads = step_payloads(emu, tid)
    want = {"status", "thread.json", "input.json", "output.json", "summary.json",
            "yields.ndjson", "events", "cancel", "resume"}
    for path, (meta, sin, sout) in payloads.items():
        want |= {f"steps/{path}/status", f"steps/{path}/step.json"}
        if sin:
            want.add(f"steps/{path}/input.json")
        if sout:
            want.add(f"steps/{path}/output.json")
        if meta.get("error"):
            want.add(f"steps/{path}/error")
    assert set(found) == want, set(found) ^ want
    assert found["output.json"] == emu.raw_output(tid)
    for path, (meta, sin, sout) in payloads.items():
        if sout:
            assert found[f"steps/{path}/output.json"] == sout, path
        assert found[f"steps/{path}/status"] == b"completed\n", path


@pytest.mark.timeout(240)
def test_find_maxdepth_3_over_the_demo_threads_completes(new_emulator, mount_fs):
    emu = new_emulator()  # the demo's threads, finished and live
    fs = mount_fs(emu)
    ids = os.listdir(fs("threads"))
    assert len(ids) == len(thread_ids_of(emu))
    res = run_cmd(["find", fs("threads"), "-maxdepth", "3"], timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    out = set(res.stdout.decode().splitlines())
    for tid in ids:
        assert fs.thread(tid) in out
        assert fs.thread(tid, "status") in out
        assert fs.thread(tid, "steps") in out
    done = emu.seed("echo")[0]
    res = run_cmd(["find", fs.thread(done), "-maxdepth", "2", "-type", "d"], check=True)
    assert set(res.stdout.decode().splitlines()) == {
        fs.thread(done), fs.thread(done, "steps"), fs.thread(done, "steps", "1"),
        fs.thread(done, "steps", "2")}
    assert fs.alive()
