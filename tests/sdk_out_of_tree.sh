#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs vmrd into a temporary root and builds a plugin there the way a
# vendor would: with nothing but `pkg-config --cflags vmrd-plugin-1`.
set -eu
build=$1 src=$2 vmrd=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name vmrd-plugin-1.pc)
[ -n "$pc" ] || { echo "FAIL: vmrd-plugin-1.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags vmrd-plugin-1)
plugindir=$(pkg-config --variable=plugindir vmrd-plugin-1)
# pkgconf applies the sysroot to variables too; other implementations do not.
case $plugindir in "$tmp/root"/*) ;; *) plugindir=$tmp/root$plugindir ;; esac
echo "cflags: $cflags"
echo "plugindir: $plugindir"
[ -f "$plugindir/vmrd-backend-mock.so" ] || { echo "FAIL: the mock plugin is not installed in plugindir"; exit 1; }

# shellcheck disable=SC2086 # cflags is a list of flags
cc $cflags -std=c99 -Wall -Wextra -Wpedantic -Werror -fPIC -shared \
	-fvisibility=hidden -Wl,--no-undefined -o "$plugindir/vmrd-backend-hello.so" "$src"
cxx_check=$tmp/check.cpp
printf '#include <vmrd/plugin.h>\nint main() { return sizeof(vmrd_manifest) == 176 ? 0 : 1; }\n' >"$cxx_check"
# shellcheck disable=SC2086
c++ $cflags -std=c++17 -Wall -Wextra -Wpedantic -Werror -o "$tmp/check" "$cxx_check"
"$tmp/check"

out=$("$vmrd" --list-plugins --plugin-dir "$plugindir")
echo "$out"
echo "$out" | grep -q "^hello	0.1	example vendor	ABI 1.2	$plugindir/vmrd-backend-hello.so" ||
	{ echo "FAIL: vmrd does not list the out-of-tree plugin"; exit 1; }

printf 'version: 1\nbackend: {name: hello}\n' >"$tmp/hello.yaml"
"$vmrd" --config "$tmp/hello.yaml" --plugin-dir "$plugindir" --check-config
echo "PASS: out-of-tree plugin built with pkg-config alone and loaded"
