#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds a test guest from Debian packages: a cloud kernel unpacked (never
# installed), its virtio and zram modules, busybox, and vmrd as `meson
# install` lays it out, with the shared libraries it needs.
# usage: build-guest.sh BUILD_DIR WORKLOAD OUT_DIR SERIES [strip]    (SERIES: 6.1 or 6.12)
# The guest's architecture is the build's, read from WORKLOAD: amd64, or
# arm64 from a cross build (meson/README.md; 6.1 only).
# Prints the kernel and initramfs paths.  Kernels are cached in
# $VMRD_GUEST_CACHE (default /var/cache/vmrd-guest) between runs.  With
# `strip` the programs go in without debug info: an initramfs of 7 MB instead
# of 25, which boots in half the time under TCG and leaves the guest about
# 50 MB more memory (its root file system is in RAM).
set -eu
build=$1 workload=$2 out=$3 series=$4 strip=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
cache=${VMRD_GUEST_CACHE:-/var/cache/vmrd-guest}
mkdir -p "$cache" "$out"

# ELF e_machine, at byte 18: 62 is x86-64, 183 AArch64.
case $(od -An -tu2 -j18 -N2 "$workload" | tr -d ' ') in
62) arch=amd64 ;;
183) arch=arm64 ;;
*) echo "build-guest: $workload is neither an x86-64 nor an arm64 program" >&2; exit 2 ;;
esac
case $series-$arch in
6.1-amd64) meta=linux-image-cloud-amd64 ;;
6.12-amd64) meta=linux-image-6.12-cloud-amd64 ;;
# Its cloud flavour has VIRTIO_MEM (=m) and MEMORY_HOTREMOVE.
6.1-arm64) meta=linux-image-cloud-arm64:arm64 ;;
*) echo "build-guest: no $arch guest with kernel series '$series' (6.1 or 6.12 on amd64, 6.1 on arm64)" >&2; exit 2 ;;
esac
# The newest kernel of the series, resolved now rather than pinned (without
# the :arm64 that apt adds to a foreign architecture's names).
resolve() { apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub(/:.*/, "", $2); print $2; exit}'; }
pkg=$(resolve)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
	# A machine whose package lists were never fetched.
	apt-get update -qq >/dev/null 2>&1 || true
	pkg=$(resolve)
fi
if [ -z "$pkg" ]; then
	echo "build-guest: apt knows no $meta (run apt-get update)" >&2
	exit 3
fi
kroot=$cache/$pkg
if [ ! -d "$kroot" ]; then
	if ! ls "$cache/${pkg}"_*.deb >/dev/null 2>&1; then
		(cd "$cache" && apt-get download -q "$pkg:$arch" >/dev/null) || {
			echo "build-guest: cannot download $pkg" >&2
			exit 3
		}
	fi
	rm -rf "$kroot.tmp"
	dpkg-deb -x "$(ls "$cache/${pkg}"_*.deb | head -n 1)" "$kroot.tmp"
	depmod -b "$kroot.tmp" "$(ls "$kroot.tmp/lib/modules")"
	mv "$kroot.tmp" "$kroot"
fi
kver=$(ls "$kroot/lib/modules")

# busybox-static of the guest's architecture: the host's, or the arm64
# package unpacked (it cannot be installed beside the host's).
busybox=/bin/busybox
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
	bpkg=$(apt-cache policy "busybox-static:$arch" 2>/dev/null | awk '/Candidate:/ {print $2}')
	busybox=$cache/busybox-static-$arch-$bpkg/bin/busybox
	if [ ! -e "$busybox" ]; then
		rm -rf "$cache/busybox.tmp" && mkdir -p "$cache/busybox.tmp"
		(cd "$cache/busybox.tmp" && apt-get download -q "busybox-static:$arch" >/dev/null) || {
			echo "build-guest: cannot download busybox-static:$arch" >&2
			exit 3
		}
		dpkg-deb -x "$cache"/busybox.tmp/*.deb "$cache/busybox.tmp/x"
		mv "$cache/busybox.tmp/x" "$cache/busybox-static-$arch-$bpkg"
		rm -rf "$cache/busybox.tmp"
	fi
fi

root=$out/root-$series
rm -rf "$root"
mkdir -p "$root/bin" "$root/modules" "$root/etc"
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
cp "$workload" "$root/bin/workload"
cp "$(dirname "$workload")/guest-capexec" "$root/bin/capexec"
cp "$(dirname "$workload")/guest-signal-watch" "$root/bin/signal-watch"
cp "$build/bench/bench-probe" "$root/bin/probe"
# Only the test of the qti_virtio_mem emulation builds it.
qti_hint=$(dirname "$workload")/guest-qti-hint
[ ! -e "$qti_hint" ] || cp "$qti_hint" "$root/bin/qti-hint"
[ ! -e "$build/tests/fd-holder" ] || cp "$build/tests/fd-holder" "$root/bin/fd-holder"

# Modules in dependency order; built-in ones need nothing.  The compressor
# modules are whichever zram's default needs on this kernel.
: >"$root/modules/order"
for m in virtio_pci virtio_mem virtio_console virtio_blk zram lzo_rle lz4_compress; do
	/sbin/modprobe -d "$kroot" -S "$kver" --show-depends "$m" 2>/dev/null |
		awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	name=$(basename "$ko" | sed 's/\.xz$//')
	case $ko in
	*.xz) xz -dc "$ko" >"$root/modules/$name" ;;
	*) cp "$ko" "$root/modules/$name" ;;
	esac
	echo "$name" >>"$root/modules/order"
done

# The qti_virtio_mem emulation (tests/qti_virtio_mem), built once per kernel
# and source; not in the load order: its tests insmod it with the hidden
# range.  Without it they skip, with the reason left next to where it goes.
qti=$here/../qti_virtio_mem
qti_hash=$(cat "$qti/qti_virtio_mem.c" "$qti/Kbuild" "$qti/build.sh" "$here/../../plugins/gunyah-membuf/qti_virtio_mem.h" |
	sha256sum | cut -c1-12)
qti_ko=$cache/qti_virtio_mem-$kver-$qti_hash.ko
if [ "$arch" != amd64 ]; then
	echo "built for amd64 guests only: tests/qti_virtio_mem/build.sh compiles with the host's kbuild" \
		>"$root/modules/qti_virtio_mem.skip"
elif [ ! -e "$qti_ko" ]; then
	rm -f "$cache/qti_virtio_mem-$kver-"*.ko # older sources
	rc=0
	"$qti/build.sh" "$kver" "$qti_ko.tmp" 2>"$out/qti_virtio_mem.log" || rc=$?
	case $rc in
	0) mv "$qti_ko.tmp" "$qti_ko" ;;
	3) cp "$out/qti_virtio_mem.log" "$root/modules/qti_virtio_mem.skip" ;;
	*) tail -n 30 "$out/qti_virtio_mem.log" >"$root/modules/qti_virtio_mem.failed" ;;
	esac
	rm -f "$out/qti_virtio_mem.log"
fi
[ ! -e "$qti_ko" ] || cp "$qti_ko" "$root/modules/qti_virtio_mem.ko"

# vmrd exactly as `meson install` produces it, plus its shared libraries.
# The guest's PATH holds the build's own bindir and sbindir, whatever its
# prefix (/usr/local by default, /usr for a distribution).
meson introspect "$build" --buildoptions | python3 -c '
import json, os, sys
options = {o["name"]: o["value"] for o in json.load(sys.stdin)}
dirs = [os.path.join(options["prefix"], options[d]) for d in ("sbindir", "bindir")]
print("PATH=" + ":".join(dirs + ["/bin", "/sbin"]))' >"$root/etc/guest-path"
rm -rf "$out/install"
# shellcheck disable=SC2046 # an option or none
meson install -C "$build" --destdir "$out/install" --no-rebuild --quiet $([ "$strip" = strip ] && echo --strip) >/dev/null
cp -a "$out/install/." "$root/"
# An arm64 program's libraries are listed by its own dynamic loader, the
# multiarch libc6:arm64's, under qemu-user (meson/aarch64-linux-gnu.ini
# says why not the cross toolchain's).
case $arch in
amd64) list=ldd ;;
arm64) list="qemu-aarch64 /lib/ld-linux-aarch64.so.1 --list" ;;
esac
find "$root/usr" -type f \( -perm -u+x -o -name '*.so' \) | while read -r elf; do
	# shellcheck disable=SC2086 # a command and its arguments
	$list "$elf" 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r lib; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
# The x86-64 dynamic loader where the ELF interpreter path points (arm64's,
# /lib/ld-linux-aarch64.so.1, is in the list above).
if [ "$arch" = amd64 ]; then
	mkdir -p "$root/lib64"
	cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs-$series.cpio.gz"
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz-$series"
rm -rf "$root" "$out/install"
echo "$out/vmlinuz-$series $out/initramfs-$series.cpio.gz $kver"
