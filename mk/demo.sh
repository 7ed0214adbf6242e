#!/bin/sh
# make demo / make demo-stop: the emulator with demo data, left running in the
# background, and what to try against it.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/build/demo"
mkdir -p "$state"

stop() {
	if [ -f "$state/emulator.pid" ]; then
		pid=$(cat "$state/emulator.pid")
		if kill "$pid" 2>/dev/null; then
			echo "stopped the demo emulator (pid $pid)"
		fi
		rm -f "$state/emulator.pid" "$state/url"
	else
		echo "no demo is running"
	fi
}

start() {
	[ -f "$state/emulator.pid" ] && kill -0 "$(cat "$state/emulator.pid")" 2>/dev/null && stop
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
	api="$url/v1/scriptum"
	cat <<EOT

The Scriptum emulator is running at $url with demo scripts and threads.

Try:
  curl -s '$api/threads?pageSize=5' | jq '.threads[] | {threadId, scriptName, status}'
  curl -s '$api/threads?statusFilter=paused' | jq -r '.threads[].threadId'
  curl -s '$api/scripts' | jq -r '.scripts[].name'
  id=\$(curl -s -X POST '$api/threads' -d '{"scriptName":"echo","inputJson":"{\\"hello\\":\\"world\\"}"}' | jq -r .threadId)
  curl -sN "$api/threads/\$id/watch"
  curl -s "$api/threads/\$id/result" | jq -r .outputData | base64 -d
  curl -sN "$api/threads/\$id/result/stream"

Stop it with: make demo-stop
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
