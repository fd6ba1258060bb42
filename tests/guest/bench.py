#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Prints vmrd's latency and cost in a real guest; a measurement, not a test.
#
# usage: bench.py BUILD_DIR WORKLOAD BROKER [RUNS]
#
# For each plug size (128 MiB, 1 GiB) and run, a fresh guest (Debian 6.1,
# 512 MiB, 1 GiB zram) gets a workload of 900 MiB ramped over 6 s; vmrd's
# trace gives the times:
#   PSI event -> backend call      the first pressure record to the start of the plug call
#   request -> memory online       the plug call itself: the broker's grant plus the wait
#                                  until MemTotal shows the memory in the guest
#   workload start -> online       from starting the workload to the end of that call
# Before the workload the daemon idles 30 s: its wakeups per second (context
# switches of all its threads from /proc/PID/task/*/status) and RSS.

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmtest  # noqa: E402

MiB = 1 << 20

CONFIG = """version: 1
backend: {{name: virtio-mem}}
policy:
  preset: server
  grow_step: {step}
  grow_step_max: {step}
  severity_boost: 1
  headroom: 64M
daemon:
  trace: /tmp/trace.jsonl
"""


def switches(guest, pid):
    out = guest.run(f"cat /proc/{pid}/task/*/status | awk '/ctxt_switches/ {{n += $2}} END {{print n}}'")
    return int(out)


def one_run(images, work, broker, step):
    g = vmtest.Guest(images, work)
    b = vmtest.Broker(broker, work, g)
    try:
        g.write_file("/etc/vmrd/vmrd.yaml", CONFIG.format(step=step))
        g.run("vmrd --config /etc/vmrd/vmrd.yaml > /tmp/vmrd.log 2>&1 &")
        vmtest.wait_for("vmrd", lambda: "running with backend" in g.run("cat /tmp/vmrd.log"), 20, 0.2)
        pid = g.run("pidof vmrd").strip()
        idle = {}
        before = switches(g, pid)
        time.sleep(30)
        idle["wakeups_per_s"] = (switches(g, pid) - before) / 30
        status = g.run(f"cat /proc/{pid}/status")
        for key in ("VmRSS", "VmHWM"):
            idle[key] = int(next(l.split()[1] for l in status.splitlines() if l.startswith(key + ":")))
        start = float(g.run("cat /proc/uptime").split()[0])
        g.run("workload 900 6000 1000", timeout=240, check=False)
        records = [json.loads(l) for l in g.run("cat /tmp/trace.jsonl").splitlines() if l.strip()]
        header = records[0]
        pressure = next(r for r in records if r["type"] == "pressure")
        plug = next((r for r in records if r["type"] == "result" and r["action"] == "plug" and r["done"] > 0),
                    None)
        if plug is None:
            raise RuntimeError("no plug happened:\n" + g.run("cat /tmp/vmrd.log"))
        call_start = plug["t_us"] - plug["call_us"]
        return {
            "event_to_call_ms": (call_start - pressure["t_us"]) / 1000,
            "request_to_online_ms": plug["call_us"] / 1000,
            "plugged_mib": plug["done"] // MiB,
            "loop_s": (header["start_us"] + plug["t_us"]) / 1e6 - start,
            "idle": idle,
        }
    finally:
        b.stop()
        g.stop()


def main():
    build, workload, broker = (os.path.abspath(a) for a in sys.argv[1:4])
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    work = tempfile.mkdtemp(prefix="vmrd-bench-")
    r = subprocess.run([os.path.join(vmtest.HERE, "build-guest.sh"), build, workload, work, "6.1"],
                       capture_output=True, text=True, check=True)
    kernel, initrd, release = r.stdout.split()
    images = {"6.1": (kernel, initrd)}
    results = {}
    for step in ("128M", "1G"):
        results[step] = []
        for i in range(runs):
            res = one_run(images, tempfile.mkdtemp(dir=work), broker, step)
            print(f"# {step} run {i + 1}: {res}", flush=True)
            results[step].append(res)

    def med(key, step):
        return statistics.median(r[key] for r in results[step])

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\nvmrd in a real guest: kernel {release}, QEMU TCG, 512 MiB + virtio-mem, 1 GiB zram;")
    print(f"host: {cpu}, {os.cpu_count()} cores; median of {runs} runs each\n")
    print("| measure | 128 MiB plug | 1 GiB plug |")
    print("|---|---|---|")
    print(f"| PSI event -> backend call | {med('event_to_call_ms', '128M'):.1f} ms | "
          f"{med('event_to_call_ms', '1G'):.1f} ms |")
    print(f"| request -> memory online in the guest | {med('request_to_online_ms', '128M'):.0f} ms | "
          f"{med('request_to_online_ms', '1G'):.0f} ms |")
    print(f"| workload start -> memory online | {med('loop_s', '128M'):.2f} s | {med('loop_s', '1G'):.2f} s |")
    idle = [r["idle"] for rs in results.values() for r in rs]
    print(f"| daemon idle wakeups (30 s, nothing plugged) | "
          f"{statistics.median(i['wakeups_per_s'] for i in idle):.2f} /s | |")
    print(f"| daemon RSS idle / peak | {statistics.median(i['VmRSS'] for i in idle) / 1024:.1f} MiB / "
          f"{max(i['VmHWM'] for i in idle) / 1024:.1f} MiB | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
