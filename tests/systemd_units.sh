#!/bin/sh
# SPDX-License-Identifier: MIT
# The shipped systemd units, as `meson install` writes them, pass
# `systemd-analyze verify` without a single complaint (it exits 0 on unknown
# keys and only warns, so any output fails the test).
set -eu
build=$1
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
units=$(find "$tmp/root" -path '*/systemd/system/*.service' | sort)
[ "$(echo "$units" | wc -l)" -eq 2 ] || { echo "FAIL: expected vmrd.service and vmrd-broker.service, got: $units"; exit 1; }
mkdir "$tmp/units"
for u in $units; do
	# verify checks that ExecStart= is executable: point it into the install.
	sbin=$(sed -n 's|^ExecStart=\(/[^ ]*\)/vmrd.*|\1|p' "$u")
	sed "s|^ExecStart=$sbin/|ExecStart=$tmp/root$sbin/|" "$u" >"$tmp/units/${u##*/}"
	grep -q "^Type=notify$" "$u" || { echo "FAIL: ${u##*/} is not Type=notify"; exit 1; }
	grep -q "^WatchdogSec=" "$u" || { echo "FAIL: ${u##*/} has no WatchdogSec="; exit 1; }
done

# vmrd.service keeps what the early signal (core/tracepoint_watch.cpp) needs.
svc=$(echo "$units" | grep '/vmrd\.service$')
grep -q '^CapabilityBoundingSet=.*\bCAP_PERFMON\b' "$svc" ||
	{ echo "FAIL: vmrd.service: no CAP_PERFMON in CapabilityBoundingSet= (the early signal's tracepoint)"; exit 1; }
# perf_event_open passes the seccomp filter: named, or in a group listed.
allowed=no
for entry in $(sed -n 's/^SystemCallFilter=//p' "$svc"); do
	case $entry in
	~*) ;;
	perf_event_open) allowed=yes ;;
	@*) systemd-analyze syscall-filter "$entry" | grep -qx '    perf_event_open' && allowed=yes ;;
	esac
done
[ "$allowed" = yes ] || { echo "FAIL: vmrd.service: SystemCallFilter= refuses perf_event_open (it kills the daemon)"; exit 1; }
# The tracepoint id is read from /sys/kernel/tracing: nothing may hide it
# (ProtectKernelTunables= and ProtectSystem= leave it readable).
if grep -Eq '^(InaccessiblePaths|TemporaryFileSystem)=(.* )?-?/sys(/kernel(/tracing)?)?/?( |$)' "$svc"; then
	echo "FAIL: vmrd.service hides /sys/kernel/tracing, where the tracepoint ids are read"
	exit 1
fi

out=$(cd "$tmp/units" && systemd-analyze verify --man=no ./*.service 2>&1) && status=0 || status=$?
echo "$out"
[ "$status" -eq 0 ] && [ -z "$out" ] || { echo "FAIL: systemd-analyze verify (exit $status) complained"; exit 1; }
echo "both units pass systemd-analyze verify; vmrd.service allows the early signal"
