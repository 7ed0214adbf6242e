"""The mount when things go wrong (SPEC §4 errors, §9): a stream cut or ended
by an error line is EIO to the reader, never a shorter file, and the next
read succeeds; a server that dies makes operations fail within a deadline
while cached finished threads still read, and the mount works again when
the server is back, without a remount; transient 503s are absorbed; a
stalled stream fails within a deadline; a bad token is EACCES; the daemon
refuses to start (and says why) when it cannot reach the API or is not
allowed in; SIGTERM and SIGINT unmount cleanly."""

import errno
import os
import signal
import subprocess
import time

import pytest

from harness import (file_sha256, fuse_mount_points, MiB, MountFailed, os_error, raw_output_sha256,
                     read, run_cmd, scriptum, settled_calls, start_emulator_on_port, timed_cmd,
                     wait_until)

pytestmark = pytest.mark.timeout(180)

DEADLINE = 35  # seconds: what an operation may take when the server is gone


def listdir_or_none(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def read_tree(top):
    out = {}
    for root, _, files in os.walk(top):
        for name in files:
            if name in ("cancel", "resume", "events"):
                continue
            path = os.path.join(root, name)
            out[os.path.relpath(path, top)] = read(path)
    return out


# ---- streams that break ----

def test_a_stream_cut_while_cat_reads_is_eio_then_a_fresh_cat_succeeds(emu, fs):
    tid = emu.seed("echo", outputBytes=32 * MiB)[0]
    want = raw_output_sha256(emu, tid)
    path = fs.thread(tid, "output.json")
    assert os.stat(path).st_size == 32 * MiB
    emu.faults(cutAfterBytes=4 * MiB, match="/result/stream")
    res, took = timed_cmd(f"cat {path} > /dev/null", shell=True, timeout=120)
    assert res.returncode != 0, "cat of a cut stream succeeded"
    assert "Input/output error" in res.stderr, res.stderr
    with pytest.raises(OSError) as e:
        read(path)
    assert e.value.errno == errno.EIO
    emu.clear_faults()
    res = run_cmd(["cat", path], timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout) == 32 * MiB
    assert file_sha256(path) == want


# 16 MiB goes through a file of the cache, 24 MiB through memory (scriptumfs(1))
@pytest.mark.parametrize("size", [16 * MiB, 24 * MiB], ids=["file", "ring"])
def test_an_error_line_in_the_stream_is_eio_never_a_short_file(emu, fs, size):
    tid = emu.seed("echo", outputBytes=size)[0]
    emu.faults(errorAfterBytes=2 * MiB, match="/result/stream")
    res = run_cmd(["sha256sum", fs.thread(tid, "output.json")], timeout=120)
    assert res.returncode != 0
    assert "Input/output error" in res.stderr, res.stderr
    emu.clear_faults()
    assert file_sha256(fs.thread(tid, "output.json")) == raw_output_sha256(emu, tid)


def test_a_failed_download_is_logged_in_scriptumfs_errors(emu, fs):
    """scriptumfs(1): every failed API call goes to .scriptumfs/errors and
    the log; a payload download is one (StreamThreadResult, and a small
    output's GetThreadResult)."""
    big = emu.seed("echo", outputBytes=8 * MiB)[0]
    small = emu.seed("echo", outputBytes=1000)[0]
    emu.faults(errorAfterBytes=MiB, match="/result/stream")
    res = run_cmd(["cat", fs.thread(big, "output.json")], timeout=120)
    assert res.returncode != 0 and "Input/output error" in res.stderr, res.stderr
    assert os.stat(fs.thread(small, "output.json")).st_size == 1000  # the metadata, cached
    emu.faults(errorRate=1, errorStatus=500, match=f"/threads/{small}/result")
    res = run_cmd(["cat", fs.thread(small, "output.json")], timeout=120)
    assert res.returncode != 0, res.stderr
    emu.clear_faults()
    text = read(fs(".scriptumfs", "errors")).decode()
    lines = [l for l in text.splitlines() if f"StreamThreadResult {big}" in l]
    assert lines, f"no StreamThreadResult {big} line in .scriptumfs/errors:\n{text}"
    assert any(f"GetThreadResult {small}" in l and "500" in l for l in text.splitlines()), text
    assert f"StreamThreadResult {big}" in fs.stderr_text(), "the failure is not in the log"


def test_a_cut_step_stream_is_eio_then_succeeds(emu, fs):
    tid = emu.seed("bigreport", outputBytes=100)[0]
    path = fs.thread(tid, "steps", "2", "output.json")
    assert os.stat(path).st_size == 200000
    emu.faults(cutAfterBytes=100000, match="/steps/stream")
    res = run_cmd(["cat", path], timeout=60)
    assert res.returncode != 0 and "Input/output error" in res.stderr, res.stderr
    emu.clear_faults()
    res = run_cmd(["cat", path], timeout=60)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout) == 200000


@pytest.mark.timeout(240)
@pytest.mark.parametrize("size", [16 * MiB, 24 * MiB], ids=["file", "ring"])
def test_a_stalled_stream_fails_within_a_deadline(emu, fs, size):
    tid = emu.seed("echo", outputBytes=size)[0]
    path = fs.thread(tid, "output.json")
    os.stat(path)
    emu.faults(stallAfterBytes=MiB, stallMs=600000, match="/result/stream")
    try:
        res, took = timed_cmd(["cat", path], timeout=150)
        assert res.returncode != 0, "cat of a stalled stream succeeded"
        assert took < 120, f"a stalled read took {took:.0f} s to fail"
        assert "Input/output error" in res.stderr or "timed out" in res.stderr, res.stderr
    finally:
        emu.clear_faults()
    assert file_sha256(path) == raw_output_sha256(emu, tid)


FLOOR = ["min_rate=65536", "min_rate_window=2s"]


@pytest.mark.timeout(180)
def test_a_trickling_stream_fails_at_the_rate_floor_and_a_fast_one_reads(emu, mount_fs):
    """-o min_rate, min_rate_window: a 16 MiB output reads whole with the
    floor set; a trickle (a byte every 100 ms, which keeps the 20 s no-data
    watchdog quiet) is EIO within a few windows, with the rate it saw in
    .scriptumfs/errors; once the server is fast again the file reads."""
    fs = mount_fs(emu, options=FLOOR)
    fast, slow = emu.seed("echo", count=2, outputBytes=16 * MiB)
    assert file_sha256(fs.thread(fast, "output.json")) == raw_output_sha256(emu, fast)
    path = fs.thread(slow, "output.json")
    os.stat(path)
    emu.faults(trickleAfterBytes=MiB, trickleMs=100, match="/result/stream")
    try:
        res, took = timed_cmd(["cat", path], timeout=60)
        assert res.returncode != 0, "cat of a trickling stream succeeded"
        assert "Input/output error" in res.stderr, res.stderr
        assert took < 20, f"a trickling read took {took:.0f} s to fail"
    finally:
        emu.clear_faults()
    text = read(fs(".scriptumfs", "errors")).decode()
    assert any(f"StreamThreadResult {slow}" in l and "fell below 65536 bytes/s" in l and
               "in the last 2 s" in l for l in text.splitlines()), text
    assert file_sha256(path) == raw_output_sha256(emu, slow)


@pytest.mark.timeout(60)
def test_tail_f_of_events_is_not_cut_by_the_rate_floor(emu, mount_fs):
    """A watch is idle between events: the floor is not for it. One
    WatchThread call lasts the five windows, and the cancel shows."""
    fs = mount_fs(emu, options=["min_rate=1048576", "min_rate_window=1s"])
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    emu.wait_status(tid, {"running"})
    emu.reset_requests()
    p = subprocess.Popen(["tail", "-n", "+1", "-f", fs.thread(tid, "events")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(5)  # five windows: the snapshot, then nothing
        assert p.poll() is None, p.stderr.read().decode(errors="replace")
        emu.post(f"/threads/{tid}/cancel", {})
        # a call is logged as it ends: the watch, once, at the final status
        wait_until(lambda: emu.requests_log()["byCall"].get("WatchThread", 0) >= 1,
                   timeout=10, what="the watch's end")
        time.sleep(0.5)
        assert emu.requests_log()["byCall"]["WatchThread"] == 1
    finally:
        p.kill()
        out, err = p.communicate(timeout=10)
    assert b"SNAPSHOT" in out and b"CANCELLED" in out, (out, err)
    assert "fell below" not in read(fs(".scriptumfs", "errors")).decode()


def stat_of(fs, key):
    for line in fs.read(".scriptumfs", "stats").decode().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    raise AssertionError(f"no {key} in .scriptumfs/stats")


@pytest.mark.timeout(120)
def test_ctrl_c_on_cat_stops_the_transfer(emu, fs):
    """cat of a 4 GiB output dies at SIGINT, and the download stops with
    it: a few seconds later nothing is downloading, far less than the whole
    came, and no partial file is left."""
    import subprocess

    size = 4 << 30
    tid = emu.seed("echo", outputBytes=size)[0]
    path = fs.thread(tid, "output.json")
    os.stat(path)
    cat = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while stat_of(fs, "payload_bytes_downloaded") < 32 * MiB and time.monotonic() < deadline:
            time.sleep(0.02)
        cat.send_signal(signal.SIGINT)
        cat.wait(timeout=10)
        assert cat.returncode != 0
        deadline = time.monotonic() + 5
        while stat_of(fs, "payload_downloads_active") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stat_of(fs, "payload_downloads_active") == 0, "the download went on"
        got = stat_of(fs, "payload_bytes_downloaded")
        assert got < size // 2, f"{got} of {size} bytes came after cat died"
    finally:
        if cat.poll() is None:
            cat.kill()
            cat.wait()
    assert [n for n in os.listdir(fs.cache_dir) if n.endswith(".part")] == []


# ---- the server goes away and comes back ----

@pytest.mark.timeout(300)
def test_a_dead_server_fails_fast_serves_the_cache_and_recovers_without_remount(
        new_emulator, mount_fs, tmp_path):
    emu = new_emulator(seed=None)
    cached = emu.seed("fanout")[0]
    big = emu.seed("echo", outputBytes=6 * MiB)[0]
    uncached = emu.seed("echo")[0]
    fs = mount_fs(emu)
    before = read_tree(fs.thread(cached))
    before_big = read(fs.thread(big, "output.json"))
    assert before["output.json"] == emu.raw_output(cached)
    assert before_big == emu.raw_output(big)
    port = emu.port

    emu.kill()
    # a thread never seen: its lookup needs the server, and fails in time
    res, took = timed_cmd(["ls", fs.thread(uncached)], timeout=DEADLINE + 30)
    assert res.returncode != 0, "ls of an unknown thread succeeded with the server down"
    assert took <= DEADLINE, f"ls took {took:.1f} s with the server down"
    t0 = time.monotonic()
    assert os_error(os.stat, fs.thread(uncached, "status")) == "EIO"
    assert time.monotonic() - t0 <= DEADLINE
    # what was read before is still there, byte for byte
    res, took = timed_cmd(["cat", fs.thread(cached, "output.json")], timeout=DEADLINE + 30)
    assert res.returncode == 0, res.stderr
    assert took <= DEADLINE
    assert read_tree(fs.thread(cached)) == before
    assert read(fs.thread(big, "output.json")) == before_big
    # listing may fail, but never hangs
    res, took = timed_cmd(["ls", fs("threads")], timeout=DEADLINE + 30)
    assert took <= DEADLINE
    assert fs.alive()

    # the server comes back on the same port (with other threads)
    emu2 = start_emulator_on_port(port, seed=None)
    try:
        fresh = emu2.seed("fanout")[0]
        wait_until(lambda: fresh in listdir_or_none(fs("threads")), timeout=15,
                   what="the new server's thread in threads/")
        assert read(fs.thread(fresh, "status")) == b"completed\n"
        assert read(fs.thread(fresh, "output.json")) == emu2.raw_output(fresh)
        res = run_cmd(["ls", fs.thread(fresh, "steps")], check=True)
        assert len(res.stdout.split()) == 28
        big2 = emu2.seed("echo", outputBytes=6 * MiB)[0]
        assert file_sha256(fs.thread(big2, "output.json")) == raw_output_sha256(emu2, big2)
        # the old server's thread is unknown to this one
        wait_until(lambda: os_error(os.stat, fs.thread(uncached)) == "ENOENT", timeout=5,
                   what="ENOENT for a thread the new server does not have")
    finally:
        emu2.stop()


@pytest.mark.timeout(120)
def test_the_watch_of_a_thread_the_new_server_does_not_know_ends(new_emulator, mount_fs):
    """A running thread's events are followed; the server is replaced by one
    that does not know the thread: the watch asks once, hears NOT_FOUND and
    ends, rather than asking again every few seconds for as long as the
    mount is up (found by the soak: such watches piled up)."""
    emu = new_emulator(seed=None)
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    fs = mount_fs(emu)
    wait_until(lambda: read(fs.thread(tid, "events")) != b"", timeout=15,
               what="the first event")
    port = emu.port
    emu.kill()
    emu2 = start_emulator_on_port(port, seed=None)
    try:
        wait_until(lambda: settled_calls(emu2, quiet=0.1).get("WatchThread", 0) >= 1,
                   timeout=20, what="the watch asking the new server")
        first = settled_calls(emu2).get("WatchThread", 0)
        time.sleep(8)  # past the watch's longest wait between tries (5 s)
        assert settled_calls(emu2).get("WatchThread", 0) == first, \
            "the watch of a thread the server does not know went on asking"
        assert fs.alive()
    finally:
        emu2.stop()


@pytest.mark.timeout(240)
def test_error_rate_faults_are_absorbed(emu, fs, tmp_path):
    ids = emu.seed("fanout", count=3) + emu.seed("echo", outputBytes=5 * MiB, count=1)
    want = {}
    for tid in ids:
        d = tmp_path / tid
        res = scriptum(emu, "thread", "result", tid, "--save", str(d))
        assert res.rc == 0, res.err
        want[tid] = read_tree(d)
    emu.faults(errorRate=0.3, errorStatus=503)
    try:
        for tid in ids:
            got = read_tree(fs.thread(tid))
            assert got == want[tid], [k for k in want[tid] if got.get(k) != want[tid][k]]
        res = run_cmd(["ls", "-l", fs("threads")], timeout=120)
        assert res.returncode == 0, res.stderr
        assert len(res.stdout.decode().splitlines()) == 1 + len(ids)
    finally:
        emu.clear_faults()
    faulted = [r for r in emu.requests_log()["recent"] if r["status"] == 503]
    assert faulted, "no call was faulted: the test proved nothing"


def test_a_token_the_server_refuses_is_eacces(new_emulator, mount_fs):
    emu = new_emulator(seed=None, token="good-token-1234")
    tid = emu.seed("echo")[0]
    other = emu.seed("echo")[0]
    fs = mount_fs(emu)
    assert read(fs.thread(tid, "status")) == b"completed\n"
    emu.control("POST", "/token", {"token": "another-token-5678"})
    assert os_error(os.stat, fs.thread(other)) == "EACCES"
    res = run_cmd(["cat", fs.thread(other, "status")])
    assert res.returncode != 0 and "Permission denied" in res.stderr, res.stderr
    emu.control("POST", "/token", {"token": "good-token-1234"})


def test_a_server_error_status_maps_to_its_errno(emu, fs):
    tid = emu.seed("echo")[0]
    emu.faults(errorRate=1, errorStatus=501)
    assert os_error(os.stat, fs.thread(tid)) in ("EOPNOTSUPP", "ENOTSUP")  # one errno on Linux
    emu.faults(errorRate=1, errorStatus=400, match="/threads/thr_")
    other = emu.seed("echo")[0]
    assert os_error(os.stat, fs.thread(other)) == "EINVAL"
    emu.clear_faults()
    assert read(fs.thread(other, "status")) == b"completed\n"


@pytest.mark.timeout(240)
def test_a_server_that_stays_unavailable_is_eagain_within_a_deadline(emu, fs):
    tid = emu.seed("echo")[0]
    emu.faults(errorRate=1, errorStatus=503)
    try:
        t0 = time.monotonic()
        err = os_error(os.stat, fs.thread(tid))
        took = time.monotonic() - t0
    finally:
        emu.clear_faults()
    assert err == "EAGAIN", err
    assert took <= 120, f"gave up after {took:.0f} s"
    assert settled_calls(emu).get("GetThread", 0) > 1  # it was retried
    assert read(fs.thread(tid, "status")) == b"completed\n"


# ---- starting and stopping ----

def test_daemon_mode_detaches_once_mounted(emu, mount_fs):
    tid = emu.seed("echo")[0]
    fs = mount_fs(emu, foreground=False)
    assert fs.proc.returncode == 0
    assert fs.daemon_pid is not None and fs.daemon_pid != fs.proc.pid
    assert read(fs.thread(tid, "status")) == b"completed\n"


def test_daemon_mode_with_a_bad_token_exits_non_zero_saying_why(new_emulator, mount_fs,
                                                                  tmp_path):
    emu = new_emulator(seed=None, token="right-token")
    token = tmp_path / "token"
    token.write_text("wrong-token\n")
    token.chmod(0o600)
    with pytest.raises(MountFailed) as e:
        mount_fs(emu, foreground=False, token_file=str(token))
    assert e.value.rc != 0
    text = e.value.stderr.lower()
    assert "token" in text or "unauthenticated" in text or "401" in text, e.value.stderr
    assert "wrong-token" not in e.value.stderr


def test_daemon_mode_with_an_unreachable_endpoint_exits_non_zero_saying_why(emu, mount_fs):
    with pytest.raises(MountFailed) as e:
        mount_fs(emu, foreground=False, endpoint="http://127.0.0.1:1")
    assert e.value.rc != 0
    text = e.value.stderr.lower()
    assert any(w in text for w in ("127.0.0.1:1", "connect", "reach", "refused")), \
        e.value.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_unmounts_cleanly_and_exits_0(emu, mount_fs, sig):
    tid = emu.seed("echo")[0]
    fs = mount_fs(emu)
    assert read(fs.thread(tid, "status")) == b"completed\n"
    fs.proc.send_signal(sig)
    rc = fs.proc.wait(timeout=20)
    assert rc == 0, fs.stderr_text()[-2000:]
    assert fs.path not in fuse_mount_points()
    assert not os.path.ismount(fs.path)
