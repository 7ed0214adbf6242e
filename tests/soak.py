"""`make soak [SECONDS=600]`: a mount and the CLI, for a given time, against
an emulator whose faults change every few seconds at random.

    SCRIPTUM_BUILD=build/asan python3 tests/soak.py --seconds 600 [--seed N]

The faults: latency, error rates (429, 502, 503, 504, some with a
Retry-After), streams cut, ended by an error line, stalled or trickled,
restarts of the emulator on the same port (a new server: a new set of
threads), and rotations of the token (the token file first, then the
server). The workers, all at once:

  - readers: fsx-style reads at random offsets and lengths of large outputs
    (os.pread, and now and then a whole `cp`), every byte compared with the
    raw output the emulator gave when the thread was made;
  - a sweeper: `ls -l`, `find`, `grep -r` and os.walk of the tree; a listing
    never shows a name twice;
  - a creator: JSON written into scripts/echo/new, the new id read back;
  - an asker: approval threads created through new, answered through
    resume once paused;
  - a follower: `tail -f` of a running thread's events, every line JSON;
  - the CLI: list --all, get, result --save (the saved bytes compared).

Every operation has a deadline; an operation past it is a hang. Errors
(EIO, EAGAIN, ENOENT for a thread of a server that was replaced, a CLI's
exit status) are expected under faults and counted by errno. Failures are
wrong bytes, a short read, a size that is not the output's, a name listed
twice, a create or an answer the API does not show once the faults are
cleared, a hang, a daemon that died, a secret in any output, a sanitizer
report, and an RSS or a count of open descriptors that still grows in the
second half of the run (the slope of a line fitted to it), and the heap in
use (heap_bytes of .scriptumfs/stats: what a leak grows, where RSS also
counts what the allocator keeps) likewise.

It prints the operations done, bytes verified, errors by errno, and the
daemon's RSS, heap and descriptors at each sample (every minute; more often in a
short run), and exits 1 on any failure.
"""

import argparse
import collections
import errno as _errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

MiB = 1 << 20
HANG_S = 150  # an operation's deadline: past every retry and watchdog of the mount
CLI_HANG_S = 180
BIG_KEPT = 10  # large outputs remembered (over all servers), for the readers
STATUSES = (429, 502, 503, 504)


class Soak:
    """The shared state: the current server, what it holds, the counts."""

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.tmp = tempfile.mkdtemp(prefix="scriptum-soak-")
        self.ops = collections.Counter()
        self.errors = collections.Counter()
        self.failures = []
        self.bytes_verified = 0
        self.inflight = {}  # op number -> (what, start)
        self.op_seq = 0
        self.samples = []  # (seconds, rss KiB, fds, threads, heap KiB)
        self.faults_set = collections.Counter()
        self.restarts = 0
        self.rotations = 0
        self.gen = 0
        self.big = collections.OrderedDict()  # tid -> raw output bytes
        self.small = []  # completed thread ids of the current server
        self.running = []  # long-running thread ids of the current server
        self.created = []  # (gen, tid, n): made through new
        self.answered = []  # (gen, tid): resumed through the mount
        self.token_n = 0
        self.token = self.next_token()
        self.token_file = os.path.join(self.tmp, "token")
        self.write_token_file()
        self.emu = harness.Emulator(seed=None, token=self.token)
        self.port = self.emu.port
        self.populate()
        self.fs = None
        self.meta = {}  # .scriptumfs/ files read at the end

    # ---- bookkeeping ----

    def next_token(self):
        self.token_n += 1
        tok = f"soak-token-{self.args.seed}-{self.token_n}-{random.getrandbits(64):016x}"
        harness.SECRETS.register(tok, f"soak token {self.token_n}")
        return tok

    def write_token_file(self):
        tmp = self.token_file + ".new"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.token + "\n")
        os.rename(tmp, self.token_file)

    def fail(self, what):
        with self.lock:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {what}")
        print(f"soak: FAILURE: {what}", flush=True)

    def count(self, kind, n=1):
        with self.lock:
            self.ops[kind] += n

    def error(self, kind, err):
        name = _errno.errorcode.get(err, str(err)) if isinstance(err, int) else str(err)
        with self.lock:
            self.errors[f"{kind}: {name}"] += 1

    def begin(self, what):
        with self.lock:
            self.op_seq += 1
            self.inflight[self.op_seq] = (what, time.monotonic())
            return self.op_seq

    def end(self, op):
        with self.lock:
            self.inflight.pop(op, None)

    def verified(self, n):
        with self.lock:
            self.bytes_verified += n

    # ---- the server ----

    def populate(self):
        """Threads on a new server: small and large completed ones, and
        long-running ones to follow."""
        emu, rng = self.emu, self.rng
        small = emu.seed("echo", count=12) + emu.seed("fanout", count=2)
        big = {}
        for _ in range(3):
            size = rng.choice([1, 3, 6, 12]) * MiB + rng.randrange(4096)
            tid = emu.seed("echo", outputBytes=size)[0]
            big[tid] = emu.raw_output(tid)
        running = [emu.post("/threads", {"scriptName": "nightly"})["threadId"]]
        with self.lock:
            self.gen += 1
            self.small = small
            self.running = running
            for tid, data in big.items():
                self.big[tid] = data
            while len(self.big) > BIG_KEPT:
                self.big.popitem(last=False)

    def restart(self):
        """The emulator stops (cleanly or killed) and a new one takes its
        port: the old server's threads are gone."""
        old = self.emu
        if self.rng.random() < 0.5:
            old.kill()
        try:
            old.stop()
        except AssertionError as e:
            self.fail(f"the emulator did not stop cleanly: {e}")
        time.sleep(self.rng.uniform(0, 2))  # the server is away for a while
        self.emu = harness.start_emulator_on_port(self.port, seed=None, token=self.token)
        self.populate()
        self.restarts += 1

    def rotate(self):
        """A new token: in the file the mount and the CLI read, then on the
        server, whose 401 makes them read it again."""
        self.token = self.next_token()
        self.write_token_file()
        self.emu.control("POST", "/token", {"token": self.token})
        self.emu.token = self.token  # the driver's own calls
        self.rotations += 1

    def random_faults(self):
        rng = self.rng
        kind = rng.choice(["none", "none", "latency", "errors", "errors", "cut", "errorline",
                           "stall", "trickle", "mixed"])
        f = {}
        if kind in ("latency", "mixed"):
            f["latencyMs"] = rng.choice([5, 20, 50, 150])
        if kind in ("errors", "mixed"):
            f["errorRate"] = rng.choice([0.1, 0.3, 0.6])
            f["errorStatus"] = rng.choice(STATUSES)
            if rng.random() < 0.3:
                f["retryAfter"] = 1
            if rng.random() < 0.2:
                f["errorBody"] = "text"
        if kind == "cut":
            f["cutAfterBytes"] = rng.choice([0, 100, 70000, 2 * MiB])
        if kind == "errorline":
            f["errorAfterBytes"] = rng.choice([0, 5000, MiB])
        if kind == "stall":
            f["stallAfterBytes"] = rng.choice([0, 30000, MiB])
            f["stallMs"] = rng.choice([500, 2000, 4000])
        if kind == "trickle":
            f["trickleAfterBytes"] = rng.choice([100, 200000])
            f["trickleMs"] = rng.choice([20, 200])
        if kind == "mixed" and rng.random() < 0.5:
            f["cutAfterBytes"] = rng.choice([1000, MiB])
        self.faults_set[kind] += 1
        self.emu.faults(**f)

    def changer(self):
        """Changes the faults every few seconds; restarts the server and
        rotates the token now and then."""
        a, rng = self.args, self.rng
        t0 = time.monotonic()
        next_restart = t0 + a.restart_every * rng.uniform(0.5, 1.0)
        next_rotate = t0 + a.rotate_every * rng.uniform(0.5, 1.0)
        while not self.stop.wait(rng.uniform(2, 6)):
            now = time.monotonic()
            try:
                if now >= next_restart:
                    self.restart()
                    next_restart = now + a.restart_every * rng.uniform(0.7, 1.3)
                if now >= next_rotate:
                    self.rotate()
                    next_rotate = now + a.rotate_every * rng.uniform(0.7, 1.3)
                self.random_faults()
            except (OSError, harness.HTTPError, RuntimeError) as e:
                self.fail(f"the fault changer could not drive the emulator: {e}")
                return
        self.emu.clear_faults()

    # ---- the workers ----

    def worker(self, name, step):
        rng = random.Random(f"{self.args.seed}-{name}")
        while not self.stop.is_set():
            try:
                step(rng)
            except Exception as e:  # a bug of the driver, not of the mount
                self.fail(f"{name}: the driver itself failed: {type(e).__name__}: {e}")
                time.sleep(1)

    def path(self, *parts):
        return self.fs(*parts)

    def pick_big(self, rng):
        """A large output: of the current server four times in five, else of
        any server (whose thread the mount may still have cached)."""
        with self.lock:
            if not self.big:
                return None, None
            ids = list(self.big)
            tid = rng.choice(ids[-3:] if rng.random() < 0.8 else ids)
            return tid, self.big[tid]

    def read_step(self, rng):
        """Random reads of one large output, each compared with its bytes."""
        tid, data = self.pick_big(rng)
        if tid is None:
            time.sleep(0.2)
            return
        p = self.path("threads", tid, "output.json")
        if rng.random() < 0.1:
            return self.copy_step(tid, data, p)
        op = self.begin(f"random reads of {p}")
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError as e:
            self.error("open", e.errno)
            self.end(op)
            return
        try:
            size = os.fstat(fd).st_size
            if rng.random() < 0.5:
                # out of the page cache, so that the reads reach the daemon
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if size != len(data):
                self.fail(f"{p}: st_size {size}, the output is {len(data)} bytes")
                return
            for _ in range(rng.randint(4, 30)):
                if self.stop.is_set():
                    break
                off = rng.randrange(len(data) + 64)
                n = rng.choice([1, 17, 4096, 65536, 300000, MiB])
                try:
                    got = os.pread(fd, n, off)
                except OSError as e:
                    self.error("pread", e.errno)
                    continue
                want = data[off:off + n]
                if len(got) < len(want) and got == want[:len(got)]:
                    # the kernel returns the bytes before a failed part of
                    # a read; the rest must then fail, never end early
                    try:
                        more = os.pread(fd, len(want) - len(got), off + len(got))
                    except OSError as e:
                        self.error("pread after a short read", e.errno)
                        self.verified(len(got))
                        continue
                    if not more:
                        self.fail(f"{p}: pread({n}, {off}) ends at {off + len(got)}, "
                                  f"before the end of the output ({len(data)} bytes)")
                        return
                    got += more
                if got != want:
                    at = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y),
                              min(len(got), len(want)))
                    self.fail(f"{p}: pread({n}, {off}) gave {len(got)} bytes, wanted "
                              f"{len(want)}; first difference at {off + at}")
                    return
                self.verified(len(got))
                self.count("pread")
        finally:
            os.close(fd)
            self.end(op)

    def copy_step(self, tid, data, p):
        dst = os.path.join(self.tmp, f"copy-{threading.get_ident()}")
        op = self.begin(f"cp {p}")
        try:
            res = harness.run_cmd(["cp", p, dst], timeout=HANG_S)
        except subprocess.TimeoutExpired:
            self.fail(f"cp {p} did not end within {HANG_S} s")
            return
        finally:
            self.end(op)
        if res.returncode != 0:
            self.error("cp", f"exit {res.returncode}")
            return
        with open(dst, "rb") as f:
            got = f.read()
        os.unlink(dst)
        if got != data:
            self.fail(f"cp {p}: {len(got)} bytes that are not the output's {len(data)}")
            return
        self.verified(len(got))
        self.count("cp")

    def sweep_step(self, rng):
        kind = rng.choice(["ls", "find", "grep", "walk"])
        op = self.begin(f"sweep {kind}")
        try:
            if kind == "walk":
                return self.walk(rng)
            if kind == "ls":
                cmd = ["ls", "-l", self.path("threads")]
            elif kind == "find":
                cmd = ["find", self.path(), "-maxdepth", "4", "-name", "status"]
            else:
                with self.lock:
                    ids = rng.sample(self.small, min(4, len(self.small)))
                cmd = ["grep", "-rl", "thr_", *[self.path("threads", t) for t in ids]]
            try:
                res = harness.run_cmd(cmd, timeout=HANG_S)
            except subprocess.TimeoutExpired:
                self.fail(f"{' '.join(cmd)} did not end within {HANG_S} s")
                return
            if res.returncode != 0 and not (kind == "grep" and res.returncode == 1):
                self.error(kind, f"exit {res.returncode}")
                return
            if kind == "ls":
                names = [ln.split()[-1] for ln in res.stdout.decode().splitlines()[1:]]
                twice = [n for n, c in collections.Counter(names).items() if c > 1]
                if twice:
                    self.fail(f"ls -l threads/ lists {twice[:5]} more than once")
            self.count(kind)
        finally:
            self.end(op)

    def walk(self, rng):
        with self.lock:
            tid = rng.choice(self.small) if self.small else None
        if tid is None:
            return
        seen = 0
        try:
            for top, dirs, files in os.walk(self.path("threads", tid)):
                for name in files:
                    try:
                        with open(os.path.join(top, name), "rb") as f:
                            f.read(MiB)
                    except OSError as e:
                        self.error("walk read", e.errno)
                    seen += 1
                if len(set(dirs + files)) != len(dirs + files):
                    self.fail(f"{top} lists a name twice: {sorted(dirs + files)}")
        except OSError as e:
            self.error("walk", e.errno)
            return
        self.count("walk")

    def new_thread(self, script, doc):
        """Writes doc into scripts/<script>/new and reads the id back: the
        id, or None (the error is counted)."""
        p = self.path("scripts", script, "new")
        try:
            fd = os.open(p, os.O_RDWR)
        except OSError as e:
            self.error(f"open {script}/new", e.errno)
            return None
        try:
            os.write(fd, json.dumps(doc).encode())
            os.close(os.dup(fd))  # the flush that creates it
            tid = os.pread(fd, 4096, 0).decode().strip()
        except OSError as e:
            self.error(f"create {script}", e.errno)
            return None
        finally:
            try:
                os.close(fd)  # reports the flush's error once more, if any
            except OSError:
                pass
        if not tid.startswith("thr_"):
            self.fail(f"{p} read back {tid!r}, not a thread id")
            return None
        return tid

    def create_step(self, rng):
        with self.lock:
            n, gen = self.ops["create"] + 1000 * rng.randrange(1 << 20), self.gen
        op = self.begin("create through new")
        try:
            tid = self.new_thread("echo", {"soak": n})
        finally:
            self.end(op)
        if tid is not None:
            with self.lock:
                self.created.append((gen, tid, n))
            self.count("create")
        time.sleep(rng.uniform(0.2, 1.0))

    def ask_step(self, rng):
        with self.lock:
            gen = self.gen
        op = self.begin("approval through new and resume")
        try:
            tid = self.new_thread("approval", {"title": "soak"})
            if tid is None:
                time.sleep(0.5)
                return
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    with open(self.path("threads", tid, "status"), "rb") as f:
                        if f.read() == b"paused\n":
                            break
                except OSError as e:
                    self.error("status", e.errno)
                time.sleep(0.2)
            else:
                return
            try:
                harness.write_file(self.path("threads", tid, "resume"), b'"approve"')
            except OSError as e:
                self.error("resume", e.errno)
                return
            with self.lock:
                self.answered.append((gen, tid))
            self.count("resume")
        finally:
            self.end(op)

    def follow_step(self, rng):
        """tail -f of a running thread's events for a while; every whole
        line it printed is JSON."""
        with self.lock:
            tid = self.running[0] if self.running else None
        if tid is None:
            time.sleep(0.5)
            return
        p = self.path("threads", tid, "events")
        out = tempfile.TemporaryFile()
        proc = subprocess.Popen(["tail", "-n", "+1", "-f", p], stdout=out,
                                stderr=subprocess.PIPE, start_new_session=True)
        self.stop.wait(rng.uniform(5, 20))
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            self.fail(f"tail -f {p} did not end within {HANG_S} s of SIGTERM")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        out.seek(0)
        data = out.read()
        out.close()
        harness.SECRETS.scan("tail -f events (stderr)", err)
        lines = data.split(b"\n")[:-1]
        for ln in lines:
            try:
                json.loads(ln)
            except ValueError:
                self.fail(f"tail -f {p} printed a line that is not JSON: {ln[:200]!r}")
                return
        if err.strip():
            self.error("tail -f", "an error")
        self.count("tail -f")
        self.count("events lines", len(lines))

    def cli(self, *args):
        """One CLI run with the token file; CLIResult, or None on a hang."""
        try:
            return harness.scriptum(self.emu, "--token-file", self.token_file, *args,
                                    token=None, timeout=CLI_HANG_S)
        except AssertionError as e:
            self.fail(str(e)[:2000])
            return None

    def cli_step(self, rng):
        kind = rng.choice(["list", "get", "save", "save"])
        op = self.begin(f"scriptum {kind}")
        try:
            if kind == "list":
                r = self.cli("-o", "json", "thread", "list", "--all")
                if r is not None and r.rc == 0:
                    ids = [t.get("threadId") for t in json.loads(r.out)]
                    twice = [i for i, c in collections.Counter(ids).items() if c > 1]
                    if twice:
                        self.fail(f"scriptum thread list --all shows {twice[:5]} twice")
            elif kind == "get":
                with self.lock:
                    tid = rng.choice(self.small) if self.small else None
                if tid is None:
                    return
                r = self.cli("-o", "json", "thread", "get", tid)
                if r is not None and r.rc == 0 and json.loads(r.out).get("threadId") != tid:
                    self.fail(f"scriptum thread get {tid} showed another thread")
            else:
                tid, data = self.pick_big(rng)
                if tid is None:
                    return
                d = os.path.join(self.tmp, f"save-{op}")
                r = self.cli("thread", "result", tid, "--save", d)
                if r is not None and r.rc == 0:
                    with open(os.path.join(d, "output.json"), "rb") as f:
                        got = f.read()
                    if got != data:
                        self.fail(f"scriptum thread result {tid} --save wrote {len(got)} "
                                  f"bytes that are not the output's {len(data)}")
                    else:
                        self.verified(len(got))
                shutil.rmtree(d, ignore_errors=True)
            if r is not None:
                if r.rc == 0:
                    self.count(f"cli {kind}")
                else:
                    self.error(f"cli {kind}", f"exit {r.rc}")
        finally:
            self.end(op)

    # ---- watching ----

    def sample(self, t0):
        pid = self.fs.daemon_pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            nthreads = len(os.listdir(f"/proc/{pid}/task"))
        except (OSError, StopIteration):
            self.fail("the daemon is gone")
            return False
        heap = self.heap_kib()
        self.samples.append((time.monotonic() - t0, rss, fds, nthreads, heap))
        print(f"soak: {self.samples[-1][0]:6.0f} s  rss {rss / 1024:7.1f} MiB  "
              f"heap {heap / 1024:6.1f} MiB  fds {fds:3d}  threads {nthreads:3d}  "
              f"ops {sum(self.ops.values()):6d}  verified "
              f"{self.bytes_verified / MiB:8.1f} MiB  errors {sum(self.errors.values())}",
              flush=True)
        return True

    def heap_kib(self):
        """The daemon's heap in use (.scriptumfs/stats, heap_bytes), in KiB;
        the last one known when the file cannot be read now (under faults
        it can fail like any other)."""
        try:
            with open(self.path(".scriptumfs", "stats")) as f:
                for ln in f:
                    if ln.startswith("heap_bytes "):
                        return int(ln.split()[1]) // 1024
        except (OSError, ValueError):
            pass
        return self.samples[-1][4] if self.samples else 0

    def hangs(self):
        now = time.monotonic()
        with self.lock:
            return [(w, now - t) for w, t in self.inflight.values() if now - t > HANG_S]


def slope(points):
    """The least-squares slope of (x, y) points; 0 for fewer than 3."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def growth(soak, a):
    """Failures for an RSS or descriptor count that grows over the second
    half: the fitted slope times the half's length, past a tolerance."""
    half = [s for s in soak.samples if s[0] >= soak.samples[-1][0] / 2]
    if len(half) < 3:
        return []
    span = half[-1][0] - half[0][0]
    out = []
    rss = slope([(t, r) for t, r, _, _, _ in half]) * span / 1024
    heap = slope([(t, h) for t, _, _, _, h in half]) * span / 1024
    fds = slope([(t, f) for t, _, f, _, _ in half]) * span
    if heap > a.heap_slack_mib:
        out.append(f"the heap in use grew {heap:.1f} MiB over the second half ({span:.0f} s; "
                   f"slack {a.heap_slack_mib} MiB)")
    if rss > a.rss_slack_mib:
        out.append(f"RSS grew {rss:.1f} MiB over the second half ({span:.0f} s; "
                   f"slack {a.rss_slack_mib} MiB)")
    if fds > a.fd_slack:
        out.append(f"open descriptors grew by {fds:.1f} over the second half ({span:.0f} s; "
                   f"slack {a.fd_slack})")
    return out


def final_check(soak):
    """Once the faults are cleared: what was made and answered through the
    mount is what the API says."""
    emu, gen = soak.emu, soak.gen
    for g, tid, n in soak.created:
        if g != gen:
            continue
        try:
            t = harness.get_canonical(emu, f"/threads/{tid}")
        except harness.HTTPError as e:
            soak.fail(f"{tid}, created through new, is not in the API: {e}")
            continue
        if json.loads(t.get("inputJson") or "null") != {"soak": n}:
            soak.fail(f"{tid}, created through new with soak {n}, has input "
                      f"{t.get('inputJson')!r}")
    made = collections.Counter()
    for t in harness.list_all_canonical(emu):
        try:
            doc = json.loads(t.get("inputJson") or "null")
        except ValueError:
            continue
        if isinstance(doc, dict) and "soak" in doc:
            made[doc["soak"]] += 1
    twice = [n for n, c in made.items() if c > 1]
    if twice:
        soak.fail(f"{len(twice)} create(s) through new made more than one thread")
    for g, tid in soak.answered:
        if g != gen:
            continue
        try:
            t = harness.wait_for_status(emu, tid, {"completed", "failed", "cancelled"},
                                        timeout=30)
        except AssertionError as e:
            soak.fail(f"{tid} was answered through resume but: {e}")
    # the mount agrees with the API about the current server's threads
    ids = set(harness.thread_ids_of(emu))
    listed = set(os.listdir(soak.path("threads")))
    if not ids <= listed:
        soak.fail(f"threads/ lacks {sorted(ids - listed)[:5]} once the faults are cleared")
    for tid, data in list(soak.big.items())[-3:]:
        if harness.file_sha256(soak.path("threads", tid, "output.json")) != \
                (harness.hashlib.sha256(data).hexdigest(), len(data)):
            soak.fail(f"threads/{tid}/output.json is not the output once the faults "
                      "are cleared")
    for name in ("errors", "stats", "config"):
        try:
            data = soak.fs.read(".scriptumfs", name)
        except OSError as e:
            soak.fail(f".scriptumfs/{name}: {e}")
            continue
        harness.SECRETS.scan(f".scriptumfs/{name}", data)
        soak.meta[name] = data.decode(errors="replace")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--sample-every", type=float, default=None,
                    help="seconds between samples of RSS and descriptors "
                         "(default 60, or a twelfth of a shorter run)")
    ap.add_argument("--restart-every", type=float, default=None,
                    help="seconds between restarts of the server (default 90, or "
                         "half of a shorter run)")
    ap.add_argument("--rotate-every", type=float, default=40)
    ap.add_argument("--rss-slack-mib", type=float, default=24,
                    help="RSS growth over the second half that is not a failure")
    ap.add_argument("--heap-slack-mib", type=float, default=12,
                    help="growth of the heap in use over the second half that is not a "
                         "failure")
    ap.add_argument("--fd-slack", type=float, default=6)
    a = ap.parse_args(argv)
    every = a.sample_every or min(60.0, max(2.0, a.seconds / 12))
    a.restart_every = a.restart_every or min(90.0, a.seconds / 2)
    print(f"soak: {a.seconds:.0f} s, seed {a.seed}, build {harness.BUILD}", flush=True)
    soak = Soak(a)
    # ASan's quarantine holds freed memory up to its size: keep it small so
    # that RSS says what the daemon holds. libfuse keeps every worker thread
    # it started (up to max_threads, 64, each with a pipe pair for splice):
    # the descriptors would climb to the run's highest concurrency and stay,
    # which a slope cannot tell from a leak; with max_idle_threads the
    # workers past 8 end when idle, and what stays is what the daemon holds.
    asan = harness.SANITIZER_ENV["ASAN_OPTIONS"] + ":quarantine_size_mb=16"
    soak.fs = harness.Mount(soak.emu, token_file=soak.token_file, running_ttl="1s",
                            options=("cache_size=48MiB", "mem_cache=4MiB", "inode_limit=500",
                                     "min_rate=16KiB", "min_rate_window=5s", "timeout=20s",
                                     "max_idle_threads=8"),
                            env={"ASAN_OPTIONS": asan})
    workers = [("reader 1", soak.read_step), ("reader 2", soak.read_step),
               ("sweeper", soak.sweep_step), ("creator", soak.create_step),
               ("asker", soak.ask_step), ("follower", soak.follow_step),
               ("cli", soak.cli_step)]
    threads = [threading.Thread(target=soak.worker, args=w, daemon=True) for w in workers]
    changer = threading.Thread(target=soak.changer, daemon=True)
    t0 = time.monotonic()
    for t in threads + [changer]:
        t.start()
    deadline = t0 + a.seconds
    alive = soak.sample(t0)
    next_sample = t0 + every
    while alive and time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        for what, age in soak.hangs():
            soak.fail(f"{what}: still running after {age:.0f} s")
            alive = False
        if time.monotonic() >= next_sample:
            alive = soak.sample(t0) and alive
            next_sample += every
    soak.stop.set()
    changer.join(60)
    end = time.monotonic() + HANG_S
    for t in threads:
        t.join(max(0, end - time.monotonic()))
    for what, age in soak.hangs():
        soak.fail(f"{what}: still running {age:.0f} s after it began, at the end")
    if alive and soak.fs.alive():
        soak.sample(t0)
        try:
            final_check(soak)
        except (OSError, harness.HTTPError, AssertionError) as e:
            soak.fail(f"the final check: {e}")
        for f in growth(soak, a):
            soak.fail(f)
    try:
        soak.fs.stop()
    except AssertionError as e:
        soak.fail(f"the mount: {str(e)[:3000]}")
    try:
        soak.emu.stop()
    except AssertionError as e:
        soak.fail(f"the emulator: {str(e)[:3000]}")
    for hit in harness.SECRETS.hits:
        soak.fail(f"a secret in {hit['stream']}: {hit['excerpt']}")
    shutil.rmtree(soak.tmp, ignore_errors=True)
    report(soak, time.monotonic() - t0)
    return 1 if soak.failures else 0


def report(soak, took):
    print(f"\nsoak: {took:.0f} s, seed {soak.args.seed}: {sum(soak.ops.values())} operations, "
          f"{soak.bytes_verified / MiB:.1f} MiB verified, {soak.restarts} restart(s), "
          f"{soak.rotations} token rotation(s)")
    print("  operations: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.ops.items())))
    print("  faults: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.faults_set.items())))
    print("  errors: " + (", ".join(f"{k} {v}" for k, v in sorted(soak.errors.items()))
                          or "none"))
    print("  samples (s, RSS MiB, heap MiB, fds, threads): " +
          ", ".join(f"{t:.0f} {r / 1024:.1f} {h / 1024:.1f} {f} {n}"
                    for t, r, f, n, h in soak.samples))
    print("  " + harness.SECRETS.summary())
    stats = dict(ln.split(None, 1) for ln in soak.meta.get("stats", "").splitlines()
                 if " " in ln)
    if stats:
        print("  the daemon: " + ", ".join(f"{k} {stats[k]}" for k in (
            "fuse_requests", "http_calls", "http_retries", "http_failures",
            "payload_downloads", "payload_downloads_failed", "payload_cache_evictions")
            if k in stats))
    if soak.failures:
        tail = soak.meta.get("errors", "").splitlines()[-20:]
        if tail:
            print("  the last of .scriptumfs/errors:\n    " + "\n    ".join(tail))
        print(f"soak: {len(soak.failures)} FAILURE(S):")
        for f in soak.failures[:50]:
            print("  " + f)
    else:
        print("soak: no failure")


if __name__ == "__main__":
    sys.exit(main())
