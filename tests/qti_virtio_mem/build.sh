#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the qti_virtio_mem emulation (qti_virtio_mem.c) for one kernel,
# against Debian's linux-headers-KVER, which it installs when run as root.
# usage: build.sh KVER OUT.ko
# Exit 3 when the headers cannot be had (the tests that need the module
# skip), any other failure is a build that broke.
set -eu
kver=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
headers=/usr/src/linux-headers-$kver
# linux-headers brings its compiler (gcc-12) and kbuild, but not make.  Not
# when it would bring the kernel itself (the 6.12 ones do): the guest's
# kernel has no business on the host.
if { [ ! -d "$headers" ] || ! command -v make >/dev/null; } && [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-cache show "linux-headers-$kver" >/dev/null 2>&1 || apt-get update -qq >/dev/null 2>&1 || true
	if ! apt-get install -s "linux-headers-$kver" 2>/dev/null | grep -q '^Inst linux-image-'; then
		apt-get install -y -q "linux-headers-$kver" make >/dev/null 2>&1 || true
	fi
fi
if [ ! -d "$headers" ] || ! command -v make >/dev/null; then
	echo "build.sh: needs /usr/src/linux-headers-$kver and make (apt-get install linux-headers-$kver make, as root;" \
		"not done when it would install a kernel image on this host)" >&2
	exit 3
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/qti_virtio_mem.c" "$here/Kbuild" "$here/../../plugins/gunyah-membuf/qti_virtio_mem.h" "$work/"
nice make -s -C "$headers" M="$work" modules >&2
cp "$work/qti_virtio_mem.ko" "$out"
