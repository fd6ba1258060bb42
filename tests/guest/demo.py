#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The demo: a real guest whose memory grows and shrinks with its workload.
# Boots the test guest under QEMU with a virtio-mem device, starts the broker
# on the host and vmrd in the guest, runs a workload that ramps its memory
# up, holds it and exits, and prints one line a second from `vmrdctl status`
# in the guest.  At the end: a summary and a PNG timeline drawn from vmrd's
# event log.  Ctrl-C stops everything it started.
#
# usage: demo.py BUILD_DIR WORKLOAD BROKER PLOT [ROUNDS] [--arch arm64]
# BUILD_DIR is the guest's build (the arm64 cross build with --arch arm64);
# BROKER runs on the host.

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from vmlab import ARCHES, DAEMON_CONFIG, MiB, Broker, Guest, Skip, build_guest

WORKLOAD_MIB = 1200  # on a 512 MiB guest: it has to grow
RAMP_MS, HOLD_MS = 12000, 10000
GIVE_BACK_WAIT = 90  # seconds of idle allowed for vmrd to give the memory back
EVENT_LOG = "/tmp/events.jsonl"


def mib(n):
    return f"{n / MiB:5.0f} MiB"


class Demo:
    def __init__(self, guest):
        self.guest = guest
        self.t0 = time.monotonic()
        self.peak_total = 0
        self.peak_plugged = 0

    def status(self):
        text = self.guest.run("vmrdctl status --json", check=False)
        try:
            return json.loads(text)
        except ValueError:
            return None

    def line(self, phase):
        """One line of progress: the guest's size, used memory, PSI and vmrd's last decision."""
        s = self.status()
        if not s:
            print(f"{time.monotonic() - self.t0:4.0f}s  {phase:8}  (vmrdctl: no answer)", flush=True)
            return None
        m, b = s["memory"], s["backend"]
        total, used = m["mem_total"], m["mem_total"] - m["mem_available"]
        self.peak_total = max(self.peak_total, total)
        self.peak_plugged = max(self.peak_plugged, b["plugged"])
        last = "none yet"
        # The last resize tried; one that was never sent (the backend away or
        # its state unreadable, already at the limit) is not one.
        for d in reversed(s["decisions"]):
            if d["action"] != "none" and not d["outcome"].startswith(("not done", "not called")):
                last = f"{d['action']} {d['bytes'] // MiB} MiB" + (f" ({d['outcome']})" if d["outcome"] else "")
                break
        print(f"{time.monotonic() - self.t0:4.0f}s  {phase:8}  size {mib(total)} (plugged {mib(b['plugged'])})"
              f"  used {mib(used)}  PSI some {m['psi_some_avg10']:5.1f}% full {m['psi_full_avg10']:5.1f}%"
              f"  last: {last}", flush=True)
        return b["plugged"]

    def workload_running(self):
        return self.guest.run("pidof workload", check=False).strip() != ""


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    # Ctrl-C, and a kill, end in the same clean-up, even where the shell
    # that started the demo made it ignore SIGINT (a background job).
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    parser = argparse.ArgumentParser(description="vmrd's demo in a real guest")
    for name in ("build", "workload", "broker", "plot"):
        parser.add_argument(name, type=os.path.abspath)
    parser.add_argument("rounds", type=int, nargs="?", default=1)
    parser.add_argument("--arch", choices=sorted(ARCHES), default="amd64", help="the guest's architecture")
    args = parser.parse_args()
    build, workload, broker, plot, rounds = args.build, args.workload, args.broker, args.plot, args.rounds
    out_dir = os.path.join(build, "demo")
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vmrd-demo-")
    guest = host = None
    try:
        print(f"building the {args.arch} guest (Debian 6.1 cloud kernel, busybox, vmrd as installed)...", flush=True)
        try:
            kernel, initrd, release = build_guest(build, workload, work, "6.1")
        except (Skip, AssertionError) as e:
            print(f"demo: cannot build the guest: {e}", file=sys.stderr)
            return 1
        guest = Guest({"6.1": (kernel, initrd)}, work, arch=args.arch)
        print(f"guest booted in {guest.boot_seconds:.1f}s: kernel {release}, 512 MiB, 1 GiB zram swap, "
              "virtio-mem device of up to 4 GiB (the broker allows 3 GiB)", flush=True)
        host = Broker(broker, work, guest)
        print(f"broker running on the host (log {host.log_path})", flush=True)
        guest.start_vmrd(DAEMON_CONFIG.format(extra=f"daemon:\n  trace: {EVENT_LOG}"))
        print("\n$ vmrdctl status        (in the guest)\n" + guest.run("vmrdctl status") + "\n", flush=True)

        demo = Demo(guest)
        for _ in range(3):
            demo.line("idle")
            time.sleep(1)
        give_back = []
        for n in range(1, rounds + 1):
            print(f"-- round {n}: the workload ramps to {WORKLOAD_MIB} MiB over {RAMP_MS // 1000} s, holds it "
                  f"{HOLD_MS // 1000} s, exits", flush=True)
            guest.run(f"workload {WORKLOAD_MIB} {RAMP_MS} {HOLD_MS} > /tmp/work.log 2>&1 &")
            time.sleep(0.5)
            while demo.workload_running():
                demo.line("workload")
                time.sleep(1)
            print("   workload: " + (guest.run("tail -n 1 /tmp/work.log", check=False) or "(no output)"),
                  flush=True)
            ended = time.monotonic()
            plugged = None
            while time.monotonic() - ended < GIVE_BACK_WAIT:
                plugged = demo.line("idle")
                if plugged == 0:
                    give_back.append(time.monotonic() - ended)
                    break
                time.sleep(1)
            else:
                give_back.append(None)

        oom = guest.vmstat("oom_kill")
        log = guest.run(f"cat {EVENT_LOG}", check=False)
        events = os.path.join(out_dir, "events.jsonl")
        with open(events, "w") as f:
            f.write(log + "\n")
        png = os.path.join(out_dir, "timeline.png")
        drawn = subprocess.run([plot, "-o", png, "--title", f"vmrd demo: guest memory with a {WORKLOAD_MIB} MiB "
                                f"workload (Debian 6.1 {args.arch} kernel, virtio-mem)", events],
                               capture_output=True, text=True)
        print("\nsummary", flush=True)
        print(f"  peak guest size   {demo.peak_total / MiB:.0f} MiB (MemTotal; {demo.peak_plugged / MiB:.0f} MiB "
              "plugged by virtio-mem)")
        print(f"  OOM kills         {oom}")
        for n, t in enumerate(give_back, 1):
            print(f"  given back        round {n}: " +
                  (f"all plugged memory {t:.0f} s after the workload ended" if t is not None
                   else f"not all within {GIVE_BACK_WAIT} s"))
        print(f"  event log         {events}")
        print(f"  timeline          {png}" if drawn.returncode == 0 else
              f"  timeline          not drawn: {drawn.stderr.strip()}", flush=True)
        return 0 if drawn.returncode == 0 else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the guest and the broker", flush=True)
        return 130
    finally:
        if host:
            host.stop()
        if guest:
            guest.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
