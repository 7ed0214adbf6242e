"""scripts/ and by-status/ (SPEC §3): each script of the catalog with its
new, versions/<n>/new, script.json, threads/ (symlinks ../../../threads/<id>,
newest first) and latest; by-status/<status>/ with symlinks
../../threads/<id>; links that resolve to the thread directories."""

import json
import os

import pytest

from harness import (assert_same_message, canonical, get_canonical, mode_of, read, run_cmd,
                     thread_ids_of)

pytestmark = pytest.mark.timeout(120)

STATUSES = {"pending", "running", "paused", "completed", "failed", "cancelled"}


def script_names(emu):
    return [s["name"] for s in get_canonical(emu, "/scripts", pageSize=1000)["scripts"]]


def test_scripts_lists_every_script_of_the_catalog(emu, fs):
    names = set(os.listdir(fs("scripts")))
    assert names == set(script_names(emu))
    assert {"echo", "fanout", "approval", "flaky", "bigreport", "strict", "nightly"} <= names
    res = run_cmd(["ls", fs("scripts")], check=True)
    assert set(res.stdout.decode().split()) == names
    for name in names:
        assert mode_of(fs("scripts", name)) == ("d", 0o555), name


def test_a_script_directory_has_new_versions_script_json_threads_and_latest(emu, fs):
    emu.seed("echo", count=2)
    d = fs("scripts", "echo")
    assert set(os.listdir(d)) == {"new", "versions", "script.json", "threads", "latest"}
    assert mode_of(os.path.join(d, "new")) == ("f", 0o200)
    assert mode_of(os.path.join(d, "script.json")) == ("f", 0o444)
    assert mode_of(os.path.join(d, "versions")) == ("d", 0o555)
    assert mode_of(os.path.join(d, "threads")) == ("d", 0o555)
    assert mode_of(os.path.join(d, "latest"))[0] == "l"
    for name in os.listdir(d):
        st = os.lstat(os.path.join(d, name))
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), name
    res = run_cmd(["ls", "-l", d], check=True)
    modes = {l.split()[8]: l.split()[0] for l in res.stdout.decode().splitlines()[1:]}
    assert modes["new"] == "--w-------"
    assert modes["latest"].startswith("l")


def test_script_json_is_the_script(emu, fs):
    for name in ("echo", "bigreport"):
        data = read(fs("scripts", name, "script.json"))
        doc = json.loads(data)
        assert doc["name"] == name
        assert_same_message(canonical(doc), get_canonical(emu, f"/scripts/{name}"))
        res = run_cmd(["jq", "-r", ".name", fs("scripts", name, "script.json")], check=True)
        assert res.stdout.decode() == name + "\n"


def test_versions_lists_each_version_with_its_new(emu, fs):
    versions = get_canonical(emu, "/scripts/echo/versions")["versions"]
    want = {str(v["version"]) for v in versions}
    assert want == {"1", "2"}
    assert set(os.listdir(fs("scripts", "echo", "versions"))) == want
    for v in want:
        vd = fs("scripts", "echo", "versions", v)
        assert mode_of(vd) == ("d", 0o555)
        assert "new" in os.listdir(vd)
        assert mode_of(os.path.join(vd, "new")) == ("f", 0o200)
    assert not os.path.exists(fs("scripts", "echo", "versions", "3"))
    assert os.listdir(fs("scripts", "fanout", "versions")) == ["1"]


def test_a_scripts_threads_are_symlinks_newest_first(emu, fs):
    emu.seed("echo", count=4)
    emu.seed("fanout", count=2)
    emu.seed("echo", count=1, status="failed")
    want = thread_ids_of(emu, scriptNameFilter="echo")
    assert len(want) == 5
    d = fs("scripts", "echo", "threads")
    assert os.listdir(d) == want  # newest first
    for tid in want:
        link = os.path.join(d, tid)
        assert mode_of(link)[0] == "l"
        assert os.readlink(link) == f"../../../threads/{tid}"
        assert os.path.realpath(link) == os.path.realpath(fs.thread(tid))
    res = run_cmd(["cat", os.path.join(d, want[0], "status")], check=True)
    assert res.stdout in (b"completed\n", b"failed\n")
    res = run_cmd(["ls", "-l", d], check=True)
    for line in res.stdout.decode().splitlines()[1:]:
        assert line.startswith("l") and "-> ../../../threads/thr_" in line, line
    assert set(os.listdir(fs("scripts", "fanout", "threads"))) == \
        set(thread_ids_of(emu, scriptNameFilter="fanout"))
    assert os.listdir(fs("scripts", "strict", "threads")) == []


def test_latest_points_at_the_newest_thread_of_the_script(emu, fs):
    emu.seed("echo", count=3)
    emu.seed("fanout", count=1)
    newest = thread_ids_of(emu, scriptNameFilter="echo")[0]
    latest = fs("scripts", "echo", "latest")
    assert os.path.basename(os.readlink(latest)) == newest
    assert os.path.realpath(latest) == os.path.realpath(fs.thread(newest))
    res = run_cmd(["readlink", "-f", latest], check=True)
    assert res.stdout.decode().strip() == os.path.realpath(fs.thread(newest))
    assert read(os.path.join(latest, "status")) == b"completed\n"
    assert json.loads(read(os.path.join(latest, "thread.json")))["threadId"] == newest


def test_latest_of_a_script_without_threads_leads_nowhere(emu, fs):
    emu.seed("echo")
    assert not os.path.exists(fs("scripts", "strict", "latest"))


def test_by_status_has_a_directory_per_status(emu, fs):
    assert set(os.listdir(fs("by-status"))) == STATUSES
    for s in STATUSES:
        assert mode_of(fs("by-status", s)) == ("d", 0o555), s


def test_by_status_links_the_threads_in_each_status(emu, fs):
    emu.seed("echo", count=3)
    emu.seed("strict", count=2, status="failed")
    emu.seed("nightly", count=2, status="cancelled")
    for s in STATUSES:
        want = thread_ids_of(emu, statusFilter=s.upper())
        got = os.listdir(fs("by-status", s))
        assert set(got) == set(want), s
        assert got == want, f"by-status/{s} is not newest first"
        for tid in got:
            link = fs("by-status", s, tid)
            assert mode_of(link)[0] == "l"
            assert os.readlink(link) == f"../../threads/{tid}"
            assert read(os.path.join(link, "status")) == f"{s}\n".encode()
    res = run_cmd(["ls", "-L", fs("by-status", "failed")], check=True)
    assert set(res.stdout.decode().split()) == set(thread_ids_of(emu, statusFilter="FAILED"))
    res = run_cmd(["cat"] + [fs("by-status", "completed", t, "status")
                             for t in thread_ids_of(emu, statusFilter="COMPLETED")], check=True)
    assert res.stdout == b"completed\n" * 3


@pytest.mark.timeout(60)
def test_by_status_follows_a_thread_that_changes_status(emu, fs):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    from harness import wait_for_status, wait_until

    wait_for_status(emu, tid, {"running"})
    wait_until(lambda: tid in os.listdir(fs("by-status", "running")), timeout=5,
               what="the thread in by-status/running")
    emu.post(f"/threads/{tid}/cancel")
    wait_until(lambda: tid in os.listdir(fs("by-status", "cancelled")), timeout=5,
               what="the thread in by-status/cancelled")
    assert tid not in os.listdir(fs("by-status", "running"))
