"""Mounted directory listings against a server whose paging is broken
(SPEC §9, doc/SEMANTICS.md "Listings"): a page token that repeats, or
empty pages without end, make `ls` of threads/, by-status/S/,
scripts/N/threads/ and scripts/ fail with EIO promptly, with a line in
.scriptumfs/errors, and nothing hangs; ids that repeat within or across
pages are listed once. Each test has its own emulator and mount."""

import os

import pytest

from harness import list_all, read, run_cmd

pytestmark = pytest.mark.timeout(120)

QUICK = 20  # seconds: far more than a bounded listing needs

DIRS = [("threads",), ("by-status", "completed"), ("scripts", "echo", "threads"), ("scripts",)]


def ls(path):
    return run_cmd(["ls", "-1", "-f", path], timeout=QUICK)


@pytest.mark.parametrize("fault,what", [("pageTokenRepeat", "repeated"),
                                        ("emptyPagesForever", "empty pages")])
@pytest.mark.parametrize("parts", DIRS, ids="/".join)
def test_ls_of_a_listing_that_pages_for_ever_is_eio(emu, fs, fault, what, parts):
    emu.seed("echo", count=5)
    emu.faults(**{fault: True})
    res = ls(fs(*parts))
    assert res.returncode != 0, res.stdout
    assert "Input/output error" in res.stderr, res.stderr
    call = "ListScripts" if parts == ("scripts",) else "ListThreads"
    errors = read(fs(".scriptumfs", "errors")).decode()
    assert any(call in l and what in l for l in errors.splitlines()), errors
    # the mount is fine once the server is
    emu.clear_faults()
    res = ls(fs(*parts))
    assert res.returncode == 0, res.stderr


def test_a_repeated_token_is_seen_at_the_second_call(emu, fs):
    emu.seed("echo", count=5)
    emu.faults(pageTokenRepeat=True)
    emu.reset_requests()
    assert ls(fs("threads")).returncode != 0
    assert emu.requests_log()["byCall"].get("ListThreads", 0) <= 2


def names(res):
    return [n for n in res.stdout.decode().splitlines() if n not in (".", "..")]


def test_ls_threads_lists_an_id_repeated_within_a_page_once(emu, fs):
    emu.seed("echo", count=9)
    want = [t["threadId"] for t in list_all(emu, page_size=1000)[0]]
    emu.faults(duplicateIds=True)
    res = ls(fs("threads"))
    assert res.returncode == 0, res.stderr
    assert names(res) == want


@pytest.mark.parametrize("parts", DIRS[:3], ids="/".join)
def test_ls_lists_ids_repeated_across_pages_once(emu, mount_fs, parts):
    """Pages of 1000 and 500 (list_limit 2500), each repeating its first
    thread and the last one of the page before."""
    emu.seed("echo", count=1500)
    want = [t["threadId"] for t in list_all(emu, page_size=1000)[0]]
    fs = mount_fs(emu, list_limit=2500)
    emu.faults(duplicateIds=True)
    res = ls(fs(*parts))
    assert res.returncode == 0, res.stderr
    got = names(res)
    assert len(set(got)) == len(got)
    assert got == want


def test_ls_scripts_lists_repeated_names_once(emu, fs):
    want = sorted(os.listdir(fs("scripts")))
    emu.faults(duplicateIds=True)
    res = ls(fs("scripts"))
    assert res.returncode == 0, res.stderr
    got = names(res)
    assert len(set(got)) == len(got), got
    assert sorted(got) == want
