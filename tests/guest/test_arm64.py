#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The guest tests that matter per architecture, in an arm64 guest under TCG (qemu-system-aarch64 -M virt):
# the arm64 cross build's vmrd, plugin and programs in the guest, the host's broker outside.  Prints TAP.
#
# usage: test_arm64.py BUILD_DIR ARM64_BUILD_DIR BROKER [TEST ...]
# ARM64_BUILD_DIR is brought up to date first; without it every test skips, saying how to make it.

import os
import subprocess
import sys

import test_guest
from test_guest import test_pressure_grows_and_gives_back
from vmlab import run_tap


def test_data_integrity_through_resizes(ctx):
    """Fewer cycles than on x86-64: arm64 under TCG is slower (meson/README.md)."""
    test_guest.test_data_integrity_through_resizes(ctx, cycles=10)


def test_psi_window_probing(ctx):
    """The 50 ms window falls back to 500 ms on Debian's arm64 6.1 kernel too."""
    test_guest.check_psi_window(ctx, "6.1", True)


TESTS = [test_pressure_grows_and_gives_back, test_data_integrity_through_resizes, test_psi_window_probing]


def main(argv):
    build, arm64_build, broker = argv[:3]
    if not os.path.exists(os.path.join(arm64_build, "build.ninja")):
        print(f"1..{len(TESTS)}")
        for i, t in enumerate(TESTS, 1):
            print(f"ok {i} - {t.__name__} # SKIP no arm64 build in {arm64_build} (./run test makes it: "
                  "meson setup --cross-file meson/aarch64-linux-gnu.ini)")
        return 0
    r = subprocess.run(["ninja", "-C", arm64_build], capture_output=True, text=True)
    if r.returncode != 0:
        print("Bail out! the arm64 build failed:\n# " + "\n# ".join((r.stdout + r.stderr).splitlines()[-30:]))
        return 1
    workload = os.path.join(arm64_build, "tests", "guest", "guest-workload")
    return run_tap(TESTS, [build, workload, broker] + argv[3:], series=("6.1",), arch="arm64",
                   guest_build=arm64_build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
