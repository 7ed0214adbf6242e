"""`make soak SECONDS=600`: the reference-model test (tests/refmodel.py) for
a given time, over successive seeds and wire settings. Prints how many
operations and seeds it covered, every failure with its seed and shrunk
sequence, and exits 1 if there was one.

    python3 tests/soak_model.py --seconds 600 [--first-seed 1000]
        [--wire canonical --wire 'random --wire-seed 5'] [--shrink-seconds 120] [--big]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import refmodel  # noqa: E402

# "random" draws its spellings from a wire seed of its own for each seed run
WIRES = ["canonical", "random", "wrapped", "random,unknownenums", "snake", "array", "sse",
         "random,siblings,minimal,nulls"]


def wire_for(spec, seed):
    """A wire spec with a --wire-seed of its own per run when random."""
    if spec.split(",")[0] == "random" and "--wire-seed" not in spec:
        return f"{spec} --wire-seed {seed}"
    return spec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--first-seed", type=int, default=int(os.environ.get("SEED", "1000")))
    ap.add_argument("--wire", action="append", help="a wire spec (repeatable)")
    ap.add_argument("--shrink-seconds", type=float, default=120)
    ap.add_argument("--max-failures", type=int, default=5,
                    help="stop after this many failures")
    ap.add_argument("--big", action="store_true", help="also start bigreport (64 MiB)")
    a = ap.parse_args(argv)
    wires = a.wire or ([os.environ["WIRE"]] if os.environ.get("WIRE") else WIRES)
    t0 = time.monotonic()
    deadline = t0 + a.seconds
    seeds = ops = 0
    failures = []
    seed = a.first_seed
    try:
        while time.monotonic() < deadline and len(failures) < a.max_failures:
            wire = wire_for(wires[(seed - a.first_seed) % len(wires)], seed)
            left = deadline - time.monotonic()
            done, fail = refmodel.run_seed(seed, wire,
                                           shrink_s=max(0, min(a.shrink_seconds, left)),
                                           big=a.big)
            seeds += 1
            ops += done
            status = "ok" if fail is None else f"FAILED [{fail.error.kind}]"
            print(f"soak: seed {seed} wire {wire!r}: {done} operations, {status}", flush=True)
            if fail is not None:
                print(fail.report(), flush=True)
                failures.append(fail)
            seed += 1
    finally:
        harness.unmount_leftovers()
    took = time.monotonic() - t0
    print(f"soak: {seeds} seeds ({a.first_seed}..{seed - 1}), {ops} operations over "
          f"{len(wires)} wire settings in {took:.0f} s; {len(failures)} failed"
          + (": " + ", ".join(f"{f.seed}/{f.wire} [{f.error.kind}]" for f in failures)
             if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
