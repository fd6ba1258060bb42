#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs one libFuzzer target: first every input of its corpus (the seeds and
# past crashes), then SECONDS of fuzzing from there.  A crash leaves its
# input in WORKDIR with the command that reproduces it.
# usage: run_fuzzer.sh FUZZER CORPUS WORKDIR SECONDS
set -eu
fuzzer=$1 corpus=$2 work=$3 seconds=$4
name=$(basename "$fuzzer")
mkdir -p "$work/new" "$work/crashes"
"$fuzzer" -runs=0 "$corpus"
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
	-print_final_stats=1 -artifact_prefix="$work/crashes/" "$work/new" "$corpus" || status=$?
if [ "$status" != 0 ]; then
	for crash in "$work"/crashes/*; do
		[ -f "$crash" ] || continue
		echo "$name: crash input $crash"
		echo "  reproduce: $fuzzer $crash"
		echo "  after the fix, keep it as a regression test: cp $crash $corpus/"
	done
fi
exit "$status"
