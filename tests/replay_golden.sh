#!/bin/sh
# SPDX-License-Identifier: MIT
# Replays a checked-in trace with a simulated backend and compares every
# decision with the expected output.  After a deliberate policy change,
# review the diff and update the .expected file with the same command
# (vmrd-replay --simulate --tail 30s --config NAME.yaml NAME.jsonl > NAME.expected).
set -eu
replay=$1 dir=$2 name=$3
if "$replay" --simulate --tail 30s --config "$dir/$name.yaml" "$dir/$name.jsonl" | diff -u "$dir/$name.expected" -; then
	echo "PASS: $name: every decision as expected"
else
	echo "FAIL: $name: decisions differ from $dir/$name.expected (diff above)"
	exit 1
fi
