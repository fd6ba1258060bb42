#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the systemd test guest's disk: a Debian 12 root file system made
# with debootstrap, with the packages given and the workload added, as an
# ext4 image for virtio-blk (mke2fs -d: no loop mount).  It boots with the
# initramfs of build-guest.sh, whose init mounts root= and hands over to
# systemd.
# usage: build-rootfs.sh OUT_DIR WORKLOAD DEB...
#        build-rootfs.sh --cache   (only the cached tree: ./run test makes it
#                                  while the packages build)
# Prints the image's path.  The debootstrapped tree is cached in
# $VMRD_GUEST_CACHE (default /var/cache/vmrd-guest) as rootfs-<suite>-<key>,
# the key a hash of the debootstrap recipe: a changed recipe builds a new
# tree.  What this script adds to the tree is added anew on each run.
# Needs root and the Debian archive.
# Exit 3: something needed is absent; the message says what.
set -eu
cache=${VMRD_GUEST_CACHE:-/var/cache/vmrd-guest}
suite=bookworm
absent() { echo "build-rootfs: $*" >&2; exit 3; }

[ "$(id -u)" = 0 ] || absent "debootstrap needs root"
command -v debootstrap >/dev/null || absent "debootstrap is not installed (./run test installs it)"
command -v mke2fs >/dev/null || absent "mke2fs is not installed (e2fsprogs)"

# systemd as PID 1, udev for the /dev/virtio-ports links, kmod for insmod
# of the qti_virtio_mem emulation (test_systemd.py).  What the .debs
# depend on beyond that is in every Debian system (libc6): dpkg -i in the
# guest, which has no network, says so if that ever changes.  The recipe
# does not depend on the .debs, so the tree can be made before they exist.
recipe="--variant=minbase --include=systemd-sysv,udev,procps,kmod $suite"
base=$cache/rootfs-$suite-$(echo "$recipe" | sha256sum | cut -c1-12)
if [ ! -d "$base" ]; then
	# The mirror this machine's apt uses.
	# shellcheck disable=SC2016 # apt's own $(FIELD) syntax
	mirror=$(apt-get indextargets --format '$(REPO_URI)' "RELEASE: $suite" 'IDENTIFIER: Packages' | head -n 1)
	[ -n "$mirror" ] || absent "apt has no $suite source (run apt-get update)"
	wget -q -T 20 -O /dev/null "${mirror}dists/$suite/Release" || absent "cannot reach the Debian archive at $mirror"
	mkdir -p "$cache"
	tmp=$base.tmp.$$
	rm -rf "$tmp"
	# shellcheck disable=SC2086 # options and the suite
	debootstrap $recipe "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
		{ tail -n 20 "$tmp.log" >&2; echo "build-rootfs: debootstrap failed" >&2; exit 1; }
	rm -f "$tmp.log" "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_*
	mv "$tmp" "$base" 2>/dev/null || rm -rf "$tmp"
fi
if [ "$1" = --cache ]; then
	echo "$base"
	exit 0
fi
out=$1 workload=$2
shift 2

root=$out/rootfs
rm -rf "$root"
mkdir -p "$out"
cp -a "$base" "$root"
echo vmrd-guest >"$root/etc/hostname"
# A machine id of its own: an empty one makes every boot a first boot.
echo 5e1f0c0ffee0000000000000000d15c0 >"$root/etc/machine-id"
echo "/dev/vda / ext4 rw 0 0" >"$root/etc/fstab"
# The harness's command loop on the serial console, instead of a getty:
# one line in, its output and the "@@DONE <n> <status>@@" marker out, as
# the busybox guest's init does (vmlab/guest.py, Console).
cat >"$root/usr/local/sbin/console-loop" <<'SH'
#!/bin/sh
stty -echo
echo "@@READY $(uname -r)@@"
while read -r line; do
	sh -c "$line"
done
SH
chmod 755 "$root/usr/local/sbin/console-loop"
cat >"$root/etc/systemd/system/console-loop.service" <<'UNIT'
[Unit]
Description=The test harness's command loop on ttyS0

[Service]
ExecStart=/usr/local/sbin/console-loop
# Plain text for the harness: no colours, no pager.
Environment=TERM=dumb SYSTEMD_PAGER=
StandardInput=tty
StandardOutput=tty
TTYPath=/dev/ttyS0
TTYReset=yes

[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/console-loop.service "$root/etc/systemd/system/multi-user.target.wants/"
# The loop owns ttyS0; timers that would only load the guest are off.
for unit in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer fstrim.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/root/debs"
cp "$@" "$root/root/debs/"
cp "$workload" "$root/usr/local/bin/workload"
# Room for the journal and the test's files.
size=$(($(du -sm "$root" | cut -f1) + 256))
rm -f "$out/rootfs.img"
mke2fs -q -t ext4 -L root -d "$root" "$out/rootfs.img" "${size}M" >/dev/null
rm -rf "$root"
echo "$out/rootfs.img"
