"""Payload files (SPEC §4, §8): output.json of every size up to 256 MiB and
step payloads over the inline limit, byte-identical to the API's bytes with
an exact st_size; the first bytes readable before the last have arrived;
reads from the middle; eight concurrent readers sharing one download; a
finished thread read again making no request at all."""

import hashlib
import os
import subprocess

import pytest

from harness import (file_sha256, MiB, raw_output_sha256, raw_output_slice, read, run_cmd,
                     sanitized_build, scriptum, settled_calls, step_payloads, timed_cmd)

pytestmark = pytest.mark.timeout(180)


def sha256sum(path, timeout=600):
    res = run_cmd(["sha256sum", path], timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode().split()[0]


@pytest.mark.parametrize("size", [1, 65536, 4 * MiB, 4 * MiB + 1, 20 * MiB + 7],
                         ids=["1B", "64KiB", "4MiB", "4MiB+1", "20MiB+7"])
def test_output_json_is_byte_identical_with_an_exact_size(emu, fs, size):
    tid = emu.seed("echo", outputBytes=size)[0]
    path = fs.thread(tid, "output.json")
    res = run_cmd(["stat", "-c", "%s", path], check=True)
    assert int(res.stdout) == size
    assert os.stat(path).st_size == size
    assert sha256sum(path) == raw_output_sha256(emu, tid)[0]
    assert file_sha256(path) == raw_output_sha256(emu, tid)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_256_mib_output_is_byte_identical(emu, fs):
    size = 256 * MiB
    tid = emu.seed("echo", outputBytes=size)[0]
    path = fs.thread(tid, "output.json")
    assert os.stat(path).st_size == size
    want, n = raw_output_sha256(emu, tid)
    assert n == size
    assert sha256sum(path, timeout=600) == want
    # read again: the same bytes (now from the cache)
    assert file_sha256(path) == (want, size)
    if not sanitized_build():
        # streamed, never held whole: the daemon's peak RSS stays small (§8)
        with open(f"/proc/{fs.daemon_pid}/status") as f:
            hwm = int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
        assert hwm < 64 * 1024, f"the daemon's peak RSS was {hwm} KiB reading 256 MiB"


def test_head_and_dd_read_any_part_of_a_large_output(emu, fs):
    size = 48 * MiB + 123
    tid = emu.seed("echo", outputBytes=size)[0]
    path = fs.thread(tid, "output.json")
    res = run_cmd(["head", "-c", "100", path], check=True)
    assert res.stdout == raw_output_slice(emu, tid, 0, 100)
    res = run_cmd(["dd", f"if={path}", "bs=1M", "skip=40", "count=1", "status=none"],
                  check=True, timeout=120)
    assert res.stdout == raw_output_slice(emu, tid, 40 * MiB, MiB)
    res = run_cmd(["tail", "-c", "1000", path], check=True, timeout=120)
    assert res.stdout == raw_output_slice(emu, tid, size - 1000, 1000)
    with open(path, "rb") as f:
        f.seek(size - 10)
        assert f.read() == raw_output_slice(emu, tid, size - 10, 10)
        f.seek(size)
        assert f.read() == b""


@pytest.mark.timeout(120)
def test_the_first_bytes_are_readable_before_the_last_have_arrived(emu, fs):
    tid = emu.seed("echo", outputBytes=64 * MiB)[0]
    first = raw_output_slice(emu, tid, 0, 4096)
    # the stream stops for a minute after its first 24 MiB (a whole first
    # chunk message even at the largest maxChunkBytes, 16 MiB in base64)
    emu.faults(stallAfterBytes=24 * MiB, stallMs=60000, match="/result/stream")
    try:
        res, took = timed_cmd(["head", "-c", "4096", fs.thread(tid, "output.json")],
                              timeout=30)
        assert res.returncode == 0, res.stderr
        assert res.stdout == first
        assert took < 10, f"head -c 4096 took {took:.1f} s while the rest was stalled"
    finally:
        emu.clear_faults()
    assert file_sha256(fs.thread(tid, "output.json")) == raw_output_sha256(emu, tid)


def test_a_step_payload_over_the_inline_limit_is_byte_identical(emu, fs, tmp_path):
    tid = emu.seed("bigreport", outputBytes=100, input='{"report": "2024-05"}')[0]
    payloads = step_payloads(emu, tid)
    meta, sin, sout = payloads["2"]
    assert len(sout) == 200000 > 64 * 1024
    path = fs.thread(tid, "steps", "2", "output.json")
    assert os.stat(path).st_size == 200000
    assert hashlib.sha256(read(path)).hexdigest() == hashlib.sha256(sout).hexdigest()
    assert sha256sum(path) == hashlib.sha256(sout).hexdigest()
    # and what `scriptum thread result --save` writes for it
    res = scriptum(emu, "thread", "result", tid, "--save", str(tmp_path / "save"))
    assert res.rc == 0, res.err
    assert read(path) == read(tmp_path / "save" / "steps" / "2" / "output.json")
    for p, (_, pin, pout) in payloads.items():
        for name, want in (("input.json", pin), ("output.json", pout)):
            f = fs.thread(tid, "steps", p, name)
            if want:
                assert os.stat(f).st_size == len(want), (p, name)
                assert read(f) == want, (p, name)
            else:
                assert not os.path.exists(f), (p, name)


@pytest.mark.timeout(240)
def test_eight_concurrent_readers_share_one_download(emu, fs):
    size = 24 * MiB + 5
    tid = emu.seed("echo", outputBytes=size)[0]
    want = raw_output_sha256(emu, tid)[0]
    path = fs.thread(tid, "output.json")
    os.stat(path)  # the thread's metadata first: only the payload is raced
    emu.reset_requests()
    procs = [subprocess.Popen(["sha256sum", path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)
             for _ in range(8)]
    digests = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode(errors="replace")
            digests.append(out.decode().split()[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert digests == [want] * 8
    by = settled_calls(emu)
    assert by.get("StreamThreadResult", 0) == 1, by
    assert by.get("GetThreadResult", 0) <= 1, by


def test_eight_concurrent_python_readers_get_identical_bytes(emu, fs):
    import threading

    size = 6 * MiB + 1
    tid = emu.seed("echo", outputBytes=size)[0]
    raw = emu.raw_output(tid)
    path = fs.thread(tid, "output.json")
    results = [None] * 8

    def reader(i):
        try:
            with open(path, "rb") as f:
                results[i] = f.read()
        except OSError as e:
            results[i] = e

    ts = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert all(r == raw for r in results), [type(r).__name__ if not isinstance(r, bytes)
                                            else len(r) for r in results]


def test_a_finished_thread_read_again_makes_no_request(emu, fs):
    ids = emu.seed("fanout", count=3) + emu.seed("echo", outputBytes=5 * MiB, count=2)
    for tid in ids:
        res = run_cmd(["grep", "-rl", "--", "thr_", fs.thread(tid)], timeout=120)
        assert res.returncode in (0, 1), res.stderr
        read(fs.thread(tid, "output.json"))
    emu.reset_requests()
    for tid in ids:
        assert read(fs.thread(tid, "output.json")) == emu.raw_output(tid)
        assert read(fs.thread(tid, "status")) == b"completed\n"
        run_cmd(["cat", fs.thread(tid, "thread.json"), fs.thread(tid, "summary.json"),
                 fs.thread(tid, "input.json")], check=True)
        res = run_cmd(["grep", "-rl", "--", "thr_", fs.thread(tid)], timeout=120)
        assert res.returncode in (0, 1), res.stderr
    res = run_cmd(["grep", "-rl", "--", "item-1"] + [fs.thread(t) for t in ids], timeout=120)
    assert {os.path.basename(p) for p in res.stdout.decode().split()} == {"yields.ndjson"}
    settled_calls(emu)
    api = [r for r in emu.requests_log()["recent"] if r["path"].startswith("/v1/")]
    assert api == [], f"reading finished threads again made requests: {api[:10]}"


def test_grep_rl_over_many_finished_outputs(emu, fs):
    ids = emu.seed("echo", count=40, input='{"needle": "haystack"}')
    ids += emu.seed("echo", count=10, input='{"other": 1}')
    res = run_cmd(["grep", "-rl", "--include=output.json", "needle", fs("threads")],
                  timeout=120)
    assert res.returncode == 0, res.stderr
    found = {p.split("/")[-2] for p in res.stdout.decode().split()}
    assert found == set(ids[:40])
    emu.reset_requests()
    res2 = run_cmd(["grep", "-rl", "--include=output.json", "needle", fs("threads")],
                   timeout=120)
    assert res2.stdout == res.stdout
    by = settled_calls(emu)
    for name in ("GetThread", "GetThreadResult", "StreamThreadResult", "StreamStepResult"):
        assert by.get(name, 0) == 0, f"warm grep -rl made requests: {by}"


def test_a_small_finished_output_comes_with_its_metadata(emu, fs):
    """Once a script version's output proved small, the next thread's size
    and bytes come in one GetThreadResult."""
    first, second = emu.seed("echo", outputBytes=2000, count=2)
    emu.reset_requests()
    assert read(fs.thread(first, "output.json")) == emu.raw_output(first)
    by = settled_calls(emu)
    assert by == {"GetThread": 1, "GetThreadResult": 2}, by  # metadata, then the bytes
    emu.reset_requests()
    assert read(fs.thread(second, "output.json")) == emu.raw_output(second)
    by = settled_calls(emu)
    assert by == {"GetThread": 1, "GetThreadResult": 1}, by


def test_a_large_output_switches_its_script_version_back_to_metadata_only(emu, fs):
    """After a small output the next finished thread is asked with its
    output; once that proved large, the following one's metadata is asked
    alone (no 4 MiB answer for a stat), and its bytes only when read."""
    small = emu.seed("echo", outputBytes=100)[0]
    big1, big2 = emu.seed("echo", outputBytes=200 * 1024, count=2)
    read(fs.thread(small, "output.json"))
    emu.reset_requests()
    assert read(fs.thread(big1, "output.json")) == emu.raw_output(big1)
    by = settled_calls(emu)
    assert by == {"GetThread": 1, "GetThreadResult": 1}, by  # the output came along
    emu.reset_requests()
    assert os.stat(fs.thread(big2, "output.json")).st_size == 200 * 1024
    assert settled_calls(emu) == {"GetThread": 1, "GetThreadResult": 1}
    assert read(fs.thread(big2, "output.json")) == emu.raw_output(big2)
    by = settled_calls(emu)
    assert by == {"GetThread": 1, "GetThreadResult": 2}, by  # metadata, then the bytes


def test_outputs_that_came_with_metadata_are_kept_on_disk(emu, mount_fs, tmp_path):
    cache = str(tmp_path / "cache")
    ids = emu.seed("echo", outputBytes=3000, count=5)
    fs = mount_fs(emu, cache_dir=cache)
    for tid in ids:
        assert read(fs.thread(tid, "output.json")) == emu.raw_output(tid)
    fs.stop()  # the daemon writes what it still holds before it exits
    kept = [n for n in os.listdir(cache) if not n.endswith(".part")]
    assert len(kept) == 5, kept
    fs = mount_fs(emu, cache_dir=cache)
    emu.reset_requests()
    for tid in ids:
        assert read(fs.thread(tid, "output.json")) == emu.raw_output(tid)
    by = settled_calls(emu)
    # the metadata is asked again (memory only); the bytes come from disk
    assert by.get("GetThreadResult", 0) == 5 and "StreamThreadResult" not in by, by
    assert len(os.listdir(cache)) == 5


def test_an_output_too_large_to_keep_streams_through_memory(emu, mount_fs):
    """With -o cache_size=4M, a 24 MiB output is larger than the whole
    cache: cat, head and dd get the API's bytes, eight readers that open it
    together share one download, and nothing is written to the cache
    directory."""
    import threading

    size = 24 * MiB + 9
    tid, other = emu.seed("echo", outputBytes=size, count=2)
    raw = emu.raw_output(tid)
    fs = mount_fs(emu, options=("cache_size=4M",))
    path = fs.thread(tid, "output.json")
    assert os.stat(path).st_size == size
    assert sha256sum(path) == hashlib.sha256(raw).hexdigest()
    assert run_cmd(["head", "-c", "100", path], check=True).stdout == raw[:100]
    res = run_cmd(["dd", f"if={path}", "bs=1M", "skip=20", "status=none"], check=True)
    assert res.stdout == raw[20 * MiB:]

    path = fs.thread(other, "output.json")
    want = raw_output_sha256(emu, other)[0]
    files = [open(path, "rb") for _ in range(8)]
    got = [None] * 8
    emu.reset_requests()

    def reader(i):
        h = hashlib.sha256()
        while True:
            chunk = files[i].read(65536 * (i + 1))  # eight paces
            if not chunk:
                break
            h.update(chunk)
        got[i] = h.hexdigest()

    ts = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(8)]
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
    finally:
        for f in files:
            f.close()
    assert got == [want] * 8
    assert settled_calls(emu).get("StreamThreadResult", 0) == 1
    assert os.listdir(fs.cache_dir) == []


def test_a_large_output_is_written_behind_its_stream_and_kept(emu, mount_fs, tmp_path):
    """A 40 MiB output streams through memory and is written to its cache
    file behind it: dd reading back over what memory holds gets the right
    bytes with no second download, and after a remount the file serves a
    read with no stream at all."""
    cache = str(tmp_path / "cache")
    size = 40 * MiB + 3
    tid = emu.seed("echo", outputBytes=size)[0]
    raw = emu.raw_output(tid)
    fs = mount_fs(emu, cache_dir=cache)
    path = fs.thread(tid, "output.json")
    emu.reset_requests()
    with open(path, "rb") as f:
        assert f.read(36 * MiB) == raw[:36 * MiB]
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # kernel pages gone
        f.seek(MiB)
        assert f.read(2 * MiB) == raw[MiB:3 * MiB]  # behind the memory: from the file
        f.seek(36 * MiB)
        assert f.read() == raw[36 * MiB:]
    assert settled_calls(emu).get("StreamThreadResult", 0) == 1
    fs.stop()
    kept = os.listdir(cache)
    assert len(kept) == 1 and os.path.getsize(os.path.join(cache, kept[0])) == size, kept
    fs = mount_fs(emu, cache_dir=cache)
    emu.reset_requests()
    assert file_sha256(fs.thread(tid, "output.json")) == raw_output_sha256(emu, tid)
    assert "StreamThreadResult" not in settled_calls(emu)
