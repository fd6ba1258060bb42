#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the qti_virtio_mem emulation (qti_virtio_mem.c) for one kernel,
# against Debian's linux-headers-KVER: the installed ones if the host has
# them, else the packages unpacked (dpkg-deb -x) into the guest cache.
# Unpacked, never installed: the headers of some kernels (the 6.12 ones)
# depend on the kernel image, which has no business on the host.
# usage: build.sh KVER OUT.ko
# Exit 3 when the headers cannot be had (the tests that need the module
# skip), any other failure is a build that broke.
set -eu
kver=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
cache=${VMRD_GUEST_CACHE:-/var/cache/vmrd-guest}
headers=/usr/src/linux-headers-$kver

unavailable() {
	echo "build.sh: $1" >&2
	exit 3
}

# linux-headers-KVER, the -common one its Makefile includes, and the
# linux-kbuild its scripts link to, unpacked into one tree; the Makefile's
# absolute include made to point into it.
unpack() {
	tree=$cache/headers-$kver
	[ -d "$tree" ] && return 0
	deps=$(apt-cache depends "linux-headers-$kver" 2>/dev/null |
		awk '/Depends: linux-(headers-.*-common|kbuild-)/ && $2 !~ /:/ {print $2}' | sort -u)
	[ -n "$deps" ] || unavailable "apt knows no linux-headers-$kver (run apt-get update)"
	rm -rf "$tree.tmp"
	mkdir -p "$tree.tmp/debs"
	# shellcheck disable=SC2086 # a list of package names
	(cd "$tree.tmp/debs" && apt-get download -q "linux-headers-$kver" $deps >/dev/null 2>&1) ||
		unavailable "cannot download linux-headers-$kver and$(echo " $deps" | tr '\n' ' ')"
	for deb in "$tree.tmp/debs"/*.deb; do
		dpkg-deb -x "$deb" "$tree.tmp"
	done
	rm -rf "$tree.tmp/debs"
	sed -i "s|^include /usr/src/|include $tree/usr/src/|" "$tree.tmp/usr/src/linux-headers-$kver/Makefile"
	mv "$tree.tmp" "$tree"
}

command -v make >/dev/null || unavailable "needs make (apt-get install make)"
if [ ! -d "$headers" ]; then
	unpack
	headers=$tree/usr/src/linux-headers-$kver
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/qti_virtio_mem.c" "$here/Kbuild" "$here/../../plugins/gunyah-membuf/qti_virtio_mem.h" "$work/"
# No BTF for the module: it would need pahole, and nothing here reads it.
nice make -s -C "$headers" M="$work" CONFIG_DEBUG_INFO_BTF_MODULES= modules >&2
cp "$work/qti_virtio_mem.ko" "$out"
