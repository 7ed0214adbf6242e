"""make bench: measure, in one run, each figure against its baseline.

Emulator figures (the emulator must never be what limits later benchmarks):
  * StreamThreadResult of a 1 GiB output to curl, against curl of the same
    bytes raw from /_emulator/threads/{id}/output;
  * ListThreads pages per second over 100,000 threads.
CLI figures:
  * `scriptum thread result --save` of a 1 GiB output, against curl writing
    the same result stream to a file in the same directory; and the CLI's
    peak RSS while it does.
Filesystem figures (SPEC section 8), each against its baseline in this run:
  * cold `cat output.json` of a 1 GiB output vs curl of its result stream;
    the warm re-read vs `cat` of the same bytes from a local file;
    `head -c1` cold vs the full cold read; the daemon's peak RSS (VmHWM);
  * `ls -l threads/` of 10,000 threads vs paging ListThreads, and the
    requests the emulator saw during the ls;
  * `grep -rl` over 1,000 outputs, cold vs one curl fetching them over one
    connection, and warm (no request at all) vs grep over a local copy;
  * `echo '{}' > scripts/echo/new` vs curl POST CreateThread.
Timings are medians of a few runs; nothing here is a pass/fail assertion: a
row with a target says "ok" or "MISSED" and a miss is reported, not hidden.
"""

import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import API, BUILD, Emulator, settled_log  # noqa: E402

GiB = 1 << 30
RUNS = 3


def curl_time(url):
    """Seconds and bytes for curl to read url to /dev/null."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def median_time(url):
    runs = [curl_time(url) for _ in range(RUNS)]
    return statistics.median(t for t, _ in runs), runs[0][1]


def row(name, value, unit, baseline=None, target=None, ok=None):
    """One figure; with a baseline, the ratio value/baseline. ok: whether the
    target is met (None when it cannot be evaluated), printed as ok/MISSED."""
    def num(v):
        return f"{v:>10d}" if isinstance(v, int) else f"{v:>10.2f}"
    line = f"  {name:<58} {num(value)} {unit:<8}"
    if baseline is not None:
        ratio = f"{value / baseline:5.2f}" if baseline else "  inf"
        line += f" baseline {num(baseline)} {unit:<8} ratio {ratio}"
    if target is not None:
        line += f"  target {target}"
        if ok is not None:
            line += "  ok" if ok else "  MISSED"
    print(line, flush=True)


def bench_stream(emu):
    tid = emu.seed("bigreport", 1, outputBytes=GiB)[0]
    stream_s, wire_bytes = median_time(f"{emu.url}{API}/threads/{tid}/result/stream")
    raw_s, raw_bytes = median_time(f"{emu.url}/_emulator/threads/{tid}/output")
    assert raw_bytes == GiB, raw_bytes
    print("StreamThreadResult, 1 GiB output, to curl (median of %d)" % RUNS)
    row("output throughput (decoded bytes)", GiB / stream_s / 1e9, "GB/s",
        GiB / raw_s / 1e9, "> 1 GB/s", GiB / stream_s > 1e9)
    row("wire throughput (JSON + base64 bytes)", wire_bytes / stream_s / 1e9, "GB/s")


def bench_list(emu):
    t0 = time.monotonic()
    for _ in range(10):
        emu.seed("echo", 10000)
    seed_s = time.monotonic() - t0
    print("ListThreads over 100,000 threads")
    row("seeding 100,000 threads", seed_s, "s")
    for size in (1000, 50):
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=60)
        pages, token, threads = 0, None, 0
        t0 = time.monotonic()
        limit = 100 if size == 1000 else 400
        while pages < limit:
            path = f"{API}/threads?pageSize={size}" + (f"&pageToken={token}" if token else "")
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:200]
            doc = json.loads(body)
            threads += len(doc["threads"])
            pages += 1
            token = doc.get("nextPageToken")
            if not token:
                break
        secs = time.monotonic() - t0
        conn.close()
        row(f"pages/s at pageSize={size} ({pages} pages, {threads} threads)",
            pages / secs, "pages/s")
        row(f"threads/s at pageSize={size}", threads / secs, "thr/s")


def timed_run(cmd):
    """Wall seconds and peak RSS (KiB) of one command, which must succeed."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err[-500:]}")
    return secs, usage.ru_maxrss


def bench_cli_save(emu):
    tid = emu.seed("bigreport", 1, outputBytes=GiB)[0]
    scriptum = os.path.join(BUILD, "scriptum")
    work = tempfile.mkdtemp(prefix="scriptum-bench-")
    curl_s, cli_s, rss = [], [], []
    try:
        for _ in range(RUNS):
            # curl first, then the CLI, so neither always has the warmer cache
            secs, _ = timed_run(["curl", "-sS", "-o", os.path.join(work, "stream"),
                                 f"{emu.url}{API}/threads/{tid}/result/stream"])
            curl_s.append(secs)
            os.unlink(os.path.join(work, "stream"))
            secs, kib = timed_run([scriptum, "--api-endpoint", emu.url, "thread", "result",
                                   tid, "--save", os.path.join(work, "saved")])
            size = os.path.getsize(os.path.join(work, "saved", "output.json"))
            assert size == GiB, size
            shutil.rmtree(os.path.join(work, "saved"))
            cli_s.append(secs)
            rss.append(kib)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    curl_t, cli_t = statistics.median(curl_s), statistics.median(cli_s)
    print("scriptum thread result --save, 1 GiB output (median of %d)" % RUNS)
    row("output throughput vs curl writing the stream", GiB / cli_t / 1e9, "GB/s",
        GiB / curl_t / 1e9, ">= 0.8x curl", curl_t / cli_t >= 0.8)
    row("peak RSS of scriptum", max(rss) / 1024, "MiB", None, "<= 32 MiB",
        max(rss) <= 32 * 1024)


# ---- filesystem figures (SPEC section 8) ----

# the variables the CLI and the mount read; the daemon gets none of them
MOUNT_ENV_DROP = ("SCRIPTUM_CONFIG", "SCRIPTUM_API_ENDPOINT", "SCRIPTUM_TOKEN", "DODIL_TOKEN",
                  "SCRIPTUM_ORG_ID", "SCRIPTUM_ORG_NAME", "SCRIPTUM_PROFILE", "XDG_CONFIG_HOME",
                  "XDG_CACHE_HOME")
LIVE = []  # every FsMount not yet stopped, unmounted by main() even on error


def is_fuse_mount(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].replace("\\040", " ") == path:
                return True
    return False


class FsMount:
    """One scriptumfs daemon in the foreground on a fresh mount point, with a
    fresh cache directory (so every new FsMount is cold: new inodes, so no
    kernel page cache, and no payload on disk) and an empty HOME (no real
    configuration is read)."""

    def __init__(self, emu, list_limit=None, timeout=15):
        self.tmp = tempfile.mkdtemp(prefix="scriptumfs-bench-")
        os.chmod(self.tmp, 0o755)
        self.path = os.path.join(self.tmp, "mnt")
        self.cache_dir = os.path.join(self.tmp, "cache")
        home = os.path.join(self.tmp, "home")
        os.makedirs(self.path)
        os.makedirs(home)
        opts = [f"endpoint={emu.url}", f"cache_dir={self.cache_dir}"]
        if list_limit is not None:
            opts.append(f"list_limit={list_limit}")
        env = {k: v for k, v in os.environ.items() if k not in MOUNT_ENV_DROP}
        env["HOME"] = home
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "scriptumfs"), "-f", "-o", ",".join(opts), self.path],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        self.stopped = False
        LIVE.append(self)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.log_text()
                self.stop(check=False)
                raise RuntimeError(f"scriptumfs did not mount {self.path}: {err[-2000:]}")
            time.sleep(0.02)

    def __call__(self, *parts):
        return os.path.join(self.path, *parts)

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def peak_rss_kib(self):
        """VmHWM of the daemon: its peak resident set so far."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc/%d/status" % self.proc.pid)

    def stop(self, check=True):
        """Unmounts (fusermount3 -u, tried for a while, then umount -l),
        waits for the daemon to exit, and removes the directory. With
        check, raises if the daemon did not exit 0 by itself."""
        if self.stopped:
            return
        self.stopped = True
        if self in LIVE:
            LIVE.remove(self)
        deadline = time.monotonic() + 10
        while is_fuse_mount(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                subprocess.run(["umount", "-l", self.path], capture_output=True)
                break
            time.sleep(0.2)
        problem = None
        try:
            rc = self.proc.wait(timeout=60)
            if rc != 0:
                problem = f"scriptumfs exited with {rc}"
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            problem = "scriptumfs did not exit within 60 s of the unmount"
        err = self.log_text()
        self.log.close()
        if not is_fuse_mount(self.path):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if check and problem:
            raise RuntimeError(f"{problem}: {err[-2000:]}")


def stop_all_mounts():
    for m in list(LIVE):
        try:
            m.stop(check=False)
        except Exception as e:  # keep going: every mount must be released
            print(f"  (could not stop the mount at {m.path}: {e})", file=sys.stderr)


def run_timed(cmd, ok_codes=(0,), stdin=None, **kw):
    """Wall seconds of one command whose output goes to /dev/null."""
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, **kw)
    secs = time.monotonic() - t0
    if r.returncode not in ok_codes:
        raise RuntimeError(f"{cmd if isinstance(cmd, str) else cmd[0]} failed "
                           f"({r.returncode}): {r.stderr.decode(errors='replace')[-500:]}")
    return secs


def calls_text(log):
    by = log.get("byCall", {})
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none"


def bench_fs_big():
    """Rows 1-4: the 1 GiB output, read through the mount."""
    emu = Emulator(seed=None)
    work = tempfile.mkdtemp(prefix="scriptumfs-bench-local-")
    try:
        tid = emu.seed("bigreport", 1, outputBytes=GiB)[0]
        stream_url = f"{emu.url}{API}/threads/{tid}/result/stream"
        local = os.path.join(work, "output.json")
        subprocess.run(["curl", "-sS", "-f", "-o", local,
                        f"{emu.url}/_emulator/threads/{tid}/output"], check=True)
        assert os.path.getsize(local) == GiB, os.path.getsize(local)

        curl_s, cold_s, warm_s, local_s, rss, head_s = [], [], [], [], [], []
        warm_requests = []
        for _ in range(RUNS):
            # no writeback left from the local copy or the last run's cache
            # to compete with the cold cat, which writes its cache file
            os.sync()
            # curl first, then the cold cat on a fresh mount and cache dir
            secs, wire_bytes = curl_time(stream_url)
            curl_s.append(secs)
            m = FsMount(emu)
            try:
                path = m("threads", tid, "output.json")
                cold_s.append(run_timed(["cat", path]))
                rss.append(m.peak_rss_kib())
                size = os.stat(path).st_size
                assert size == GiB, f"output.json has st_size {size}"
                settled_log(emu, quiet=0.2)
                emu.reset_requests()
                warm_s.append(run_timed(["cat", path]))
                warm_requests.append(settled_log(emu, quiet=0.2)["total"])
            finally:
                m.stop()
            local_s.append(run_timed(["cat", local]))
        for _ in range(RUNS):
            m = FsMount(emu)
            try:
                head_s.append(run_timed(["head", "-c1", m("threads", tid, "output.json")]))
            finally:
                m.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        stop_all_mounts()
        emu.stop()

    curl_t, cold_t = statistics.median(curl_s), statistics.median(cold_s)
    warm_t, local_t = statistics.median(warm_s), statistics.median(local_s)
    head_t = statistics.median(head_s)
    print("scriptumfs: output.json of a 1 GiB output (median of %d, fresh mount and "
          "cache dir per cold run)" % RUNS)
    row("cold cat vs curl of the result stream, output bytes/s", GiB / cold_t / 1e9,
        "GB/s", GiB / curl_t / 1e9, ">= 0.8x curl", curl_t / cold_t >= 0.8)
    print("    (each run, curl / cold cat: %s)" % ", ".join(
        "%.2f / %.2f s" % (c, t) for c, t in zip(curl_s, cold_s)))
    print(f"    (both as 1 GiB of output over the time taken; curl -o /dev/null moved "
          f"{wire_bytes / GiB:.2f}x that on the wire, JSON + base64)")
    row("warm re-read (cat) vs cat of a local copy", GiB / warm_t / 1e9, "GB/s",
        GiB / local_t / 1e9, ">= 0.5x", local_t / warm_t >= 0.5)
    row("  requests during the warm re-read (max of runs)", max(warm_requests), "req")
    row("head -c1, cold: time to first byte vs full cold cat", head_t * 1e3, "ms",
        cold_t * 1e3, "<= 0.05x", head_t <= 0.05 * cold_t)
    row("daemon peak RSS (VmHWM) during the cold cat, max of runs", max(rss) / 1024, "MiB",
        None, "<= 64 MiB", max(rss) <= 64 * 1024)


def list_pages(emu, page_size=1000):
    """Pages through ListThreads with one http.client connection, parsing
    each page for its nextPageToken; returns (seconds, pages, threads)."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=60)
    pages, threads, token = 0, 0, None
    t0 = time.monotonic()
    try:
        while True:
            path = f"{API}/threads?pageSize={page_size}" + (f"&pageToken={token}" if token else "")
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"ListThreads: HTTP {resp.status}: {body[:200]!r}")
            doc = json.loads(body)
            pages += 1
            threads += len(doc.get("threads", []))
            token = doc.get("nextPageToken")
            if not token:
                break
    finally:
        conn.close()
    return time.monotonic() - t0, pages, threads


def curl_pages(emu, page_size=1000):
    """SPEC §8's baseline: curl paging ListThreads, one curl a page, each
    page's nextPageToken read from its body; returns (seconds, pages,
    threads)."""
    pages, threads, token = 0, 0, None
    t0 = time.monotonic()
    while True:
        url = f"{emu.url}{API}/threads?pageSize={page_size}" + (f"&pageToken={token}" if token else "")
        body = subprocess.run(["curl", "-sS", "-f", url], check=True, capture_output=True).stdout
        doc = json.loads(body)
        pages += 1
        threads += len(doc.get("threads", []))
        token = doc.get("nextPageToken")
        if not token:
            break
    return time.monotonic() - t0, pages, threads


def bench_fs_ls():
    """Row 5: ls -l threads/ of 10,000 threads."""
    n = 10000
    emu = Emulator(seed=None)
    try:
        emu.seed("echo", n)
        ls_s, base_s, loop_s, reqs = [], [], [], []
        for _ in range(RUNS):
            secs, pages, threads = curl_pages(emu)
            assert threads == n, threads
            base_s.append(secs)
            secs, pages, threads = list_pages(emu)
            assert threads == n, threads
            loop_s.append(secs)
            m = FsMount(emu, list_limit=n)
            try:
                settled_log(emu, quiet=0.2)
                emu.reset_requests()
                ls_s.append(run_timed(["ls", "-l", m("threads")]))
                reqs.append(settled_log(emu))
                listed = len(os.listdir(m("threads")))
                assert listed == n, f"threads/ lists {listed}"
            finally:
                m.stop()
    finally:
        stop_all_mounts()
        emu.stop()
    ls_t, base_t = statistics.median(ls_s), statistics.median(base_s)
    loop_t = statistics.median(loop_s)
    worst = max(reqs, key=lambda log: log["total"])
    print("scriptumfs: ls -l threads/ of 10,000 threads, cold (median of %d)" % RUNS)
    row("ls -l vs curl paging ListThreads", ls_t, "s", base_t, "<= 1.5x", ls_t <= 1.5 * base_t)
    print(f"    (baseline as SPEC §8 says: one curl a page, pageSize=1000, {pages} pages, "
          f"each body parsed for nextPageToken)")
    row("ls -l vs a python http.client loop paging ListThreads", ls_t, "s", loop_t)
    print("    (stricter, for reference: one keep-alive connection, no process per page)")
    row("requests the emulator saw during the ls (max of runs)", worst["total"], "req",
        None, f"<= {n // 1000} (one per 1,000 threads)", worst["total"] <= n // 1000)
    print(f"    ({calls_text(worst)})")


def bench_fs_grep():
    """Rows 6 and 7: grep -rl over the outputs of 1,000 finished threads."""
    n = 1000
    pattern = '"items"'  # in every generated output, so grep -l lists all 1,000
    emu = Emulator(seed=None)
    work = tempfile.mkdtemp(prefix="scriptumfs-bench-grep-")
    try:
        ids = emu.seed("echo", n, outputBytes=2000)
        # the local copy: the raw output bytes, one file per thread
        local_paths = []
        for tid in ids:
            p = os.path.join(work, "copy", tid, "output.json")
            os.makedirs(os.path.dirname(p))
            with open(p, "wb") as f:
                f.write(emu.raw_output(tid))
            local_paths.append(p)
        local_list = os.path.join(work, "local.list")
        with open(local_list, "w") as f:
            f.write("\0".join(local_paths))
        urls = [f"{emu.url}{API}/threads/{tid}/result/stream" for tid in ids]

        def grep(list_file):
            # one grep for the 1,000 paths (xargs -0 from a file made beforehand)
            return run_timed(["xargs", "-0", "-a", list_file, "grep", "-rl", pattern])

        cold_s, curl_s, warm_s, local_s, cold_reqs, warm_reqs = [], [], [], [], [], []
        for _ in range(RUNS):
            curl_s.append(run_timed(["curl", "-sS", "-f"] + urls))
            m = FsMount(emu, list_limit=n)
            try:
                mount_list = os.path.join(work, "mount.list")
                with open(mount_list, "w") as f:
                    f.write("\0".join(m("threads", tid, "output.json") for tid in ids))
                settled_log(emu, quiet=0.2)
                emu.reset_requests()
                cold_s.append(grep(mount_list))
                cold_reqs.append(settled_log(emu, quiet=0.2))
                emu.reset_requests()
                warm_s.append(grep(mount_list))
                warm_reqs.append(settled_log(emu)["total"])
                found = subprocess.run(["xargs", "-0", "-a", mount_list, "grep", "-rl",
                                        pattern], capture_output=True, check=True).stdout
                assert len(found.splitlines()) == n, len(found.splitlines())
            finally:
                m.stop()
            local_s.append(grep(local_list))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        stop_all_mounts()
        emu.stop()
    cold_t, curl_t = statistics.median(cold_s), statistics.median(curl_s)
    warm_t, local_t = statistics.median(warm_s), statistics.median(local_s)
    print("scriptumfs: grep -rl over the outputs of 1,000 finished threads "
          "(2,000 B each, median of %d)" % RUNS)
    print("    (grep -rl PATTERN over MOUNT/threads/<id>/output.json for the 1,000 ids, "
          "one grep via xargs -0)")
    row("cold grep -rl vs one curl of the 1,000 result streams", cold_t, "s", curl_t,
        "<= 4x", cold_t <= 4 * curl_t)
    print("    (baseline: curl with the 1,000 StreamThreadResult URLs on one command "
          "line, one connection reused)")
    worst = max(cold_reqs, key=lambda log: log["total"])
    row("  requests during the cold grep (max of runs)", worst["total"], "req")
    print(f"    ({calls_text(worst)})")
    row("warm grep -rl vs grep -rl over a local copy", warm_t, "s", local_t,
        "<= 5x", warm_t <= 5 * local_t)
    row("requests during the warm grep (max of runs)", max(warm_reqs), "req", None,
        "0", max(warm_reqs) == 0)


def bench_fs_new():
    """Row 8: echo '{}' > scripts/echo/new vs curl POST CreateThread."""
    n = 20
    emu = Emulator(seed=None)
    try:
        m = FsMount(emu)
        try:
            new = m("scripts", "echo", "new")
            body = json.dumps({"scriptName": "echo", "inputJson": "{}"})
            curl_cmd = ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}",
                        "-X", "POST", "-H", "Content-Type: application/json",
                        f"{emu.url}{API}/threads", "-d", body]
            fs_s, curl_s, curl_req_s, py_s = [], [], [], []
            for _ in range(n):
                # alternate, so that neither always runs on a busier emulator
                t0 = time.monotonic()
                r = subprocess.run(curl_cmd, capture_output=True, text=True, check=True)
                curl_s.append(time.monotonic() - t0)
                curl_req_s.append(float(r.stdout))
                fs_s.append(run_timed(["sh", "-c", 'echo \'{}\' > "$1"', "sh", new]))
                t0 = time.monotonic()
                with open(new, "w") as f:
                    f.write("{}\n")
                py_s.append(time.monotonic() - t0)
            made = settled_log(emu)["byCall"].get("CreateThread", 0)
            assert made == 3 * n, f"{made} CreateThread calls, not {3 * n}"
        finally:
            m.stop()
    finally:
        stop_all_mounts()
        emu.stop()
    fs_t, curl_t = statistics.median(fs_s), statistics.median(curl_s)
    py_t, curl_req_t = statistics.median(py_s), statistics.median(curl_req_s)
    print("scriptumfs: create a thread (median of %d)" % n)
    row("echo '{}' > scripts/echo/new (sh) vs curl POST CreateThread", fs_t * 1e3, "ms",
        curl_t * 1e3, "<= 1.3x", fs_t <= 1.3 * curl_t)
    print("    (both wall time of one process: sh -c \"echo '{}' > new\", curl -X POST)")
    row("  without process start: open/write/close vs curl time_total", py_t * 1e3, "ms",
        curl_req_t * 1e3)
    print("    (python open(new, 'w'), write, close; curl -w %{time_total}: its own "
          "request only)")


def bench_emulator_and_cli():
    emu = Emulator()
    try:
        bench_stream(emu)
        print()
        bench_cli_save(emu)
        print()
        bench_list(emu)
    finally:
        emu.stop()


GROUPS = [("emulator-cli", bench_emulator_and_cli), ("fs-big", bench_fs_big),
          ("fs-ls", bench_fs_ls), ("fs-grep", bench_fs_grep), ("fs-new", bench_fs_new)]


def main():
    """bench.py [GROUP...]: every group, or only those named."""
    only = set(sys.argv[1:])
    unknown = only - {name for name, _ in GROUPS}
    if unknown:
        sys.exit(f"unknown group(s) {sorted(unknown)}; groups: {[n for n, _ in GROUPS]}")
    print(f"scriptumfs benchmarks ({os.uname().nodename}, {os.cpu_count()} cores)")
    t0 = time.monotonic()
    try:
        for name, fn in GROUPS:
            if not only or name in only:
                print()
                fn()
    finally:
        stop_all_mounts()
    print(f"\n(total {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
