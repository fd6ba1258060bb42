#!/bin/sh
# SPDX-License-Identifier: MIT
# vmrd-plot draws a checked-in event log from a real guest into a PNG that is
# an image of the size asked, and says what is wrong with bad input.
set -eu
plot=$1 log=$2
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot is not installed (apt-get install gnuplot-nox)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$plot" -o "$tmp/out.png" --title "test" "$log"
python3 - "$tmp/out.png" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
length, kind = struct.unpack(">I4s", data[8:16])
assert kind == b"IHDR", kind
width, height = struct.unpack(">II", data[16:24])
assert (width, height) == (1280, 720), (width, height)
assert data[-8:-4] == b"IEND", "truncated: no IEND chunk"
# A plot with lines and labels compresses to tens of KiB; an empty frame to a few.
assert 20_000 < len(data) < 2_000_000, f"{len(data)} bytes"
print(f"PNG {width}x{height}, {len(data)} bytes")
PY

# A torn last line (a daemon killed mid-write) is skipped with a warning.
cp "$log" "$tmp/torn.jsonl"
printf '{"type":"sample","t_us":99' >>"$tmp/torn.jsonl"
"$plot" -o "$tmp/torn.png" "$tmp/torn.jsonl" 2>"$tmp/err"
grep -q "torn.jsonl:.*: not an event record, skipped" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: no warning for a torn line"; exit 1; }

# Not an event log at all: a clear error, no image.
echo "hello" >"$tmp/notes.txt"
if "$plot" -o "$tmp/none.png" "$tmp/notes.txt" 2>"$tmp/err"; then echo "FAIL: accepted a non-log"; exit 1; fi
grep -q "no event records to draw" "$tmp/err" || { cat "$tmp/err"; exit 1; }
[ ! -e "$tmp/none.png" ] || { echo "FAIL: wrote an image for a non-log"; exit 1; }
if "$plot" "$tmp/absent.jsonl" 2>"$tmp/err"; then echo "FAIL: accepted a missing file"; exit 1; fi
grep -q "absent.jsonl: cannot read" "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "vmrd-plot: ok"
