"""`scriptum thread list` against a server whose paging is broken
(SPEC §9, scriptum(1) LISTINGS): a page token that repeats is a protocol
error at once, empty pages without end are one after 50 in a row, each
naming ListThreads and the problem, within seconds and exit 10; ids that
repeat within a page or across pages are printed once; --all prints each
page as it comes."""

import json
import time

import pytest

from harness import list_all, scriptum

pytestmark = pytest.mark.timeout(90)

QUICK = 15  # seconds: far more than a bounded listing needs


def timed_list(emu, *args):
    t0 = time.monotonic()
    res = scriptum(emu, "thread", "list", *args, timeout=QUICK)
    return res, time.monotonic() - t0


def distinct_ids(emu):
    """The API's ids, newest first, once each (read with the faults off)."""
    return [t["threadId"] for t in list_all(emu, page_size=1000)[0]]


@pytest.mark.parametrize("fmt", ["table", "json", "yaml"])
def test_list_all_with_a_repeated_page_token_exits_10_naming_the_token(emu, fmt):
    emu.seed("echo", count=5)
    emu.faults(pageTokenRepeat=True)
    emu.reset_requests()
    res, took = timed_list(emu, "-o", fmt, "--all", "--page-size", "2")
    assert res.rc == 10, (res.rc, res.err)
    assert "ListThreads" in res.err and "f.repeat" in res.err, res.err
    assert "repeat" in res.err.replace("f.repeat", ""), res.err
    assert took < QUICK
    # the second answer repeats the first's token: at most one call more
    assert emu.requests_log()["byCall"].get("ListThreads", 0) <= 3


def test_list_all_with_empty_pages_for_ever_exits_10_after_50(emu):
    emu.seed("echo", count=3)
    emu.faults(emptyPagesForever=True)
    emu.reset_requests()
    res, took = timed_list(emu, "-o", "json", "--all")
    assert res.rc == 10, (res.rc, res.err)
    assert "ListThreads" in res.err and "empty pages" in res.err, res.err
    assert 50 <= emu.requests_log()["byCall"].get("ListThreads", 0) <= 52
    assert took < QUICK


def test_list_all_prints_the_pages_it_had_before_the_error(emu):
    """--all streams: the rows of the pages that came are out before the
    listing fails (nothing is held back until the end)."""
    ids = emu.seed("echo", count=3)
    emu.faults(emptyPagesForever=True)
    res, _ = timed_list(emu, "--all")
    assert res.rc == 10, res.err
    out = res.out.decode()
    assert out.splitlines()[0].startswith("ID")
    assert all(i in out for i in ids), out


def test_list_without_all_is_one_page_whatever_the_token(emu):
    emu.seed("echo", count=3)
    emu.faults(pageTokenRepeat=True)
    res, _ = timed_list(emu, "-o", "json")
    assert res.rc == 0, res.err
    assert len(json.loads(res.out)) == 3


@pytest.mark.parametrize("args", [["--all", "--page-size", "3"], ["--all"], []],
                         ids=["all-by-3", "all", "one-page"])
def test_ids_repeated_within_and_across_pages_are_printed_once(emu, args):
    emu.seed("echo", count=10)
    want = distinct_ids(emu)
    emu.faults(duplicateIds=True)
    res, _ = timed_list(emu, "-o", "json", *args)
    assert res.rc == 0, res.err
    got = [t["threadId"] for t in json.loads(res.out)]
    assert got == want


def test_table_rows_of_repeated_ids_are_printed_once(emu):
    emu.seed("echo", count=7)
    want = distinct_ids(emu)
    emu.faults(duplicateIds=True)
    res, _ = timed_list(emu, "--all", "--page-size", "2")
    assert res.rc == 0, res.err
    rows = [l.split()[0] for l in res.out.decode().splitlines()[1:]]
    assert rows == want


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_all_streamed_array_is_the_same_as_one_page(emu, fmt):
    """-o json and -o yaml of --all are one document, as of a single page."""
    emu.seed("echo", count=7)
    whole = scriptum(emu, "-o", fmt, "thread", "list", "--page-size", "100")
    paged = scriptum(emu, "-o", fmt, "thread", "list", "--all", "--page-size", "2")
    assert whole.rc == 0 and paged.rc == 0, (whole.err, paged.err)
    assert paged.out == whole.out


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_all_of_nothing_is_an_empty_array(emu, fmt):
    whole = scriptum(emu, "-o", fmt, "thread", "list")
    paged = scriptum(emu, "-o", fmt, "thread", "list", "--all")
    assert paged.rc == 0, paged.err
    assert paged.out == whole.out
