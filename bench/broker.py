#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The broker's own costs (issue 15), its QMP and libvirt drivers side by side
# in one run: what it adds to a grant, and its memory per VM served.
#
# usage: broker.py BUILD_DIR [--cycles N] [--vms N]    (./run bench broker)
#
# Grant: in one real guest per driver, vmrd is made to grow by 256 MiB and
# shrink back, N times (vmrdctl, vmrd's own policy held off).  Per grow:
#   - set: the broker's call to the hypervisor (qom-set, or libvirt's
#     virDomainUpdateDeviceFlags), from its debug log, for grows and shrinks;
#   - plug: vmrd's request to the broker until the guest's MemTotal shows
#     the memory (vmrd's "plug of ... finished in"), the whole path: channel,
#     broker, hypervisor, QEMU, the guest's driver onlining the blocks.
# Memory: the broker's RSS serving one VM, then VMS VMs, whose QEMUs are
# started paused (the broker reads and serves each device and channel; no
# guest needs to run), per driver.

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "guest"))

from vmlab import Broker, Guest, Skip, build_guest, wait_for  # noqa: E402
from vmlab.libvirt import DOMAIN_XML, Domain, Libvirtd  # noqa: E402

VMRD_CONFIG = ("version: 1\nbackend: {name: virtio-mem}\n"
               "policy: {preset: server, headroom: 0, shrink_hold: 10m, backoff_max: 10m}\n"
               "limits: {min_interval: 0s}")
BROKER_HOST = "  reserve: 256M\n  requests_per_second: 20\nlogging:\n  level: debug\n"


def qmp_broker_config(guests):
    vms = "".join(f"  - {{name: {name}, qmp: {qmp}, device: vm0, channel: {channel}, min: 0, max: 3G}}\n"
                  for name, qmp, channel in guests)
    return f"version: 1\nhost:\n{BROKER_HOST}vms:\n{vms}"


def libvirt_broker_config(uri):
    return f"version: 1\nhost:\n  driver: libvirt\n  libvirt: {uri}\n{BROKER_HOST}"


def ms(text):
    """A duration as vmrd's logs write it (12ms, 3.4ms, 850us, 1.2s), in ms."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]


def grow_cycles(guest, broker, cycles):
    """vmrdctl grow/shrink 256M `cycles` times; the times in ms of the broker's sets (grows and shrinks) and
    of vmrd's plugs."""
    guest.start_vmrd(VMRD_CONFIG)
    for _ in range(cycles):
        for command in ("grow", "shrink"):
            # Retried while a call is in flight; then waits until it is done.
            wait_for(f"vmrdctl {command} to be taken",
                     lambda c=command: "in flight" not in guest.run(f"vmrdctl {command} 256M 2>&1", check=False),
                     60, 0.3)
            wait_for("vmrd's call to finish",
                     lambda: '"in_flight":null' in guest.run("vmrdctl status --json | tr -d ' \\n'; echo"), 60, 0.3)
    plugs = [ms(t) for t in re.findall(r"(?<!un)plug of 256 MiB finished in (\S+):", guest.vmrd_log())]
    sets = [ms(t) for t in re.findall(r"setting the requested size to \S+ \S+ took (\S+)", broker.text())]
    return sets, plugs


def served_rss(broker, vms):
    """The broker's RSS in KiB once it serves `vms` VMs (device and guest channel)."""
    wait_for(f"the broker to serve {vms} VM(s)",
             lambda: broker.text().count("guest channel connected") >= vms, 120, 0.2)
    time.sleep(2)
    with open(f"/proc/{broker.proc.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def paused_qemu(work, name):
    """A QEMU with the test guest's devices, stopped before its first instruction (-S)."""
    qmp, channel = os.path.join(work, f"{name}-qmp.sock"), os.path.join(work, f"{name}-channel.sock")
    proc = subprocess.Popen([
        "qemu-system-x86_64", "-accel", "tcg", "-S", "-m", "512M,maxmem=9G", "-nographic", "-nodefaults",
        "-object", "memory-backend-ram,id=vmem0,size=4G",
        "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=2M,requested-size=0",
        "-qmp", f"unix:{qmp},server=on,wait=off", "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=ch0,path={channel},server=on,wait=off",
        "-device", "virtserialport,chardev=ch0,name=org.vmrd.0"], stdin=subprocess.DEVNULL)
    wait_for(f"{name}'s sockets", lambda: os.path.exists(qmp) and os.path.exists(channel), 30, 0.1)
    return proc, (name, qmp, channel)


def memory_qmp(exe, work, vms):
    """The broker's RSS serving one paused QEMU, and `vms` of them (two brokers: the list is its config)."""
    procs, guests = [], []
    try:
        for i in range(vms):
            p, g = paused_qemu(work, f"p{i}")
            procs.append(p)
            guests.append(g)
        rss = []
        for n in (1, vms):
            d = os.path.join(work, str(n))
            os.makedirs(d)
            broker = Broker(exe, d, config=qmp_broker_config(guests[:n]))
            rss.append(served_rss(broker, n))
            broker.stop()
        return rss
    finally:
        for p in procs:
            p.kill()
            p.wait()


def memory_libvirt(exe, work, libvirtd, images, vms):
    """The broker's RSS serving one paused domain, and `vms` of them, found as they start."""
    kernel, initrd = images["6.1"]
    for i in range(vms):
        path = os.path.join(work, f"m{i}.xml")
        with open(path, "w") as f:
            # No guest runs: QEMU serves the console itself, nobody connects.
            f.write(DOMAIN_XML.format(name=f"m{i}", memory_mib=512, kernel=kernel, initrd=initrd, metadata="",
                                      console=os.path.join(work, f"m{i}-console.sock"),
                                      channel=os.path.join(work, f"m{i}-channel.sock"))
                    .replace("<source mode='connect'", "<source mode='bind'"))
        libvirtd.virsh("define", path)
    libvirtd.virsh("start", "--paused", "m0")
    broker = Broker(exe, work, config=libvirt_broker_config(libvirtd.uri))
    rss = [served_rss(broker, 1)]
    for i in range(1, vms):
        libvirtd.virsh("start", "--paused", f"m{i}")
    rss.append(served_rss(broker, vms))
    broker.stop()
    return rss


def summary(values):
    if not values:
        return "n/a"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f}, n={len(values)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("build")
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--vms", type=int, default=8, help="2 or more")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    exe = os.path.join(build, "plugins", "virtio-mem", "broker", "vmrd-broker")
    work = tempfile.mkdtemp(prefix="vmrd-bench-broker-")
    t0 = time.monotonic()
    try:
        kernel, initrd, _ = build_guest(build, os.path.join(build, "tests", "guest", "guest-workload"),
                                        os.path.join(work, "images"), "6.1")
        images = {"6.1": (kernel, initrd)}
        rows = {}
        print(f"bench/broker: [1/4] grants through the QMP driver ({args.cycles} cycles)", flush=True)
        d = os.path.join(work, "qmp")
        os.makedirs(d)
        guest = Guest(images, d)
        try:
            broker = Broker(exe, d, config=qmp_broker_config([("test", guest.broker_qmp, guest.channel)]))
            rows["qmp"] = {"grant": grow_cycles(guest, broker, args.cycles)}
            broker.stop()
        finally:
            guest.stop()
        print(f"bench/broker: [2/4] grants through the libvirt driver ({args.cycles} cycles)", flush=True)
        d = os.path.join(work, "libvirt")
        os.makedirs(d)
        libvirtd = Libvirtd(d)
        try:
            dom = Domain(libvirtd, images, d, "g1")
            broker = Broker(exe, d, config=libvirt_broker_config(libvirtd.uri))
            rows["libvirt"] = {"grant": grow_cycles(dom, broker, args.cycles)}
            broker.stop()
            dom.stop()
            print(f"bench/broker: [3/4] broker memory, libvirt driver, {args.vms} paused domains", flush=True)
            os.makedirs(os.path.join(d, "mem"))
            rows["libvirt"]["memory"] = memory_libvirt(exe, os.path.join(d, "mem"), libvirtd, images, args.vms)
        finally:
            libvirtd.close()
        print(f"bench/broker: [4/4] broker memory, QMP driver, {args.vms} paused QEMUs", flush=True)
        d = os.path.join(work, "qmp-mem")
        os.makedirs(d)
        rows["qmp"]["memory"] = memory_qmp(exe, d, args.vms)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n## The broker's costs, QMP and libvirt drivers ({time.monotonic() - t0:.0f} s)\n")
    print("Times in ms: median (min–max, n).\n")
    print("| driver | set: the hypervisor call | plug: vmrd's request until MemTotal shows it | "
          f"broker RSS, 1 VM | RSS, {args.vms} VMs | per VM more |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        sets, plugs = r["grant"]
        one, many = r["memory"]
        print(f"| {name} | {summary(sets)} | {summary(plugs)} | {one / 1024:.1f} MiB | {many / 1024:.1f} MiB | "
              f"{(many - one) / (args.vms - 1):.0f} KiB |")


if __name__ == "__main__":
    try:
        main()
    except Skip as e:
        print(f"bench/broker: skipped: {e}")
        sys.exit(77)  # meson's code for a skipped test
