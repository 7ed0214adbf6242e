"""A reference-model test of the mount and the CLI, in the spirit of
mountpoint-s3's tests/reftests: a seeded random sequence of operations runs
against a mounted emulator, and what the mount (and `scriptum thread result
--save`) shows is checked against a model built straight from the API's raw
answers (GetThread, ListThreads, GetThreadResult with and without stepPath,
StreamStepResult, /_emulator/threads/{id}/output), canonicalised with
harness.canonical. The expected files are derived here from SPEC §3 and
scriptumfs(1), never from the project's own layout code.

A failure names its seed and is shrunk (delta debugging over the operation
list, each replay on a fresh emulator and mount, bounded in time) to the
shortest sequence that still fails the same way.

    python3 tests/refmodel.py --seed 7 --wire wrapped      # one run, shrunk on failure
    SEED=7 WIRE=snake python3 tests/refmodel.py
    python3 tests/soak_model.py --seconds 600              # make soak

No pytest here: tests/test_fs_model.py is the pytest entry.
"""

import base64
import errno
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (Emulator, HTTPError, Mount, run_cmd, scriptum,  # noqa: E402
                     start_emulator_on_port, status_word)

TERMINAL = {"completed", "failed", "cancelled"}
QUIET = TERMINAL | {"paused"}
STEP_FINAL = {"completed", "failed", "skipped", "cancelled"}
STATUSES = ["pending", "running", "paused", "completed", "failed", "cancelled"]
MOUNT_ONLY = ("events", "cancel", "resume")
# how long after a thread finished every file of the mount must show it:
# running_ttl (1 s) plus slack for a loaded 2-core machine
SETTLE_S = 2.5
# the demo catalog's scripts that the driver starts, with their weights;
# bigreport (64 MiB) only when asked for (big=True), nightly is cancelled
# at quiescence
SCRIPTS = {"echo": 5, "fanout": 3, "approval": 4, "flaky": 3, "strict": 3, "nightly": 1}
INPUTS = ['{"message": "hi"}', '{"n": 1.50, "big": 9007199254740993}', '{}', '[1, 2, 3]',
          '{"s": "\\u00e9", "nested": {"a": [true, null]}}', '"just a string"']


class Mismatch(AssertionError):
    """What the mount or the CLI showed differs from the model. kind names
    the check (the shrinker keeps a replay only if it fails the same kind)."""

    def __init__(self, kind, message):
        super().__init__(f"[{kind}] {message}")
        self.kind = kind


def check(cond, kind, message):
    if not cond:
        raise Mismatch(kind, message)


def wire_args(spec):
    """The emulator's arguments for a wire spec, passed through as they are:
    'canonical' -> --wire canonical; 'random --wire-seed 3' -> --wire random
    --wire-seed 3; '' -> nothing."""
    parts = shlex.split(spec or "")
    return ["--wire"] + parts if parts else []


# ---- the API's raw answers, canonical ----

def api_get(emu, path, **params):
    return harness.get_canonical(emu, path, **params)


def stream_messages(emu, path, params=None):
    """A whole stream, its framing (NDJSON, array or SSE) told from its
    bytes: (canonical messages, error or None)."""
    status, body = emu.stream(path, params=params, timeout=120)
    if status != 200:
        raise HTTPError(status, body, {})
    msgs, err = harness.parse_stream(body, "auto")
    return [harness.canonical_message(m, unwrap=False) for m in msgs], err


api_list = harness.list_all_canonical


def word(value):
    return status_word(value)


class ThreadModel:
    """What the API says of one thread at one moment, and the files of its
    directory that follow from it (SPEC §3, scriptumfs(1) THE MOUNT)."""

    def __init__(self, emu, tid):
        self.tid = tid
        self.thread = api_get(emu, f"/threads/{tid}")
        self.result = api_get(emu, f"/threads/{tid}/result", metadataOnly="true")
        check(self.thread.get("threadId") == tid, "api", f"GetThread {tid}: {self.thread}")
        self.status = word(self.thread.get("status"))
        self.steps = self.result.get("steps", [])
        self.details = {}
        self.payloads = {}
        if self.steps:
            msgs, err = stream_messages(emu, f"/threads/{tid}/steps/stream")
            check(err is None, "api", f"StreamStepResult {tid}: {err}")
            cur = None
            for m in msgs:
                if "stepMeta" in m:
                    cur = m["stepMeta"]["stepPath"]
                    self.payloads[cur] = [bytearray(), bytearray()]
                elif "stepChunk" in m:
                    c = m["stepChunk"]
                    part = 0 if c.get("part") == "STEP_PART_INPUT" else 1
                    self.payloads[c["stepPath"]][part] += base64.b64decode(c.get("data", ""))
            for s in self.steps:
                p = s["stepPath"]
                r = api_get(emu, f"/threads/{tid}/result", stepPath=p, metadataOnly="true")
                d = [x for x in r.get("stepDetails", []) if x.get("stepPath") == p]
                check(len(d) == 1, "api", f"GetThreadResult {tid} stepPath={p}: {r}")
                self.details[p] = d[0]
        self.total = int(self.result.get("outputTotalBytes", "0") or 0)
        self.output = None
        if self.has_output():
            self.output = emu.raw_output(tid)
            check(len(self.output) == self.total, "api",
                  f"{tid}: raw output {len(self.output)} bytes, outputTotalBytes {self.total}")

    def terminal(self):
        return self.status in TERMINAL

    def settled(self, now_ms=None):
        """Terminal long enough ago that every file of the mount must show it."""
        if not self.terminal():
            return False
        fin = int(self.thread.get("finishedAtMs", "0") or 0)
        now_ms = now_ms if now_ms is not None else time.time() * 1000
        return fin > 0 and now_ms - fin >= SETTLE_S * 1000

    def has_output(self):
        return self.terminal() and (self.status == "completed" or self.total > 0)

    def input_value(self):
        text = self.thread.get("inputJson", "")
        return None if text == "" else json.loads(text)

    def summary(self):
        """summary.json as scriptumfs(1) describes it: the zero-valued
        names left out."""
        t, r = self.thread, self.result
        s = {}
        for k in ("threadId", "scriptName", "version", "status", "error", "createdAtMs",
                  "startedAtMs", "finishedAtMs", "totalSteps"):
            if k in t:
                s[k] = t[k]
        st, fin = int(t.get("startedAtMs", "0") or 0), int(t.get("finishedAtMs", "0") or 0)
        if st > 0 and fin >= st:
            s["durationMs"] = str(fin - st)
        for k in ("outputTotalBytes", "totalYielded", "yieldsTruncated"):
            if k in r:
                s[k] = r[k]
        s["steps"] = r.get("steps", [])
        return s

    def yields(self):
        return [json.loads(y) for y in self.result.get("yieldedValues", [])]

    def files(self):
        """{relative path: expectation}: ('bytes', b), ('json', value),
        ('lines', [values]), ('dir', [names in order])."""
        f = {"status": ("bytes", (self.status + "\n").encode()),
             "thread.json": ("json", self.thread),
             "input.json": ("json", self.input_value()),
             "summary.json": ("json", self.summary())}
        if self.has_output():
            f["output.json"] = ("bytes", self.output)
        if self.result.get("yieldedValues"):
            f["yields.ndjson"] = ("lines", self.yields())
        if self.thread.get("error"):
            f["error"] = ("bytes", (self.thread["error"] + "\n").encode())
        f["steps"] = ("dir", [s["stepPath"] for s in self.steps])
        for s in self.steps:
            p = s["stepPath"]
            sw = word(s.get("status"))
            f[f"steps/{p}/status"] = ("bytes", (sw + "\n").encode())
            d = dict(self.details.get(p, {}))
            for k in ("inputJson", "outputJson", "inputTruncated", "outputTruncated"):
                d.pop(k, None)
            f[f"steps/{p}/step.json"] = ("json", d)
            if s.get("error"):
                f[f"steps/{p}/error"] = ("bytes", (s["error"] + "\n").encode())
            if sw in STEP_FINAL:
                sin, sout = self.payloads.get(p, [b"", b""])
                if sin:
                    f[f"steps/{p}/input.json"] = ("bytes", bytes(sin))
                if sout:
                    f[f"steps/{p}/output.json"] = ("bytes", bytes(sout))
        return f


def zero(v):
    return harness.is_zero_value(v)


def same(got, want, where="$"):
    """None when got says what want says (a name missing on one side only
    when its value is the zero value), else where they differ."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where}: {got!r} is not an object"
        for k, v in want.items():
            if k in got:
                d = same(got[k], v, f"{where}.{k}")
                if d:
                    return d
            elif not zero(v):
                return f"{where}.{k} is missing (the API says {v!r})"
        for k in got.keys() - want.keys():
            if not zero(got[k]):
                return f"{where}.{k} = {got[k]!r} is not in the API's answer"
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: {short(got)} is not the API's {short(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            d = same(g, w, f"{where}[{i}]")
            if d:
                return d
        return None
    if got != want and not (zero(got) and zero(want)):
        return f"{where}: {got!r}, the API says {want!r}"
    return None


def short(v, n=300):
    s = repr(v)
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


def read_exact(path):
    """(bytes, st_size of the open file) of a file of the mount."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks), size
    finally:
        os.close(fd)


def compare_file(rel, how, want, data, tid):
    where = f"threads/{tid}/{rel}"
    if how == "bytes":
        check(data == want, rel if rel in ("status", "output.json", "error") else
              "step " + rel.rsplit("/", 1)[-1],
              f"{where}: {len(data)} bytes {short(data[:200])}, the API says "
              f"{len(want)} bytes {short(want[:200])}")
        return
    try:
        text = data.decode()
        check(text.endswith("\n"), "format " + rel.rsplit("/", 1)[-1],
              f"{where} does not end with a newline: {short(data[-80:])}")
        if how == "lines":
            got = [json.loads(line) for line in text.split("\n")[:-1]]
        else:
            got = json.loads(text)
    except ValueError as e:
        raise Mismatch("format " + rel.rsplit("/", 1)[-1], f"{where}: not JSON ({e}): "
                       f"{short(data[:300])}") from None
    if how == "json" and isinstance(want, dict):
        d = same(got, want)
    else:
        d = None if got == want else f"{short(got)}, the API says {short(want)}"
    kind = rel.rsplit("/", 1)[-1] if not rel.startswith("steps/") else \
        "step " + rel.rsplit("/", 1)[-1]
    check(d is None, kind, f"{where}: {d}")


# ---- operations ----

class Op:
    """One operation: a name and its arguments, all drawn from the seed. A
    thread is named by `who`, an index taken modulo the threads known when
    the operation runs, so a sequence with operations dropped still runs."""

    def __init__(self, name, **args):
        self.name = name
        self.args = args

    def __repr__(self):
        a = " ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({a})" if a else self.name

    def to_json(self):
        return {"op": self.name, **self.args}

    @staticmethod
    def from_json(d):
        d = dict(d)
        return Op(d.pop("op"), **d)


WEIGHTS = [("create_new", 6), ("create_version", 2), ("create_cli", 3), ("read", 14),
           ("ls", 6), ("cp_r", 2), ("tail", 2), ("resume", 4), ("cancel", 2), ("sleep", 5),
           ("seed", 1), ("restart", 1), ("remount", 1), ("quiesce", 1)]


def generate(rng, n, big=False):
    """n operations drawn from rng."""
    scripts = dict(SCRIPTS, **({"bigreport": 1} if big else {}))
    names, weights = zip(*scripts.items())
    kinds, kw = zip(*WEIGHTS)
    ops = []
    for _ in range(n):
        k = rng.choices(kinds, kw)[0]
        if k in ("create_new", "create_cli"):
            ops.append(Op(k, script=rng.choices(names, weights)[0], input=rng.choice(INPUTS)))
        elif k == "create_version":
            ops.append(Op(k, script=rng.choice(["echo", "echo", "fanout", "approval"]),
                          version=rng.choice([1, 2]), input=rng.choice(INPUTS)))
        elif k == "read":
            ops.append(Op(k, who=rng.randrange(1 << 16), pick=rng.randrange(1 << 16)))
        elif k == "ls":
            ops.append(Op(k, what=rng.choice(["threads", "thread", "thread", "steps",
                                              "script", "by-status"]),
                          who=rng.randrange(1 << 16), pick=rng.randrange(1 << 16)))
        elif k == "cp_r":
            ops.append(Op(k, who=rng.randrange(1 << 16)))
        elif k == "tail":
            ops.append(Op(k, who=rng.randrange(1 << 16), ms=rng.choice([200, 500, 900])))
        elif k == "resume":
            ops.append(Op(k, who=rng.randrange(1 << 16), via=rng.choice(["file", "cli"]),
                          answer=rng.choice(['"approve"', '{"value": "approve"}', '"reject"',
                                             '"maybe"', "null"])))
        elif k == "cancel":
            ops.append(Op(k, who=rng.randrange(1 << 16), via=rng.choice(["file", "cli"])))
        elif k == "sleep":
            ops.append(Op(k, ms=rng.choice([50, 150, 300, 600, 1200])))
        elif k == "seed":
            ops.append(Op(k, script=rng.choice(["echo", "fanout", "strict", "approval"]),
                          status=rng.choice(["completed", "failed", "cancelled"]),
                          count=rng.randint(1, 3)))
        else:
            ops.append(Op(k))
    return ops


class Driver:
    """One run: an emulator (wire spec passed straight to it), a mount of
    it, and the threads the run knows. run(ops) raises Mismatch."""

    def __init__(self, wire="canonical", cache_size=None, log=None, big=False):
        self.wire = wire
        self.cache_size = cache_size
        self.log = log or (lambda s: None)
        self.big = big
        self.tmp = tempfile.mkdtemp(prefix="refmodel-")
        self.cache_dir = os.path.join(self.tmp, "cache")
        self.emu = None
        self.fs = None
        self.known = []  # thread ids, in the order the run learnt them
        self.models = {}  # tid -> ThreadModel of a terminal thread (never changes)
        self.ops_done = 0
        self.problems = []  # cleanup failures (a daemon that did not exit cleanly)

    # -- lifetime --

    def start(self):
        self.emu = Emulator(*wire_args(self.wire), seed=None)
        self.mount()

    def mount(self):
        opts = [] if self.cache_size is None else [f"cache_size={self.cache_size}"]
        self.fs = Mount(self.emu, cache_dir=self.cache_dir, options=opts)

    def unmount(self):
        fs, self.fs = self.fs, None
        if fs is not None:
            try:
                fs.stop()
            except AssertionError as e:
                self.problems.append(str(e))

    def close(self):
        self.unmount()
        if self.emu is not None:
            try:
                self.emu.stop()
            except AssertionError as e:
                self.problems.append(str(e))
            self.emu = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the model --

    def model(self, tid):
        m = self.models.get(tid)
        if m is not None:
            return m
        m = ThreadModel(self.emu, tid)
        if m.terminal():
            self.models[tid] = m
        return m

    def thread(self, who):
        return self.known[who % len(self.known)] if self.known else None

    def learn(self, tid):
        check(isinstance(tid, str) and tid.startswith("thr_"), "create", f"no thread id: {tid!r}")
        if tid not in self.known:
            self.known.append(tid)

    # -- running --

    def run(self, ops, final_quiesce=True):
        for i, op in enumerate(ops):
            self.log(f"  {i:3d} {op!r}")
            self._step(i, getattr(self, "op_" + op.name), **op.args)
            self.ops_done += 1
        if final_quiesce:
            self._step(len(ops), self.op_quiesce)

    def _step(self, i, fn, **args):
        """One operation; any failure becomes a Mismatch that knows where:
        an unexpected errno, a program that hung, an API call that failed
        are failures of the run too, kind named by their type."""
        try:
            fn(**args)
        except Mismatch as e:
            e.index = i
            raise
        except (OSError, HTTPError, AssertionError, ValueError, KeyError) as e:
            m = Mismatch(type(e).__name__, f"{e}\n{traceback.format_exc(limit=4)}")
            m.index = i
            raise m from e

    def op_sleep(self, ms):
        time.sleep(ms / 1000)

    def _create_via_file(self, path, data):
        fd = os.open(path, os.O_RDWR)
        try:
            os.write(fd, data.encode())
            os.close(os.dup(fd))  # this close creates the thread
            back = os.pread(fd, 64, 0)
        finally:
            os.close(fd)
        check(back.endswith(b"\n"), "create", f"{path} read back {back!r}")
        tid = back.decode().strip()
        t = api_get(self.emu, f"/threads/{tid}")
        return tid, t

    def op_create_new(self, script, input):
        tid, t = self._create_via_file(self.fs("scripts", script, "new"), input)
        check(t.get("scriptName") == script, "create", f"{tid} is of {t.get('scriptName')}")
        check(json.loads(t.get("inputJson", "null")) == json.loads(input), "create",
              f"{tid}: inputJson {t.get('inputJson')!r}, written {input!r}")
        self.learn(tid)

    def op_create_version(self, script, version, input):
        path = self.fs("scripts", script, "versions", version, "new")
        vers = [int(v["version"]) for v in api_get(self.emu, f"/scripts/{script}/versions")
                .get("versions", [])]
        if version not in vers:
            check(not os.path.exists(path), "versions", f"{path} exists; versions are {vers}")
            return
        tid, t = self._create_via_file(path, input)
        check(int(t.get("version", 0)) == version, "create",
              f"{tid}: version {t.get('version')}, written to versions/{version}/new")
        self.learn(tid)

    def op_create_cli(self, script, input):
        r = scriptum(self.emu, "-o", "json", "thread", "create", script, "--input", input)
        check(r.rc == 0, "cli create", f"scriptum thread create {script}: rc {r.rc} {r.err}")
        t = json.loads(r.out)
        self.learn(t.get("threadId"))

    def op_seed(self, script, status, count):
        for tid in self.emu.seed(script, count=count, status=status):
            self.learn(tid)

    def thread_files(self, tid):
        """The readable files under threads/<tid>/ that the mount lists now."""
        base = self.fs.thread(tid)
        out = []
        for root, dirs, files in os.walk(base):
            dirs.sort()
            for n in sorted(files):
                rel = os.path.relpath(os.path.join(root, n), base)
                if rel not in ("cancel", "resume"):
                    out.append(rel)
        return out

    def op_read(self, who, pick):
        """Reads one file of a known thread at whatever moment of its life;
        checks it against the API if the thread had settled before the read."""
        tid = self.thread(who)
        if tid is None:
            return
        before = self.model(tid)
        names = ["status", "thread.json", "summary.json", "output.json", "events", "error",
                 "input.json", "yields.ndjson", "steps"]
        name = names[pick % len(names)]
        if name == "steps":
            try:
                paths = os.listdir(self.fs.thread(tid, "steps"))
            except FileNotFoundError:
                return
            if not paths:
                return
            sp = paths[(pick // len(names)) % len(paths)]
            leaf = ["status", "output.json", "step.json", "input.json", "error"][
                (pick // 97) % 5]
            rel = f"steps/{sp}/{leaf}"
        else:
            rel = name
        path = self.fs.thread(tid, rel)
        try:
            data, size = read_exact(path)
        except FileNotFoundError:
            data = None
        except OSError as e:
            raise Mismatch("read", f"reading {path}: {e}") from None
        after = self.model(tid)
        self.check_read(tid, rel, data, size if data is not None else None, before, after)

    def check_read(self, tid, rel, data, size, before, after):
        where = f"threads/{tid}/{rel}"
        if data is not None and rel != "events":
            # output.json (any moment: it only exists once final) and every
            # file of a settled thread: no shorter (nor longer) than st_size
            if rel == "output.json" or (before.settled() and after.settled()):
                check(len(data) == size, "st_size",
                      f"{where}: st_size {size}, read {len(data)} bytes")
        if rel == "output.json" and data is not None:
            check(after.has_output(), "output.json",
                  f"{where} exists, the API says {after.status} (outputTotalBytes "
                  f"{after.total})")
            compare_file(rel, "bytes", after.output, data, tid)
            return
        if rel == "events":
            if data is not None:
                self.check_events(tid, data, None)
            return
        if not before.settled():
            return  # the mount may show any recent state
        want = before.files()
        if rel not in want:
            if data is not None:
                raise Mismatch("exists", f"{where} exists ({short(data[:120])}); the model "
                               f"has no such file for a {before.status} thread")
            return
        check(data is not None, "exists", f"{where} does not exist; the API has it: "
              f"{short(want[rel][1])[:200]}")
        how, value = want[rel]
        compare_file(rel, how, value, data, tid)

    def check_events(self, tid, data, final):
        where = f"threads/{tid}/events"
        try:
            evs = [harness.canonical_message(json.loads(l), unwrap=False)
                   for l in data.decode().split("\n") if l.strip()]
        except ValueError as e:
            raise Mismatch("events", f"{where} is not NDJSON: {e}") from None
        if not evs:
            return  # not looked at before: its size is 0 until read
        check(data.endswith(b"\n"), "events", f"{where} does not end with a newline")
        check(evs[0].get("type") == "THREAD_EVENT_TYPE_SNAPSHOT", "events",
              f"{where}: the first event is {evs[0].get('type')}")
        for e in evs:
            check(e.get("thread", {}).get("threadId") == tid, "events",
                  f"{where}: an event of another thread {short(e)}")
        if final is not None:
            last = word(evs[-1].get("thread", {}).get("status"))
            check(last == final, "events",
                  f"{where}: the last event says {last}, the thread is {final} "
                  f"({len(evs)} events)")

    def op_ls(self, what, who, pick):
        if what == "threads":
            os.listdir(self.fs("threads"))
            return
        if what == "by-status":
            os.listdir(self.fs("by-status", STATUSES[pick % len(STATUSES)]))
            return
        if what == "script":
            names = sorted(SCRIPTS)
            os.listdir(self.fs("scripts", names[pick % len(names)], "threads"))
            return
        tid = self.thread(who)
        if tid is None:
            return
        path = self.fs.thread(tid) if what == "thread" else self.fs.thread(tid, "steps")
        # ls -l: the names and each one's attributes, as a user looks
        run_cmd(["ls", "-l", path], timeout=30)

    def op_cp_r(self, who):
        tid = self.thread(who)
        if tid is None:
            return
        before = self.model(tid)
        dst = os.path.join(self.tmp, "cp")
        shutil.rmtree(dst, ignore_errors=True)
        r = run_cmd(["cp", "-r", self.fs.thread(tid), dst], timeout=120)
        after = self.model(tid)
        if not (before.settled() and after.settled()):
            return
        check(r.returncode == 0, "cp -r", f"cp -r threads/{tid}: {r.stderr[-1000:]}")
        self.check_tree(tid, dst, before, "cp -r of ")

    def check_tree(self, tid, top, m, what=""):
        """A copied or mounted thread directory holds the model's files."""
        want = m.files()
        got = []
        for root, dirs, files in os.walk(top):
            for n in files:
                rel = os.path.relpath(os.path.join(root, n), top)
                if rel not in MOUNT_ONLY:
                    got.append(rel)
        want_files = {k for k, (how, _) in want.items() if how != "dir"}
        check(set(got) == want_files, "files",
              f"{what}threads/{tid} ({m.status}): extra {sorted(set(got) - want_files)}, "
              f"missing {sorted(want_files - set(got))}")
        for rel in sorted(want_files):
            how, value = want[rel]
            with open(os.path.join(top, rel), "rb") as f:
                compare_file(rel, how, value, f.read(), tid)

    def op_tail(self, who, ms):
        tid = self.thread(who)
        if tid is None:
            return
        p = subprocess.Popen(["tail", "-n", "+1", "-f", self.fs.thread(tid, "events")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        time.sleep(ms / 1000)
        if p.poll() is None:
            os.killpg(p.pid, 9)
        out, err = p.communicate(timeout=10)
        check(b"rror" not in err, "tail", f"tail -f threads/{tid}/events: {err[-500:]!r}")
        # a partial last line is what tail had when killed
        lines = out.split(b"\n")
        self.check_events(tid, b"\n".join(lines[:-1]) + (b"\n" if len(lines) > 1 else b""),
                          None)

    def op_resume(self, who, via, answer):
        tid = self.thread(who)
        if tid is None:
            return
        before = self.model(tid)
        err = self.act(tid, before, "resume", via, answer.encode(), "--input", answer)
        if before.status != "paused":
            return
        # a paused thread stays paused until this run resumes it
        script = before.thread.get("scriptName")
        valid = script == "flaky" or answer in ('"approve"', '"reject"', '{"value": "approve"}')
        invalid = script == "approval" and answer == '"maybe"'
        after = self.model(tid)
        if valid:
            check(err == 0, "resume", f"resume ({via}) of paused {script} {tid} with {answer}: "
                  f"{errno.errorcode.get(err, err)}")
            check(after.status != "paused", "resume",
                  f"{tid} still paused after resume with {answer}")
        elif invalid:
            check(err == (errno.EINVAL if via == "file" else -2), "resume",
                  f"resume ({via}) of paused approval {tid} with {answer}: "
                  f"{errno.errorcode.get(err, err)}, not EINVAL (exit 2)")
            check(after.status == "paused", "resume", f"{tid} is {after.status} after a "
                  f"refused resume")

    def op_cancel(self, who, via):
        tid = self.thread(who)
        if tid is None:
            return
        before = self.model(tid)
        err = self.act(tid, before, "cancel", via, b"x\n")
        if via == "file" and not before.terminal() and err == 0:
            after = self.model(tid)
            check(after.status == "cancelled", "cancel",
                  f"cancel of {tid} succeeded, the API says {after.status}")

    def act(self, tid, before, what, via, data, *cli_args):
        """Cancel or resume tid through its file (writing data) or the CLI;
        a finished thread must refuse (EBUSY, or a failing CLI). Returns the
        file's errno, or minus the CLI's exit status (0 on success)."""
        if via == "file":
            try:
                harness.write_file(self.fs.thread(tid, what), data)
                err = 0
            except OSError as e:
                err = e.errno
            if before.terminal():
                check(err == errno.EBUSY, what, f"{what} of {before.status} {tid}: "
                      f"{errno.errorcode.get(err, err)}, not EBUSY")
            return err
        r = scriptum(self.emu, "thread", what, tid, *cli_args)
        if before.terminal():
            check(r.rc != 0, what, f"scriptum thread {what} of {before.status} {tid} "
                  f"succeeded")
        return 0 if r.rc == 0 else -r.rc

    def op_restart(self):
        """The emulator restarts on its port; its state is lost, so the run
        forgets every thread it knew."""
        port = self.emu.port
        try:
            self.emu.stop()
        except AssertionError as e:
            self.problems.append(str(e))
        self.emu = start_emulator_on_port(port, *wire_args(self.wire), seed=None)
        self.fs.emu = self.emu
        self.known = []
        self.models = {}

    def op_remount(self):
        self.unmount()
        self.mount()

    # -- quiescence: everything must agree with the model --

    def op_quiesce(self):
        deadline = time.monotonic() + 30
        while True:
            pending = []
            for tid in self.known:
                m = self.model(tid)
                if m.status in QUIET:
                    continue
                if m.thread.get("scriptName") == "nightly":
                    self.emu.post(f"/threads/{tid}/cancel")  # minutes long: end it
                pending.append((tid, m.status))
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"threads did not settle within 30 s: {pending}")
            time.sleep(0.1)
        time.sleep(SETTLE_S)  # running_ttl and list freshness pass
        listed = api_list(self.emu)
        ids = [t["threadId"] for t in listed]
        check(set(ids) == set(self.known), "api",
              f"ListThreads has {sorted(set(ids) ^ set(self.known))} unlike the run")
        for tid in self.known:
            self.check_thread(tid)
        self.check_lists(listed)

    def check_thread(self, tid):
        m = self.model(tid)
        top = self.fs.thread(tid)
        want = m.files()
        names = set(os.listdir(top))
        want_top = {k for k in want if "/" not in k} | set(MOUNT_ONLY)
        check(names == want_top, "files",
              f"ls threads/{tid} ({m.status}): extra {sorted(names - want_top)}, "
              f"missing {sorted(want_top - names)}")
        steps = os.listdir(os.path.join(top, "steps"))
        check(steps == want["steps"][1], "steps", f"ls threads/{tid}/steps: {steps}, the API "
              f"has {want['steps'][1]}")
        for p in steps:
            got = set(os.listdir(os.path.join(top, "steps", p)))
            wp = {k.split("/")[2] for k in want if k.startswith(f"steps/{p}/")}
            check(got == wp, "step files", f"ls threads/{tid}/steps/{p} "
                  f"({word(m.details.get(p, {}).get('status'))}): extra {sorted(got - wp)}, "
                  f"missing {sorted(wp - got)}")
        for rel, (how, value) in sorted(want.items()):
            if how == "dir":
                continue
            data, size = read_exact(os.path.join(top, rel))
            check(len(data) == size, "st_size",
                  f"threads/{tid}/{rel}: st_size {size}, read {len(data)} bytes")
            compare_file(rel, how, value, data, tid)
        data, _ = read_exact(os.path.join(top, "events"))
        self.check_events(tid, data, m.status)
        # the mount and `scriptum thread result --save` agree under diff -r
        saved = os.path.join(self.tmp, "save")
        shutil.rmtree(saved, ignore_errors=True)
        r = scriptum(self.emu, "thread", "result", tid, "--save", saved)
        check(r.rc in (0, 1), "cli save", f"scriptum thread result {tid} --save: rc {r.rc} "
              f"{r.err[-500:]}")
        self.check_tree(tid, saved, m, "--save of ")
        args = ["diff", "-r"] + [a for n in MOUNT_ONLY for a in ("-x", n)]
        d = run_cmd(args + [top, saved], timeout=120)
        check(d.returncode == 0, "diff -r", f"diff -r threads/{tid} (a {m.status} "
              f"{m.thread.get('scriptName')}) and its --save:\n"
              f"{d.stdout.decode(errors='replace')[-1500:]}{d.stderr[-300:]}")

    def check_lists(self, listed):
        ids = [t["threadId"] for t in listed]
        got = os.listdir(self.fs("threads"))
        check(got == ids, "ls threads", f"ls threads/: {got}, ListThreads: {ids}")
        for s in STATUSES:
            want = [t["threadId"] for t in listed if word(t.get("status")) == s]
            via = [t["threadId"] for t in api_list(self.emu, statusFilter="THREAD_STATUS_" +
                                                   s.upper())]
            check(via == want, "api", f"ListThreads statusFilter={s}: {via}, unlike {want}")
            got = os.listdir(self.fs("by-status", s))
            check(got == want, "ls by-status", f"ls by-status/{s}/: {got}, ListThreads: {want}")
            for tid in got:
                link = os.readlink(self.fs("by-status", s, tid))
                check(link == f"../../threads/{tid}", "ls by-status",
                      f"by-status/{s}/{tid} -> {link}")
        for name in sorted(set(SCRIPTS) | {"bigreport"}):
            want = [t["threadId"] for t in api_list(self.emu, scriptNameFilter=name)]
            check(want == [t["threadId"] for t in listed if t.get("scriptName") == name],
                  "api", f"ListThreads scriptNameFilter={name}")
            got = os.listdir(self.fs("scripts", name, "threads"))
            check(got == want, "ls script threads",
                  f"ls scripts/{name}/threads/: {got}, ListThreads: {want}")
            latest = self.fs("scripts", name, "latest")
            if want:
                link = os.readlink(latest) if os.path.islink(latest) else None
                check(link == f"../../threads/{want[0]}", "latest",
                      f"scripts/{name}/latest -> {link}, the newest is {want[0]}")
            else:
                check(not os.path.lexists(latest), "latest",
                      f"scripts/{name}/latest exists with no thread of {name}")


# ---- one seed, and shrinking ----

class Failure:
    def __init__(self, seed, wire, cache_size, ops, error, shrunk=None, shrink_note=""):
        self.seed, self.wire, self.cache_size = seed, wire, cache_size
        self.ops, self.error = ops, error
        self.shrunk = shrunk
        self.shrink_note = shrink_note

    def report(self):
        ops = self.shrunk if self.shrunk is not None else self.ops
        lines = [f"refmodel: FAILED seed={self.seed} wire={self.wire!r} "
                 f"cache_size={self.cache_size}",
                 f"  replay: SEED={self.seed} WIRE={shlex.quote(self.wire)} "
                 f"/usr/bin/python3 tests/refmodel.py",
                 f"  {self.error}",
                 f"  (at operation {getattr(self.error, 'index', '?')} of the sequence run)"]
        if self.shrunk is not None:
            saved = self.save_ops()
            lines.append(f"  shrunk from {len(self.ops)} to {len(self.shrunk)} operations "
                         f"{self.shrink_note}; replay it: /usr/bin/python3 tests/refmodel.py "
                         f"--seed {self.seed} --wire {shlex.quote(self.wire)} --ops {saved}")
        else:
            lines.append(f"  the sequence ({len(ops)} operations, not shrunk):")
        lines += [f"    {i:3d} {op!r}" for i, op in enumerate(ops)]
        lines.append("    --- quiesce (the final check)")
        return "\n".join(lines)


    def save_ops(self):
        """Writes the shrunk sequence as JSON (for --ops); returns its path."""
        d = os.path.join(harness.TOP, "build", "refmodel")
        os.makedirs(d, exist_ok=True)
        name = f"seed-{self.seed}-{re.sub(r'[^A-Za-z0-9]+', '_', self.wire)}.json"
        path = os.path.join(d, name)
        with open(path, "w") as f:
            json.dump([op.to_json() for op in self.shrunk], f, indent=1)
            f.write("\n")
        return os.path.relpath(path, harness.TOP)


def run_config(seed):
    """The run's settings that the seed decides: how many operations and the
    cache size (a tiny cache makes payloads leave it)."""
    rng = random.Random(seed)
    n = rng.randint(12, 30)
    cache = rng.choice([None, None, "0", "16K"])
    return rng, n, cache


def replay(ops, wire, cache_size, big=False, log=None):
    """Runs ops on a fresh emulator and mount; returns the Mismatch, or None."""
    with Driver(wire, cache_size, log=log, big=big) as d:
        try:
            d.run(ops)
        except Mismatch as e:
            return e
    return None


def ddmin(ops, fails, budget_s, log=None):
    """Delta debugging: the shortest sublist of ops found within budget_s
    seconds for which fails(candidate) is true (fails(ops) is). Returns
    (ops, replays, note)."""
    deadline = time.monotonic() + budget_s
    replays = 0

    def try_(candidate):
        nonlocal replays
        if time.monotonic() > deadline:
            return False
        replays += 1
        ok = fails(candidate)
        if log:
            log(f"  shrink: {len(candidate)} ops -> {'fails' if ok else 'passes'}")
        return ok

    n = 2
    while len(ops) >= 1 and time.monotonic() < deadline:
        size = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), size):
            candidate = ops[:start] + ops[start + size:]
            if try_(candidate):
                ops = candidate
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if size == 1:
                break
            n = min(len(ops), n * 2)
    note = f"in {replays} replays" + (" (time ran out)" if time.monotonic() > deadline else "")
    return ops, replays, note


def shrink(ops, wire, cache_size, kind, budget_s, big=False, log=None):
    """The shortest sequence found within budget_s that still fails with a
    Mismatch of the same kind, each replay on a fresh emulator and mount."""
    def fails(candidate):
        try:
            e = replay(candidate, wire, cache_size, big)
        except (AssertionError, OSError, HTTPError) as x:  # another problem: not this one
            if log:
                log(f"  shrink: replay hit {type(x).__name__}: {str(x)[:200]}")
            return False
        return e is not None and e.kind == kind

    return ddmin(ops, fails, budget_s, log)


def run_seed(seed, wire="canonical", shrink_s=60, big=False, log=None, ops=None):
    """One seed: (operations run, Failure or None). A failure is shrunk
    within shrink_s seconds (0: not at all)."""
    rng, n, cache = run_config(seed)
    if ops is None:
        ops = generate(rng, n, big)
    with Driver(wire, cache, log=log, big=big) as d:
        try:
            d.run(ops)
            err = None
        except Mismatch as e:
            err = e
        done = d.ops_done
    problems = d.problems
    if err is None:
        if problems:
            raise AssertionError("; ".join(problems))
        return done, None
    cut = ops[:getattr(err, "index", len(ops)) + 1]
    f = Failure(seed, wire, cache, ops, err)
    if shrink_s > 0:
        f.shrunk, _, f.shrink_note = shrink(cut, wire, cache, err.kind, shrink_s, big, log)
    return done, f


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="the reference-model test, one seed")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "1")))
    ap.add_argument("--wire", default=os.environ.get("WIRE", "canonical"))
    ap.add_argument("--shrink-seconds", type=float,
                    default=float(os.environ.get("SHRINK_SECONDS", "120")))
    ap.add_argument("--big", action="store_true", help="also start bigreport (64 MiB)")
    ap.add_argument("--ops", help="a JSON file of operations to replay instead")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    log = (lambda s: print(s, flush=True)) if a.verbose else None
    ops = None
    if a.ops:
        with open(a.ops) as f:
            ops = [Op.from_json(d) for d in json.load(f)]
    t0 = time.monotonic()
    try:
        done, fail = run_seed(a.seed, a.wire, a.shrink_seconds, a.big, log, ops)
    finally:
        harness.unmount_leftovers()
    if fail:
        print(fail.report())
        return 1
    print(f"refmodel: seed {a.seed} wire {a.wire!r}: {done} operations agree with the "
          f"model ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
