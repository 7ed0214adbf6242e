#!/bin/sh
# make bench: every benchmark, each figure next to its baseline from the same run.
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/bench.py "$@"
