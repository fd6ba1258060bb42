# SPDX-License-Identifier: MIT
# What every part of the guest harness shares: units, the skip signal, waits and child clean-up.

import ctypes
import signal
import time

MiB = 1 << 20
GiB = 1 << 30


def mib(size):
    """A QEMU size ("512M", "1G") in MiB."""
    units = {"M": 1, "G": 1024}
    return int(size[:-1]) * units[size[-1].upper()]


class Skip(Exception):
    """Something the harness needs is absent: the test reports itself skipped with the reason."""


def die_with_parent():
    """In a child: SIGKILL it when the harness dies, so no QEMU or broker outlives a killed test."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_for(what, cond, timeout, interval=0.1):
    """Polls cond() until it returns something true; fails with `what`."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
