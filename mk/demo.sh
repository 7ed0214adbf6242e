#!/bin/sh
# make demo / make demo-stop: the emulator with demo data and scriptumfs
# mounted on ./mnt, both left running in the background, and a short tour.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/build/demo"
mnt="$top/mnt"
mkdir -p "$state"

stop() {
	stopped=no
	if grep -qs " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || umount -l "$mnt"
		echo "unmounted $mnt"
		stopped=yes
	fi
	if [ -f "$state/scriptumfs.pid" ]; then
		pid=$(cat "$state/scriptumfs.pid")
		# the daemon ends on unmount; wait a moment, then make sure
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			i=$((i + 1))
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		rm -f "$state/scriptumfs.pid"
	fi
	if [ -f "$state/emulator.pid" ]; then
		pid=$(cat "$state/emulator.pid")
		if kill "$pid" 2>/dev/null; then
			echo "stopped the demo emulator (pid $pid)"
			stopped=yes
		fi
		rm -f "$state/emulator.pid" "$state/url"
	fi
	[ $stopped = yes ] || echo "no demo is running"
}

start() {
	stop >/dev/null
	: >"$state/emulator.log"
	setsid "$top/build/scriptum-emulator" --listen 127.0.0.1:0 --seed demo \
		>"$state/emulator.log" 2>&1 </dev/null &
	echo $! >"$state/emulator.pid"
	i=0
	until grep -q '^listening on ' "$state/emulator.log"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$(cat "$state/emulator.pid")" 2>/dev/null; then
			echo "the emulator did not start:" >&2
			cat "$state/emulator.log" >&2
			exit 1
		fi
		sleep 0.05
	done
	url=$(sed -n 's/^listening on //p' "$state/emulator.log" | head -n 1)
	echo "$url" >"$state/url"

	mkdir -p "$mnt"
	: >"$state/scriptumfs.log"
	setsid "$top/build/scriptumfs" -f -o "endpoint=$url,cache_dir=$state/cache" "$mnt" \
		>"$state/scriptumfs.log" 2>&1 </dev/null &
	echo $! >"$state/scriptumfs.pid"
	i=0
	until grep -qs " $mnt fuse" /proc/mounts; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$(cat "$state/scriptumfs.pid")" 2>/dev/null; then
			echo "scriptumfs did not mount:" >&2
			cat "$state/scriptumfs.log" >&2
			stop >/dev/null
			exit 1
		fi
		sleep 0.05
	done

	cat <<EOT

The Scriptum emulator runs at $url with demo scripts and threads,
and scriptumfs has it mounted on ./mnt. Try:

  ls mnt/threads | head
  ls mnt/by-status/paused
  id=\$(ls mnt/by-status/completed | head -n 1)
  cat mnt/threads/\$id/status
  jq '{status, totalSteps, outputTotalBytes}' mnt/threads/\$id/summary.json
  ls mnt/threads/\$id/steps
  grep -l '"seeded": true' mnt/by-status/completed/*/input.json | head -3
  echo '{"hello": "world"}' > mnt/scripts/echo/new
  cat mnt/scripts/echo/latest/status; sleep 1; cat mnt/scripts/echo/latest/output.json
  echo '{}' > mnt/scripts/fanout/new; tail -f mnt/scripts/fanout/latest/events   # Ctrl-C to stop

The same with the CLI:

  export SCRIPTUM_API_ENDPOINT=$url
  build/scriptum thread list --page-size 5
  build/scriptum thread run echo --input '{"hello": "world"}' --result
  build/scriptum thread result \$id --save /tmp/saved && diff -r -x events -x cancel -x resume mnt/threads/\$id /tmp/saved

Stop it all with: make demo-stop
EOT
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: demo.sh start|stop" >&2
	exit 2
	;;
esac
