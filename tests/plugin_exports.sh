#!/bin/sh
# SPDX-License-Identifier: MIT
# Each plugin must export only the two ABI symbols (and nothing undefined
# that the daemon would have to provide).
set -u
fail=0
for so in "$@"; do
	extra=$(nm -D --defined-only "$so" | awk '{print $3}' |
		grep -v -x -e vmrd_plugin_manifest -e vmrd_plugin_entry_v1 -e '' || true)
	if [ -n "$extra" ]; then
		echo "FAIL: $so exports more than the ABI symbols: $extra"
		fail=1
	else
		echo "ok: $so"
	fi
done
[ "$fail" = 0 ] && [ "$#" -gt 0 ]
