#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The benchmark: how well vmrd sizes a real guest, next to the alternatives.
# A measurement that prints numbers, not a test.
#
# usage: PYTHONPATH=tests/guest bench.py BUILD_DIR PLOT [full|quick|smoke [SCENARIO ...]]
# (./run bench sets PYTHONPATH: the harness, vmlab, lives in tests/guest.)
#
# Every (scenario, contender) runs in a fresh guest from the virtio-mem
# harness (Debian 6.1 kernel under QEMU, 512 MiB at boot, 1 GiB zram, a
# virtio-mem device the broker lets grow to 3 GiB).  `probe monitor` samples
# the guest every 200 ms; the contender's own log gives its requests.  See
# bench/README.md for the definitions and the latest results.

import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from vmlab import GiB, MiB, Broker, Guest, Skip, build_guest, wait_for

SEED = 7
MONITOR_MS = 200
GIVE_BACK_WINDOW = 30  # seconds: the target's window
IDLE_WATCH = 10  # seconds after the give-back window to catch re-grows
STALL_GAP = 1.0  # seconds without stall that end a stall episode


@dataclass(frozen=True)
class Scenario:
    command: str  # run in the guest's shell; it ends when the workload does
    peak: int  # bytes the workload needs at most: the size of "static peak"
    disk: int = 0  # bytes of a blank disk the guest sees as /dev/vda; 0 for none
    idle: bool = False  # no workload: only the daemons run, and give-back is not measured


def sawtooth(cycles, low, high, seed=SEED):
    rng = random.Random(seed)
    sizes = [rng.randrange(low, high, 64) for _ in range(cycles)]
    return Scenario(" && ".join(f"workload {m} 3000 1000 >/dev/null && sleep 4" for m in sizes), max(sizes) * MiB)


def scenarios(mode):
    if mode == "smoke":  # checks that the benchmark runs, in about a minute
        return {"burst": Scenario("workload 256 0 500", 256 * MiB)}
    if mode == "quick":
        return {
            "ramp": Scenario("workload 1536 8000 3000", 1536 * MiB),
            "burst": Scenario("workload 1024 0 3000", 1024 * MiB),
            "idle": Scenario("sleep 20", 0, idle=True),
        }
    return {
        "ramp": Scenario("workload 3072 30000 10000", 3 * GiB),
        "burst": Scenario("workload 1536 0 10000", 1536 * MiB),
        "sawtooth": sawtooth(5, 512, 1792),
        # Reads go through the page cache of /dev/vda: file pages, not anonymous ones.
        "file-cache": Scenario("dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null && "
                               "dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null", 2 * GiB, disk=2 * GiB),
        "idle": Scenario("sleep 600", 0, idle=True),
    }


@dataclass(frozen=True)
class Contender:
    name: str  # in the tables, the progress lines and the file names
    controller: Optional[str] = None  # what resizes the guest: "vmrd", "polling" or nothing (a static size)
    preset: Optional[str] = None  # vmrd's policy preset
    at_peak: bool = False  # sized to the scenario's peak before it starts, else left at boot size

    @property
    def daemon(self):
        """A controller runs in the guest: it needs the broker and writes the log of its requests."""
        return self.controller is not None


CONTENDERS = [
    Contender("vmrd server", controller="vmrd", preset="server"),
    Contender("vmrd embedded", controller="vmrd", preset="embedded"),
    Contender("static boot"),
    Contender("static peak", at_peak=True),
    Contender("polling", controller="polling"),
]


def contenders(mode):
    return [c for c in CONTENDERS if c.name in ("vmrd server", "static boot")] if mode == "smoke" else CONTENDERS


def records(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line torn by killing the writer
    return out


def on_axis(recs, origin):
    """(seconds on the monitor's axis, record) for each non-header record."""
    start = next((r["start_us"] for r in recs if r["type"] == "header"), origin)
    return [((start - origin + r["t_us"]) / 1e6, r) for r in recs if r["type"] != "header"]


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def daemon_stats(guest, pid):
    stat = guest.run(f"cat /proc/{pid}/stat", check=False).split(")")[-1].split()
    status = guest.run(f"cat /proc/{pid}/status /proc/{pid}/task/*/status", check=False)
    switches = sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", status))
    hwm = re.search(r"VmHWM:\s+(\d+)", status)
    return {"cpu": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") if len(stat) > 12 else 0.0,
            "switches": switches, "hwm": int(hwm.group(1)) * 1024 if hwm else 0}


def run_one(images, broker_exe, work, scenario, contender, mode):
    disk = None
    if scenario.disk:
        disk = os.path.join(work, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(scenario.disk)
    guest = Guest(images, work, disk=disk)
    broker = None
    try:
        if contender.daemon:
            broker = Broker(broker_exe, work, guest)
        g = guest
        g.run("ip link set lo up")
        g.run(f"probe monitor /tmp/monitor.jsonl {MONITOR_MS} >/dev/null 2>&1 &")
        pid = None
        if contender.controller == "vmrd":
            g.start_vmrd(f"version: 1\nbackend: {{name: virtio-mem}}\npolicy: {{preset: {contender.preset}}}\n"
                         "daemon: {trace: /tmp/log.jsonl}\n")
            pid = g.run("pidof vmrd").strip()
        elif contender.controller == "polling":
            g.run("probe poll /tmp/log.jsonl 256 1000 > /tmp/poll.err 2>&1 &")
            pid = g.run("pidof probe | tr ' ' '\\n' | sort -n | tail -n 1").strip()
        elif contender.at_peak and scenario.peak:
            g.qmp.set_requested(scenario.peak)
            wait_for("the static peak size", lambda: g.qmp.get("size") == scenario.peak, 120, 0.5)
        time.sleep(2)
        before = {"oom": g.vmstat("oom_kill"), "stats": daemon_stats(g, pid) if pid else None}
        # Times in the guest's CLOCK_MONOTONIC (/proc/uptime: the guest never suspends), as the logs use.
        out = g.run(f"cat /proc/uptime; {scenario.command}; echo exit=$?; cat /proc/uptime", timeout=1800, check=False)
        ups = [float(line.split()[0]) for line in out.splitlines() if re.fullmatch(r"[0-9.]+ [0-9.]+", line)]
        watch = (GIVE_BACK_WINDOW + IDLE_WATCH) if contender.daemon and not scenario.idle and mode != "smoke" else 2
        time.sleep(watch)
        after = {"oom": g.vmstat("oom_kill"), "stats": daemon_stats(g, pid) if pid else None}
        if pid:
            rollup = g.run(f"cat /proc/{pid}/smaps_rollup", check=False)
            for key in ("Rss", "Pss", "Private_Dirty", "Private_Clean"):
                found = re.search(rf"^{key}:\s+(\d+)", rollup, re.M)
                after["stats"][key] = int(found.group(1)) * 1024 if found else 0
        end = float(g.run("cat /proc/uptime").split()[0])
        mon = records(g.run("cat /tmp/monitor.jsonl", check=False))
        log_text = g.run("cat /tmp/log.jsonl 2>/dev/null", check=False) if contender.daemon else ""
        return {"start": ups[0], "workload_end": ups[-1], "end": end, "ok": "exit=0" in out, "before": before,
                "after": after, "monitor": mon, "log": log_text}
    finally:
        if broker:
            broker.stop()
        guest.stop()


def analyse(result, idle):
    mon = result["monitor"]
    origin = next(r["start_us"] for r in mon if r["type"] == "header")
    samples = [(t, r["sample"]) for t, r in on_axis(mon, origin)]
    log = on_axis(records(result["log"]), origin)
    start_t = result["start"] - origin / 1e6  # on the monitor's axis
    workload_end = result["workload_end"] - origin / 1e6
    end_t = result["end"] - origin / 1e6
    run_s = end_t - start_t
    window = [(t, s) for t, s in samples if start_t <= t <= end_t]
    total = [s["mem_total"] for _, s in window]
    # Footprint while the workload runs: afterwards the boot memory, which no
    # contender can give back, would dominate it.
    running = [s for t, s in window if t <= workload_end] or [s for _, s in window]
    run_total = [s["mem_total"] for s in running]
    used = [s["mem_total"] - s["mem_available"] for s in running]
    base = window[0][1]["mem_total"] if window else 0
    m = {
        "oom": result["after"]["oom"] - result["before"]["oom"],
        "ok": result["ok"],
        "completion": workload_end - start_t,
        "some_s": (window[-1][1]["some_total_us"] - window[0][1]["some_total_us"]) / 1e6 if window else 0,
        "full_s": (window[-1][1]["full_total_us"] - window[0][1]["full_total_us"]) / 1e6 if window else 0,
        "avg_total": statistics.mean(run_total) if run_total else 0,
        "avg_used": statistics.mean(used) if used else 0,
        "peak_total": max(total) if total else 0,
    }
    m["footprint"] = m["avg_total"] / m["avg_used"] if m["avg_used"] else None
    # Reaction: for each grow, from the start of the stall before it.
    # The stall onset of a grow: the first sample of the stall episode the
    # request came in (samples that saw the "some" total rise, none more than
    # STALL_GAP apart, the last within STALL_GAP before the request), and not
    # before the previous grow was online.  A grow without a stall before it
    # has no onset and is left out.
    stalls = [t for (_, a), (t, b) in zip(window, window[1:]) if b["some_total_us"] > a["some_total_us"]]
    to_request, to_online = [], []
    last_online = start_t
    for t, r in log:
        if r.get("type") != "result" or r.get("action") != "plug" or r.get("done", 0) <= 0:
            continue
        request = t - r["call_us"] / 1e6
        episode = [ts for ts in stalls if last_online <= ts <= request]
        onset = None
        if episode and request - episode[-1] <= STALL_GAP:
            onset = episode[-1]
            for earlier in reversed(episode[:-1]):
                if onset - earlier > STALL_GAP:
                    break
                onset = earlier
        if onset is not None:
            to_request.append(request - onset)
            to_online.append(t - onset)
        last_online = t
    m["to_request"] = to_request
    m["to_online"] = to_online
    # Give-back after the workload ended.
    grown = m["peak_total"] - base
    m["grown"] = grown
    if grown > 0 and not idle:
        at_end = [s["mem_total"] for t, s in window if t >= workload_end]
        in_window = [(t, s["mem_total"]) for t, s in window if workload_end <= t <= workload_end + GIVE_BACK_WINDOW]
        low = min((v for _, v in in_window), default=m["peak_total"])
        high_at_end = at_end[0] if at_end else m["peak_total"]
        m["returned"] = max(0.0, (high_at_end - low) / (high_at_end - base)) if high_at_end > base else 1.0
        done = next((t for t, v in in_window if v <= base + 0.1 * (high_at_end - base)), None)
        m["give_back_s"] = done - workload_end if done is not None else None
        tail = [s["mem_total"] for t, s in window if t > workload_end + GIVE_BACK_WINDOW]
        m["regrows"] = sum(1 for a, b in zip(tail, tail[1:]) if b > a + 2 * MiB)
    else:
        m["returned"], m["give_back_s"], m["regrows"] = None, None, None
    if idle:
        m["regrows"] = sum(1 for a, b in zip(total, total[1:]) if b > a + 2 * MiB)
    b, a = result["before"]["stats"], result["after"]["stats"]
    if b and a:
        m["cpu_s"] = a["cpu"] - b["cpu"]
        m["rss"] = max(a["hwm"], a["Rss"])
        m["pss"] = a["Pss"]
        m["private"] = a["Private_Dirty"] + a["Private_Clean"]
        m["wakeups"] = (a["switches"] - b["switches"]) / run_s
    return m


def fmt_ms(values):
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f} / {percentile(values, 95) * 1000:.0f} ms"


def table(name, metrics, names, idle):
    def cell(c, key, f):
        v = metrics[c].get(key)
        return f(v) if v is not None else "-"

    def ratio(c, key, other):
        if c == other or key not in metrics.get(other, {}) or not metrics[other].get(key) or metrics[c].get(key) is None:
            return ""
        return f" ({metrics[c][key] / metrics[other][key]:.2f}x {'poll' if other == 'polling' else 'peak'})"

    rows = [("OOM kills", lambda c: cell(c, "oom", str)),
            ("workload completed / time", lambda c: ("ok" if metrics[c]["ok"] else "FAILED") +
             f" / {metrics[c]['completion']:.1f} s"),
            ("PSI stall some / full", lambda c: f"{metrics[c]['some_s']:.2f} / {metrics[c]['full_s']:.2f} s"),
            ("stall onset -> request (median / p95)", lambda c: fmt_ms(metrics[c]["to_request"])),
            ("stall onset -> memory online (median / p95)", lambda c: fmt_ms(metrics[c]["to_online"])),
            ("peak guest size", lambda c: f"{metrics[c]['peak_total'] / MiB:.0f} MiB"),
            ("avg guest size while the workload runs", lambda c: f"{metrics[c]['avg_total'] / MiB:.0f} MiB" + ratio(c, "avg_total", "polling") +
             ratio(c, "avg_total", "static peak")),
            ("footprint (avg size / avg used, workload running)", lambda c: cell(c, "footprint", lambda v: f"{v:.2f}") +
             ratio(c, "footprint", "polling") + ratio(c, "footprint", "static peak"))]
    if not idle:
        rows += [("given back within 30 s", lambda c: cell(c, "returned", lambda v: f"{v * 100:.0f} %")),
                 ("time to give back 90 %", lambda c: cell(c, "give_back_s", lambda v: f"{v:.1f} s"))]
    rows += [("re-grows while idle", lambda c: cell(c, "regrows", str)),
             ("daemon CPU", lambda c: cell(c, "cpu_s", lambda v: f"{v:.2f} s")),
             ("daemon peak RSS (PSS / private at the end)",
              lambda c: cell(c, "rss", lambda v: f"{v / MiB:.2f} MiB ({metrics[c]['pss'] / MiB:.2f} / "
                                                 f"{metrics[c]['private'] / MiB:.2f} MiB)")),
             ("daemon wakeups" + (" (idle)" if idle else ""), lambda c: cell(c, "wakeups", lambda v: f"{v:.2f} /s"))]
    lines = [f"### {name}", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, f in rows:
        lines.append(f"| {label} | " + " | ".join(f(c) for c in names) + " |")
    return "\n".join(lines)


def targets(all_metrics):
    """The project's targets, checked for both vmrd presets over all scenarios."""
    out = ["### Targets", "", "| target | vmrd server | vmrd embedded |", "|---|---|---|"]

    def check(preset, test):
        vals = [test(scn, ms[preset]) for scn, ms in all_metrics.items() if preset in ms]
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        bad = [v[1] for v in vals if not v[0]]
        return "met" if not bad else "missed: " + "; ".join(bad)

    def oom(scn, m_preset):
        boot = all_metrics[scn].get("static boot")
        if not boot or boot["oom"] == 0:
            return None
        return (m_preset["oom"] == 0, f"{scn} {m_preset['oom']} OOM kills")

    def reaction(scn, m):
        if not m["to_request"]:
            return None
        worst = percentile(m["to_request"], 95)
        return (worst <= 2.0, f"{scn} p95 onset->request {worst:.2f} s > 2 s")

    def give_back(scn, m):
        if m.get("returned") is None:
            return None
        ok = m["returned"] >= 0.9 and not m["regrows"]
        return (ok, f"{scn} {m['returned'] * 100:.0f} % in 30 s, {m['regrows']} re-grow(s)")

    def footprint(scn, m):
        if m["footprint"] is None or scn == "idle":
            return None
        return (m["footprint"] <= 1.15, f"{scn} {m['footprint']:.2f}")

    def wakeups(scn, m):
        if scn != "idle" or m.get("wakeups") is None:
            return None
        return (m["wakeups"] <= 0.05, f"{m['wakeups']:.2f} /s")

    def rss(scn, m):
        if m.get("rss") is None:
            return None
        return (m["rss"] <= 4 * MiB, f"{scn} {m['rss'] / MiB:.1f} MiB")

    for label, f in [("0 OOM kills where static boot sizing has them", oom),
                     ("stall onset -> request within 2 PSI windows (p95 <= 2 s); online adds the resize time", reaction),
                     (">= 90 % of grown memory back within 30 s, no idle re-grow", give_back),
                     ("footprint <= 1.15 x used", footprint),
                     ("0 idle wakeups beyond configured timers", wakeups),
                     ("daemon RSS <= 4 MiB", rss)]:
        out.append(f"| {label} | {check('vmrd server', f)} | {check('vmrd embedded', f)} |")
    return "\n".join(out)


def main():
    build, plot = (os.path.abspath(a) for a in sys.argv[1:3])
    mode = sys.argv[3] if len(sys.argv) > 3 else "full"
    only = sys.argv[4:]
    if mode not in ("full", "quick", "smoke") or any(o not in scenarios(mode) for o in only):
        print(f"usage: bench.py BUILD_DIR PLOT [full|quick|smoke [SCENARIO ...]]; scenarios of {mode}: "
              f"{', '.join(scenarios(mode)) if mode in ('full', 'quick', 'smoke') else '?'}", file=sys.stderr)
        return 64
    workload = os.path.join(build, "tests", "guest", "guest-workload")
    broker = os.path.join(build, "plugins", "virtio-mem", "broker", "vmrd-broker")
    out_dir = os.path.join(build, "bench", mode)
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vmrd-bench-")
    try:
        kernel, initrd, release = build_guest(build, workload, work, "6.1")
    except Skip as e:
        print(f"SKIP: {e}")
        return 77  # meson's "skipped"
    except AssertionError as e:
        print(f"bench: cannot build the guest: {e}", file=sys.stderr)
        return 1
    images = {"6.1": (kernel, initrd)}
    scns = {k: v for k, v in scenarios(mode).items() if not only or k in only}
    chosen = contenders(mode)
    all_metrics = {}
    failures = []
    t0 = time.monotonic()
    try:
        for scn, scenario in scns.items():
            all_metrics[scn] = {}
            for contender in chosen:
                c = contender.name
                if scenario.idle and not contender.daemon:
                    continue  # nothing runs: nothing to measure
                print(f"[{time.monotonic() - t0:5.0f}s] {scn} / {c} ...", flush=True)
                run_work = tempfile.mkdtemp(dir=work)
                try:
                    result = run_one(images, broker, run_work, scenario, contender, mode)
                    with open(os.path.join(out_dir, f"{scn}-{c.replace(' ', '-')}.run.json"), "w") as f:
                        json.dump(result, f)
                    m = analyse(result, scenario.idle)
                except Exception as e:  # one broken run must not lose the others
                    failures.append(f"{scn} / {c}: {e}")
                    print(f"         failed: {e}", flush=True)
                    continue
                all_metrics[scn][c] = m
                slug = f"{scn}-{c.replace(' ', '-')}"
                logs = []
                for kind, text in (("monitor", "\n".join(json.dumps(x) for x in result["monitor"])),
                                   ("log", result["log"])):
                    if text.strip():
                        path = os.path.join(out_dir, f"{slug}.{kind}.jsonl")
                        with open(path, "w") as f:
                            f.write(text + "\n")
                        logs.append(path)
                subprocess.run([plot, "-o", os.path.join(out_dir, slug + ".png"), "--title",
                                f"{scn}: {c}"] + logs, capture_output=True)
                foot = f"{m['footprint']:.2f}" if m["footprint"] else "-"
                print(f"         oom {m['oom']}, {'ok' if m['ok'] else 'FAILED'} in {m['completion']:.1f} s, "
                      f"peak {m['peak_total'] / MiB:.0f} MiB, footprint {foot}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; the tables below cover what ran", flush=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    report = [f"## vmrd benchmark ({mode}), {time.strftime('%Y-%m-%d')}", "",
              f"Guest: Debian kernel {release} under QEMU TCG, 512 MiB at boot, 1 GiB zram, virtio-mem up to 3 GiB. "
              f"Host: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}. "
              f"Took {(time.monotonic() - t0) / 60:.1f} min.", ""]
    for scn, ms in all_metrics.items():
        if ms:
            report += [table(scn, ms, [c.name for c in chosen if c.name in ms], scns[scn].idle), ""]
    report += [targets(all_metrics), ""]
    report += [f"Failed runs: {'; '.join(failures)}", ""] if failures else []
    report += [f"Timelines and logs: {out_dir}/"]
    text = "\n".join(report)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    print("\n" + text, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
