"""Writing JSON into scripts/<name>/new (SPEC §4): every usual way of
writing a file creates exactly one thread, when the writer closes it;
invalid JSON creates none and fails the close with EINVAL; reading the same
open file gives the new thread's id; latest then points at it;
versions/<n>/new picks the version; an input over 16 MiB is EFBIG."""

import errno
import json
import os

import pytest

from harness import (MiB, get_canonical, os_error, run_cmd, settled_calls, thread_ids_of,
                     wait_until, write_file)

pytestmark = pytest.mark.timeout(90)


class Count:
    """CreateThread calls and the script's threads, before and after."""

    def __init__(self, emu, script="echo"):
        self.emu, self.script = emu, script
        self.calls = settled_calls(emu).get("CreateThread", 0)
        self.ids = thread_ids_of(emu, scriptNameFilter=script)

    def new_ids(self):
        return [t for t in thread_ids_of(self.emu, scriptNameFilter=self.script)
                if t not in self.ids]

    def made(self):
        return settled_calls(self.emu).get("CreateThread", 0) - self.calls, self.new_ids()


def latest_target(fs, script="echo"):
    try:
        return os.path.basename(os.readlink(fs("scripts", script, "latest")))
    except OSError:
        return None


def assert_one_thread(emu, fs, count, doc):
    """Exactly one CreateThread, one new thread, whose input is doc; latest
    points at it."""
    n, new = count.made()
    assert n == 1, f"{n} CreateThread calls"
    assert len(new) == 1, new
    t = get_canonical(emu, f"/threads/{new[0]}")
    assert json.loads(t["inputJson"]) == doc
    wait_until(lambda: latest_target(fs) == new[0], timeout=2,
               what=f"latest to point at {new[0]} (it says {latest_target(fs)})")
    return new[0]


# ---- each way of writing makes one thread ----

WRITERS = {
    "bash-echo": lambda new, src: f"echo '{{\"w\": \"bash-echo\"}}' > {new}",
    "cat": lambda new, src: f"cat {src} > {new}",
    "cp": lambda new, src: f"cp {src} {new}",
    "tee": lambda new, src: f"tee {new} < {src} > /dev/null",
    "dd": lambda new, src: f"printf '{{\"a\":1}}' | dd of={new} status=none",
    "bin-echo": lambda new, src: f"/bin/echo '{{\"w\": \"bin-echo\"}}' > {new}",
}
DOCS = {"bash-echo": {"w": "bash-echo"}, "cat": {"w": "file", "n": [1, 2.5]},
        "cp": {"w": "file", "n": [1, 2.5]}, "tee": {"w": "file", "n": [1, 2.5]},
        "dd": {"a": 1}, "bin-echo": {"w": "bin-echo"}}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_each_writer_creates_exactly_one_thread(emu, fs, tmp_path, writer):
    src = tmp_path / "input.json"
    src.write_text('{"w": "file", "n": [1, 2.5]}\n')
    count = Count(emu)
    res = run_cmd(WRITERS[writer](fs("scripts", "echo", "new"), src), shell=True)
    assert res.returncode == 0, res.stderr
    assert_one_thread(emu, fs, count, DOCS[writer])


def test_python_open_write_close_creates_exactly_one_thread(emu, fs):
    count = Count(emu)
    with open(fs("scripts", "echo", "new"), "w") as f:
        f.write('{"from": "python"}')
    tid = assert_one_thread(emu, fs, count, {"from": "python"})
    assert get_canonical(emu, f"/threads/{tid}")["scriptName"] == "echo"


def test_a_document_written_in_pieces_makes_one_thread(emu, fs):
    count = Count(emu)
    fd = os.open(fs("scripts", "echo", "new"), os.O_WRONLY | os.O_TRUNC)
    try:
        for piece in (b'{"a": ', b'[1, 2', b', 3]}', b"\n"):
            assert os.write(fd, piece) == len(piece)
        assert count.made()[0] == 0  # nothing is sent before the close
    finally:
        os.close(fd)
    assert_one_thread(emu, fs, count, {"a": [1, 2, 3]})


def test_a_new_thread_runs_and_its_output_is_its_input(emu, fs):
    count = Count(emu)
    write_file(fs("scripts", "echo", "new"), b'{"run": "me"}')
    tid = count.made()[1][0]
    wait_until(lambda: open(fs.thread(tid, "status"), "rb").read() == b"completed\n",
               timeout=15, what="the new thread to complete")
    assert open(fs.thread(tid, "output.json"), "rb").read() == b'{"run": "me"}'


# ---- invalid JSON: nothing made, the close fails with EINVAL ----

BAD = '{"nope": '
BAD_WRITERS = {
    "cat": lambda new, src: f"cat {src} > {new}",
    "cp": lambda new, src: f"cp {src} {new}",
    "tee": lambda new, src: f"tee {new} < {src} > /dev/null",
    "dd": lambda new, src: f"dd if={src} of={new} status=none",
    "bin-echo": lambda new, src: f"/bin/echo '{BAD}' > {new}",
}


@pytest.mark.parametrize("writer", list(BAD_WRITERS))
def test_invalid_json_creates_nothing_and_the_writer_fails(emu, fs, tmp_path, writer):
    src = tmp_path / "bad.json"
    src.write_text(BAD)
    count = Count(emu)
    res = run_cmd(BAD_WRITERS[writer](fs("scripts", "echo", "new"), src), shell=True)
    assert res.returncode != 0, f"{writer} succeeded writing invalid JSON"
    assert "Invalid argument" in res.stderr, res.stderr
    assert count.made() == (0, [])
    assert latest_target(fs) is None


def test_invalid_json_from_bash_builtin_echo_creates_nothing(emu, fs):
    # bash closes the redirected file with dup2(), which cannot report the
    # close's error: only the effect can be checked here
    count = Count(emu)
    run_cmd(f"echo '{BAD}' > {fs('scripts', 'echo', 'new')}", shell=True)
    assert count.made() == (0, [])


@pytest.mark.parametrize("data", [b'{"nope": ', b"not json", b"{}{}", b"\x00\x01", b"[1,]",
                                  b'{"a": 1} trailing'],
                         ids=["cut", "words", "two-docs", "binary", "trailing-comma", "trailing"])
def test_python_close_of_invalid_json_raises_einval(emu, fs, data):
    count = Count(emu)
    with pytest.raises(OSError) as e:
        write_file(fs("scripts", "echo", "new"), data)
    assert e.value.errno == errno.EINVAL, e.value
    assert count.made() == (0, [])


def test_opening_new_without_writing_creates_nothing(emu, fs):
    count = Count(emu)
    res = run_cmd(f": > {fs('scripts', 'echo', 'new')}", shell=True)
    fd = os.open(fs("scripts", "echo", "new"), os.O_WRONLY)
    os.close(fd)
    assert count.made() == (0, []), res.stderr


def test_new_of_an_unknown_script_fails_and_sends_nothing(emu, fs):
    count = Count(emu)
    res = run_cmd(f"echo '{{}}' > {fs('scripts', 'nosuchscript', 'new')}", shell=True)
    assert res.returncode != 0
    assert "No such file or directory" in res.stderr, res.stderr
    assert count.made()[0] == 0


# ---- reading the answer back, latest ----

def test_reading_the_same_open_file_gives_the_new_thread_id(emu, fs):
    count = Count(emu)
    fd = os.open(fs("scripts", "echo", "new"), os.O_RDWR)
    try:
        os.write(fd, b'{"read": "back"}')
        os.close(os.dup(fd))  # a close of a copy: the flush that creates it
        n, new = count.made()
        assert n == 1 and len(new) == 1, (n, new)
        assert os.pread(fd, 4096, 0) == f"{new[0]}\n".encode()
    finally:
        os.close(fd)
    assert count.made()[0] == 1  # once per open file, however many closes
    assert latest_target(fs) == new[0]
    t = get_canonical(emu, f"/threads/{new[0]}")
    assert json.loads(t["inputJson"]) == {"read": "back"}


def test_latest_follows_each_new_thread(emu, fs):
    for i in range(3):
        count = Count(emu)
        write_file(fs("scripts", "echo", "new"), json.dumps({"i": i}).encode())
        tid = assert_one_thread(emu, fs, count, {"i": i})
        res = run_cmd(["readlink", fs("scripts", "echo", "latest")], check=True)
        assert os.path.basename(res.stdout.decode().strip()) == tid
        assert os.listdir(fs("scripts", "echo", "threads"))[0] == tid


# ---- versions ----

def test_versions_n_new_creates_a_thread_of_version_n(emu, fs):
    active = get_canonical(emu, "/scripts/echo")["activeVersion"]
    assert active == 2
    count = Count(emu)
    write_file(fs("scripts", "echo", "versions", "1", "new"), b'{"v": 1}')
    tid = assert_one_thread(emu, fs, count, {"v": 1})
    assert get_canonical(emu, f"/threads/{tid}")["version"] == 1
    count = Count(emu)
    write_file(fs("scripts", "echo", "new"), b'{"v": "active"}')
    tid = assert_one_thread(emu, fs, count, {"v": "active"})
    assert get_canonical(emu, f"/threads/{tid}")["version"] == active
    count = Count(emu)
    write_file(fs("scripts", "echo", "versions", "2", "new"), b'{"v": 2}')
    tid = assert_one_thread(emu, fs, count, {"v": 2})
    assert get_canonical(emu, f"/threads/{tid}")["version"] == 2


# ---- sizes ----

def test_a_large_input_is_sent_whole(emu, fs):
    doc = {"blob": "x" * (3 * MiB), "n": 1}
    count = Count(emu)
    write_file(fs("scripts", "echo", "new"), json.dumps(doc).encode())
    assert_one_thread(emu, fs, count, doc)


def test_an_input_over_16_mib_is_efbig(emu, fs):
    data = b'"' + b"a" * (17 * MiB) + b'"'
    count = Count(emu)
    fd = os.open(fs("scripts", "echo", "new"), os.O_WRONLY | os.O_TRUNC)
    written, failure = 0, None
    try:
        while written < len(data):
            try:
                written += os.write(fd, data[written:written + MiB])
            except OSError as e:
                failure = e
                break
    finally:
        try:
            os.close(fd)
            close_error = None
        except OSError as e:
            close_error = e
    # the write past 16 MiB fails, or else the close does; with EFBIG
    err = failure or close_error
    assert err is not None, "17 MiB were taken and closed without an error"
    assert err.errno == errno.EFBIG, err
    if failure is not None:
        assert written <= 16 * MiB, written
        assert close_error is None or close_error.errno in (errno.EFBIG, errno.EINVAL)
    assert count.made() == (0, [])


def test_an_oversized_write_creates_nothing_even_if_its_first_16_mib_are_json(emu, fs, tmp_path):
    # the first 16 MiB of this are a whole JSON document: a writer told
    # EFBIG must still find that nothing was made from the part it wrote
    src = tmp_path / "big.json"
    with open(src, "wb") as f:
        f.write(b'{"big": true}' + b" " * (17 * MiB))
    count = Count(emu)
    res = run_cmd(["dd", f"if={src}", f"of={fs('scripts', 'echo', 'new')}", "bs=1M",
                   "status=none"], timeout=60)
    assert res.returncode != 0 and "File too large" in res.stderr, res.stderr
    assert count.made() == (0, [])
    res = run_cmd(f"cat {src} > {fs('scripts', 'echo', 'new')}", shell=True, timeout=60)
    assert res.returncode != 0 and "File too large" in res.stderr, res.stderr
    assert count.made() == (0, [])


def test_new_cannot_be_read_by_its_mode_but_root_opens_it(emu, fs):
    # 0200: root's open for reading is allowed by the kernel and reads nothing
    with open(fs("scripts", "echo", "new"), "rb") as f:
        assert f.read() == b""
    assert os_error(os.listdir, fs("scripts", "echo", "new")) == "ENOTDIR"
