#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The gunyah-membuf backend on an emulation of Qualcomm's qti_virtio_mem
# device: a kernel module (tests/qti_virtio_mem) that plugs real memory by
# hot-plugging RAM the guest's kernel was told to leave alone.  One boot of
# the 6.1 guest; prints TAP.
#
# usage: test_gunyah.py BUILD_DIR WORKLOAD BROKER [TEST ...]

import re
import sys
import time

from vmlab import Case, MiB, Skip, run_tap, wait_for

SYSFS = "/sys/devices/virtual/qti_virtio_mem/qti_virtio_mem"
# 1 GiB above the guest's 512 MiB: 896 MiB of it in whole blocks, the firmware's tables take the top.
HIDDEN = "1G"
# auto (issue 19): this guest has the vmrd virtio-serial port too, and auto's name order puts gunyah-membuf first.
CONFIG = """version: 1
backend:
  name: auto
"""


def attribute(guest, name):
    return int(guest.run(f"cat {SYSFS}/{name}"))


def hint(guest, *args):
    """qti-hint's report: {"hint": ..., "before"/"held"/"closed": (plugged blocks, MemTotal bytes)}."""
    out = guest.run("qti-hint " + " ".join(str(a) for a in args), check=False)
    report = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        m = re.fullmatch(r"plugged (-?\d+) memtotal_kb (\d+)", value)
        report[key] = (int(m[1]), int(m[2]) * 1024) if m else value
    assert "hint" in report, out
    return report


def check_uapi(ctx, guest, size):
    """The ioctl's contract: EINVAL for a bad request; a hint plugs, closing its fd unplugs."""
    block = attribute(guest, "device_block_size")
    assert attribute(guest, "max_plugin_threshold") == size
    for args in ((0,), (-block,), (4096, 1), (4096, 0, 1), (size + 1,)):
        r = hint(guest, *args)
        assert r["hint"] == "EINVAL", f"qti-hint {args}: {r['hint']}, not EINVAL"
    r = hint(guest, 4096)  # rounded up to a whole block
    assert r["hint"].endswith("cloexec yes"), r["hint"]
    (plugged0, total0), (plugged, total), (plugged1, total1) = r["before"], r["held"], r["closed"]
    assert (plugged0, plugged, plugged1) == (0, 1, 0), r
    assert total == total0 + block and total1 == total0, f"MemTotal {total0} -> {total} -> {total1}, block {block}"
    ctx.note(f"a hint of 4 KiB plugged one {block // MiB} MiB block; closing it unplugged it")
    return block, total0


def check_oom_plug(ctx, guest, block, total0):
    """Without swap, a workload beyond memory runs out of it: the OOM notifier plugs blocks by itself
    (kernel_plugged) and nothing is killed; kernel_unplug gives them back."""
    avail = guest.meminfo("MemAvailable") // MiB
    out = guest.run(f"workload {avail + 200} 3000 500", timeout=90, check=False)
    assert "workload: ok" in out, out
    assert guest.vmstat("oom_kill") == 0, "the OOM killer killed"
    n = attribute(guest, "kernel_plugged")
    assert n >= 1 and attribute(guest, "device_block_plugged") == n, f"kernel_plugged {n}"
    # Less than n blocks: their memmap is on them.
    assert guest.meminfo("MemTotal") > total0 + (n - 1) * block, "MemTotal did not grow"
    guest.run(f"echo {n} > {SYSFS}/kernel_unplug")
    assert attribute(guest, "kernel_plugged") == 0 and attribute(guest, "device_block_plugged") == 0
    assert guest.meminfo("MemTotal") == total0, "kernel_unplug left memory plugged"
    ctx.note(f"the OOM notifier plugged {n} block(s) for a {avail + 200} MiB workload; kernel_unplug gave them back")


def check_vmrd(ctx, c, block, total0):
    """vmrd grows the guest through the device under pressure and gives the memory back afterwards."""
    guest = c.guest
    guest.run("echo 1G > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0")
    c.start_vmrd(config=CONFIG)
    chosen = "backend 'gunyah-membuf': chosen: present"
    assert chosen in guest.vmrd_log() and "running with backend 'gunyah-membuf'" in guest.vmrd_log(), guest.vmrd_log()
    ctx.note("backend.name: auto: " + chosen)
    out = guest.run("workload 1000 8000 2000", timeout=240)
    assert "workload: ok" in out, out
    assert guest.vmstat("oom_kill") == 0, "the OOM killer killed"
    log = c.vmrd_log()
    plugs = re.findall(r"plug of (\S+ \S+) finished in \S+: (\S+ \S+) plugged", log)
    assert plugs, "vmrd never plugged:\n" + log
    t0 = time.monotonic()
    wait_for("vmrd to give the memory back",
             lambda: attribute(guest, "device_block_plugged") * block <= 256 * MiB
             and guest.meminfo("MemTotal") <= total0 + 256 * MiB, 120, 0.5)
    ctx.note(f"vmrd grew the guest to {plugs[-1][1]} in {len(plugs)} plug(s) and gave it back to "
             f"{attribute(guest, 'device_block_plugged')} block(s) {time.monotonic() - t0:.1f}s after the workload")


def grow_and_kill(c, block, start):
    """Starts vmrd with `start` (a shell command line, its log in /tmp/vmrd.log), grows the device under a
    workload that holds its memory for a while, SIGKILLs vmrd; returns the blocks plugged before the kill."""
    guest = c.guest
    guest.run("kill $(pidof vmrd) 2>/dev/null; sleep 1; rm -f /tmp/vmrd.log")
    guest.run(f"{start} > /tmp/vmrd.log 2>&1 &")
    wait_for("vmrd to start", lambda: "running with backend" in c.vmrd_log(), 20, 0.2)
    guest.run("workload 700 2000 20000 > /tmp/workload.log 2>&1 &")
    wait_for("vmrd to grow the device", lambda: attribute(guest, "device_block_plugged") >= 3, 60, 0.5)
    time.sleep(2)  # the grows of the ramp are done
    plugged = attribute(guest, "device_block_plugged")
    guest.run("kill -KILL $(pidof vmrd)")
    return plugged


def check_restart(ctx, c, block):
    """vmrd SIGKILLed with memory grown and the workload running.  Under a keeper of its fd store (fd-holder,
    as systemd) the device keeps its size, the new vmrd adopts the hints, and the workload is untouched;
    without one, the memory goes back, as vmrd said at start it would."""
    guest = c.guest
    if guest.run("command -v fd-holder", check=False).strip() == "":
        raise Skip("fd-holder is not in the guest image (build tests/fd-holder)")
    start = "fd-holder -r 1 vmrd --config /etc/vmrd/vmrd.yaml"
    before = grow_and_kill(c, block, start)
    wait_for("the new vmrd to adopt the hints", lambda: "that the previous vmrd kept" in c.vmrd_log(), 30, 0.2)
    after = attribute(guest, "device_block_plugged")
    assert after >= before, f"the device went from {before} to {after} blocks across the restart:\n{c.vmrd_log()}"
    adopted = re.search(r"adopted (\d+) fd\(s\)", c.vmrd_log())
    assert adopted and int(adopted[1]) == before, c.vmrd_log()
    wait_for("the workload to end", lambda: guest.run("pidof workload", check=False).strip() == "", 90, 0.5)
    out = guest.run("cat /tmp/workload.log")
    assert "workload: ok" in out and guest.vmstat("oom_kill") == 0, out
    ctx.note(f"fd store: vmrd SIGKILLed at {before} blocks; the device kept them, the new vmrd adopted "
             f"{adopted[1]} hints, the workload checked every page")

    before = grow_and_kill(c, block, "vmrd --config /etc/vmrd/vmrd.yaml")
    log = c.vmrd_log()
    assert "no systemd keeps them" in log, log
    wait_for("the hints to go back with vmrd", lambda: attribute(guest, "device_block_plugged") == 0, 30, 0.5)
    # Under a workload that held that memory: it may not survive, which is the point.
    wait_for("the workload to end", lambda: guest.run("pidof workload", check=False).strip() == "", 90, 0.5)
    ctx.note(f"without a keeper: vmrd SIGKILLed at {before} blocks, all went back, as its log said at start")


def test_gunyah_membuf_on_the_emulated_device(ctx):
    """The device's UAPI, its OOM notifier and kernel_unplug, then vmrd with gunyah-membuf on it, and
    killed with memory grown, with and without a keeper of its hints."""
    with Case(ctx, broker=False, zram=None, hidden=HIDDEN) as c:
        base, size = c.guest.load_qti_virtio_mem()
        ctx.note(f"hidden range {base:#x}+{size // MiB} MiB")
        block, total0 = check_uapi(ctx, c.guest, size)
        check_oom_plug(ctx, c.guest, block, total0)
        check_vmrd(ctx, c, block, total0)
        check_restart(ctx, c, block)


TESTS = [test_gunyah_membuf_on_the_emulated_device]


if __name__ == "__main__":
    sys.exit(run_tap(TESTS, sys.argv[1:], series=("6.1",)))
