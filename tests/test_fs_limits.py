"""Bounds the daemon keeps whatever is asked of it (issue 4): the inode
table follows inode_limit however many threads a walk touches, a thread
let go comes back by name, and the mount's options are checked."""

import os
import re
import subprocess
import time

import pytest

from harness import MountFailed

pytestmark = pytest.mark.timeout(180)


def stat_value(fs, name):
    """One counter of .scriptumfs/stats."""
    with open(fs(".scriptumfs", "stats")) as f:
        text = f.read()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"{name} not in stats:\n{text}"
    return int(m.group(1))


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def emu(new_emulator):
    e = new_emulator(seed=None)
    e.seed("echo", 1200)
    return e


def test_a_walk_over_many_threads_keeps_the_inode_table_bounded(emu, mount_fs):
    fs = mount_fs(emu, list_limit=5000, options=["inode_limit=100"])
    out = subprocess.run(["find", fs("threads"), "-maxdepth", "2", "-name", "status"],
                         capture_output=True, check=True, timeout=150, text=True).stdout.split()
    assert len(out) == 1200
    # the kernel is asked to let the oldest go, and its forgets free them
    wait_for(lambda: stat_value(fs, "thread_records") <= 110, 30,
             "the thread records to come back under inode_limit")
    # a thread that was let go is found again by name
    tid = os.path.basename(os.path.dirname(out[0]))
    with open(fs("threads", tid, "status")) as f:
        assert f.read() == "completed\n"


def test_a_mount_option_out_of_range_is_refused_with_its_name(emu, mount_fs):
    for bad in ("inode_limit=3", "list_limit=0", "running_ttl=soon", "cache_size=lots"):
        with pytest.raises(MountFailed) as e:
            mount_fs(emu, options=[bad])
        assert e.value.rc != 0
        assert bad.split("=")[0] in e.value.stderr, e.value.stderr


def test_files_still_open_at_a_signal_are_let_go_cleanly(emu, mount_fs):
    """The kernel sends no release for what is open when the session ends:
    the daemon closes those itself (the ASan build fails on any leak)."""
    tid = emu.seed("echo", 1)[0]
    fs = mount_fs(emu)
    held = [open(fs("threads", tid, name), "rb") for name in ("status", "output.json")]
    held[1].read(1)
    fd = os.open(fs("threads", tid, "steps"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fs.proc.send_signal(15)
        assert fs.proc.wait(timeout=20) == 0, fs.stderr_text()[-2000:]
    finally:
        for f in held:
            try:
                f.close()
            except OSError:
                pass
        try:
            os.close(fd)
        except OSError:
            pass
    assert not os.path.ismount(fs.path)
