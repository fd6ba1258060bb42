#!/bin/sh
# SPDX-License-Identifier: MIT
# vmrd-plugin-check against plugins whose faults are known: the correct ones
# pass every clause, each broken one fails its own clause and no other, and
# a create() that fails turns the clauses that need a backend into SKIPs.
# The in-tree plugins for a device (DEVICE_PLUGIN) pass what can be checked
# without it here: the manifest, the exports and the entry point; the
# guest tests run them on the real device.
# Usage: plugin_check.sh CHECKER FIXTURE_DIR MOCK_PLUGIN [DEVICE_PLUGIN...]
set -u
[ "$#" -ge 3 ] || { echo "usage: $0 CHECKER FIXTURE_DIR MOCK_PLUGIN [DEVICE_PLUGIN...]" >&2; exit 64; }
checker=$1 dir=$2 mock=$3
shift 3
clauses='manifest exports entry host-size state-size returns messages partial blocks state-latency release-all
event-fd held-fds threads cycles probe'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0

# check PLUGIN [ARGS...]: runs the checker, leaves its exit status in $status
# and its output in $tmp/out (stdout) and $tmp/err.
check() {
	"$checker" "$@" >"$tmp/out" 2>"$tmp/err" && status=0 || status=$?
}

# result CASE PROBLEM: one line per case; an empty PROBLEM is a pass.
result() {
	n=$((n + 1))
	if [ -z "$2" ]; then
		echo "ok $n - $1"
		return
	fi
	failed=$((failed + 1))
	echo "not ok $n - $1: $2"
	sed 's/^/#   /' "$tmp/out" "$tmp/err"
}

# crashed: the checker itself died of a signal.
crashed() {
	[ "$status" -ge 128 ] && echo "the checker died (exit $status)"
}

# expect_pass NAME PLUGIN [ARGS...]: every clause passes, each with its own line.
expect_pass() {
	name=$1
	shift
	check "$@"
	problem=$(crashed)
	[ -n "$problem" ] || [ "$status" -eq 0 ] || problem="exit $status, expected 0"
	if [ -z "$problem" ] && grep -q '^FAIL ' "$tmp/out"; then
		problem="FAIL lines: $(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$tmp/out" | paste -s -d ' ' -)"
	fi
	for c in $clauses; do
		[ -n "$problem" ] || grep -q "^PASS $c: " "$tmp/out" || problem="no 'PASS $c' line"
	done
	result "$name passes every clause" "$problem"
}

# The clause fails, and no other does.
expect_fail() {
	check "$dir/vmrd-backend-$1.so"
	problem=$(crashed)
	[ -n "$problem" ] || [ "$status" -eq 1 ] || problem="exit $status, expected 1"
	[ -n "$problem" ] || grep -q "^FAIL $2: " "$tmp/out" || problem="no 'FAIL $2' line"
	if [ -z "$problem" ] && [ "${3-}" != any-other ]; then
		others=$(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$tmp/out" | grep -v -x -e "$2" | paste -s -d ' ' -)
		[ -z "$others" ] || problem="other clauses failed too: $others"
	fi
	result "$1 fails $2${3:+ (others may fail too)}" "$problem"
}

expect_pass check-good "$dir/vmrd-backend-check-good.so"
expect_pass "the mock ($mock)" "$mock"
expect_pass "the mock with its blocks in fds" "$mock" -o held_fds=true

expect_fail check-msg-overflow messages
expect_fail check-unterminated-msg messages
expect_fail check-bad-errno returns
expect_fail check-over-report partial
expect_fail check-unaligned blocks
expect_fail check-slow-state state-latency
expect_fail check-state-size state-size
expect_fail check-host-size host-size
expect_fail check-leak-fd cycles
expect_fail check-leak-mem cycles
expect_fail check-thread-bound threads
expect_fail check-sticky-event event-fd
expect_fail check-release-more release-all
expect_fail check-extra-export exports
expect_fail check-forgetless held-fds
expect_fail check-probe-leak probe
# The manifest fixtures of the loader's tests (broken.c): their create()
# fails as well, which skips what follows, so only manifest is asked for.
expect_fail bad-name manifest any-other
expect_fail unterminated manifest any-other

# An option the plugin does not know: create() fails, nothing can fail
# after it, and every skip says why in the plugin's own words.
check "$dir/vmrd-backend-check-good.so" --option colour=blue
problem=$(crashed)
[ -n "$problem" ] || [ "$status" -eq 2 ] || problem="exit $status, expected 2"
[ -n "$problem" ] || ! grep -q '^FAIL ' "$tmp/out" || problem="FAIL lines, expected none"
[ -n "$problem" ] || grep -q '^SKIP ' "$tmp/out" || problem="no SKIP line"
if [ -z "$problem" ] && grep '^SKIP ' "$tmp/out" | grep -v -q -E "create(\(\))? failed.*unknown option 'colour'"; then
	problem="a SKIP line does not say create failed with the plugin's message (unknown option 'colour' ...)"
fi
result "check-good --option colour=blue: create fails, the rest is skipped" "$problem"

# A device plugin on a machine without its device: nothing fails, and
# what needs the device is skipped with the plugin's reason.
for plugin in "$@"; do
	check "$plugin"
	problem=$(crashed)
	[ -n "$problem" ] || [ "$status" -eq 0 ] || [ "$status" -eq 2 ] || problem="exit $status, expected 0 or 2"
	[ -n "$problem" ] || ! grep -q '^FAIL ' "$tmp/out" || problem="FAIL lines, expected none"
	for c in manifest exports entry; do
		[ -n "$problem" ] || grep -q "^PASS $c: " "$tmp/out" || problem="no 'PASS $c' line"
	done
	name=$(basename "$plugin")
	if [ -z "$problem" ] && [ "$status" -eq 2 ]; then
		n=$((n + 1))
		echo "ok $n - $name: manifest, exports and entry pass # SKIP the rest: $(sed -n 's/^SKIP [^:]*: //p' "$tmp/out" | head -n 1)"
	else
		result "$name passes what it can here" "$problem"
	fi
done

check
problem=$(crashed)
[ -n "$problem" ] || [ "$status" -eq 64 ] || problem="exit $status, expected 64"
result "no plugin named: usage error" "$problem"

echo "$((n - failed)) of $n cases as expected"
[ "$failed" -eq 0 ]
