"""make bench: measure, in one run, each figure against its baseline.

Emulator figures (the emulator must never be what limits later benchmarks):
  * StreamThreadResult of a 1 GiB output to curl, against curl of the same
    bytes raw from /_emulator/threads/{id}/output;
  * ListThreads pages per second over 100,000 threads.
CLI figures:
  * `scriptum thread result --save` of a 1 GiB output, against curl writing
    the same result stream to a file in the same directory; and the CLI's
    peak RSS while it does.
Timings are medians of a few runs; nothing here is a pass/fail assertion.
"""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import API, BUILD, Emulator  # noqa: E402

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


def row(name, value, unit, baseline=None, target=None):
    line = f"  {name:<58} {value:>10.2f} {unit:<8}"
    if baseline is not None:
        line += f" baseline {baseline:>10.2f} {unit:<8} ratio {value / baseline:5.2f}"
    if target is not None:
        line += f"  target {target}"
    print(line, flush=True)


def bench_stream(emu):
    tid = emu.seed("bigreport", 1, outputBytes=GiB)[0]
    stream_s, wire_bytes = median_time(f"{emu.url}{API}/threads/{tid}/result/stream")
    raw_s, raw_bytes = median_time(f"{emu.url}/_emulator/threads/{tid}/output")
    assert raw_bytes == GiB, raw_bytes
    print("StreamThreadResult, 1 GiB output, to curl (median of %d)" % RUNS)
    row("output throughput (decoded bytes)", GiB / stream_s / 1e9, "GB/s",
        GiB / raw_s / 1e9, "> 1 GB/s")
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
        GiB / curl_t / 1e9, ">= 0.8x curl")
    row("peak RSS of scriptum", max(rss) / 1024, "MiB", None, "<= 32 MiB")


def main():
    print(f"scriptumfs benchmarks ({os.uname().nodename}, {os.cpu_count()} cores)\n")
    emu = Emulator()
    try:
        bench_stream(emu)
        print()
        bench_cli_save(emu)
        print()
        bench_list(emu)
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
