#!/bin/sh
# Installs the Debian packages the build, the tests, the demo and the
# benchmarks need, and only those that are missing. As root it runs apt-get;
# otherwise it prints the exact command and fails, so nothing half-works.
set -eu

PKGS="gcc make pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libjansson-dev
libyaml-dev libmicrohttpd-dev libcmocka-dev clang clang-format libclang-rt-14-dev
python3 python3-pytest python3-pytest-timeout python3-yaml curl jq openssl
ca-certificates mandoc man-db psmisc hyperfine xxd"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "install them with:" >&2
	echo "  sudo sh -c 'apt-get update && apt-get install -y$missing'" >&2
	exit 1
fi
echo "installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
