#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The benchmark: how well vmrd sizes a real guest, next to the alternatives.
# A measurement that prints numbers, not a test.
#
# usage: PYTHONPATH=tests/guest bench.py BUILD_DIR PLOT [full|quick|smoke] [SCENARIO ...]
#            [--runs N] [--contenders "NAME,NAME"] [--reanalyse DIR]
# (./run bench sets PYTHONPATH: the harness, vmlab, lives in tests/guest.)
#
# Every run of a (scenario, contender) cell is a fresh guest from the
# virtio-mem harness (Debian 6.1 kernel under QEMU, 512 MiB at boot, 1 GiB
# zram, a virtio-mem device the broker lets grow to 3 GiB; for the Gunyah
# contenders 2 GiB more RAM that the kernel leaves alone, which the
# qti_virtio_mem emulation plugs instead).  `probe monitor`
# samples the guest and the contender's wakeups every 200 ms; the
# contender's own log gives its resizes.  Tables show the median of the runs
# with min-max.  See bench/README.md for the definitions and the budget.

import argparse
import base64
import glob
import gzip
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from typing import Optional

from vmlab import MiB, Broker, Guest, Skip, build_guest, wait_for

SEED = 7
MONITOR_MS = 200
HEADROOM_MIB = 256  # the pollers keep this much MemAvailable
SETTLE = 1  # seconds a controller runs before the scenario starts
GIVE_BACK_WINDOW = 5  # seconds after the workload: the give-back target's window
IDLE_WATCH = 10  # seconds after the give-back window to catch idle re-grows
STALL_GAP = 1.0  # seconds without stall that end a stall episode
BLOCK = 2 * MiB  # the virtio-mem device's block
# The Gunyah contenders' guest: this much RAM beyond its 512 MiB, hidden from its kernel (mem=), which the
# qti_virtio_mem emulation (tests/qti_virtio_mem) hot-plugs in 128 MiB memory blocks; more than any
# scenario's peak.
GUNYAH_HIDDEN = "2G"
# Seconds a run costs beyond its workload and observation (boot, zram,
# start-up, reading the logs back, shutdown), measured on the shared 2-core
# host (bench/README.md); it feeds the time estimate, which then corrects
# itself by how long the runs so far took.
RUN_OVERHEAD = 9
# The RFC's reference numbers, as a vmrd preset (named `embedded` before the
# policy v2 change).
RFC_PRESET = "rfc-reference"
GUNYAH = ("gunyah server", f"gunyah {RFC_PRESET}")  # the contenders that run on it (CONTENDERS)
MODES = ("full", "quick", "smoke")


@dataclass(frozen=True)
class Scenario:
    command: str  # run in the guest's shell; it ends when the workload does
    peak: int  # bytes the workload needs at most: the size of "static peak"
    expect_s: float  # seconds the command takes with enough memory, measured: for the time estimate
    limit_s: float  # the command is killed after this long and counts as not completed: thrashing has no end
    disk: int = 0  # bytes of a blank disk the guest sees as /dev/vda; 0 for none
    idle: bool = False  # no workload: only the controllers run; static sizes do not apply
    observe_s: float = GIVE_BACK_WINDOW + IDLE_WATCH  # watched after the workload: give-back, then idle re-grows
    skip: tuple = ()  # names of contenders not run here (see scenarios())


def workload(mib, ramp_ms, hold_ms, expect_s, limit_s, **more):
    """`workload` (tests/guest/workload.c): MIB MiB allocated over RAMP_MS, touched, held HOLD_MS, checked."""
    return Scenario(f"workload {mib} {ramp_ms} {hold_ms}", mib * MiB, expect_s, limit_s, **more)


def sawtooth(cycles, low, high, ramp_ms, hold_ms, gap_s, expect_s, limit_s, seed=SEED, **more):
    """Cycles of a workload whose size comes from a seeded generator, so every contender gets the same ones."""
    rng = random.Random(seed)
    sizes = [rng.randrange(low, high, 64) for _ in range(cycles)]
    command = f" && sleep {gap_s} && ".join(f"workload {m} {ramp_ms} {hold_ms} >/dev/null" for m in sizes)
    return Scenario(command, max(sizes) * MiB, expect_s, limit_s, **more)


def file_cache(size, expect_s, limit_s):
    """Reads through the page cache of /dev/vda, twice: file pages, not anonymous ones."""
    read = "dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null"
    return Scenario(f"{read} && {read}", size, expect_s, limit_s, disk=size)


def idle_scenario(seconds, skip=()):
    return Scenario(f"sleep {seconds}", 0, seconds, seconds + 10, idle=True, skip=skip)


def scenarios(mode):
    """The scenarios of a mode, sized so that the mode fits its budget (bench/README.md)."""
    if mode == "smoke":  # checks that the benchmark runs, in about a minute
        return {"burst": Scenario("workload 256 0 500", 256 * MiB, 4, 60, observe_s=0)}
    if mode == "quick":
        # For iterating on a policy: what no policy change moves is left to full (static boot; the
        # pollers while idle, which wake at their interval by construction; the same policies through
        # the Gunyah backend), and idle re-grows are watched for 5 s after the give-back window instead of 10.
        fixed, watch = ("static boot",) + GUNYAH, GIVE_BACK_WINDOW + 5
        return {
            "ramp": workload(768, 6000, 1000, 9, 30, skip=fixed, observe_s=watch),
            "burst": workload(768, 0, 2000, 8, 30, skip=fixed, observe_s=watch),
            "idle": idle_scenario(10, skip=("poll 1s", "poll 100ms")),
        }
    # Static boot only thrashes until the limit in burst and sawtooth; the ramp shows that once.
    return {
        # 128 MiB/s: a 1 s poller with 256 MiB headroom can follow it; boot memory (about 355 MiB
        # available) cannot.
        "ramp": workload(1024, 8000, 2000, 13, 40),
        "burst": workload(1024, 0, 3000, 11, 40, skip=("static boot",)),
        "sawtooth": sawtooth(3, 512, 1536, 2000, 1000, 3, 35, 90, skip=("static boot",)),
        # A disk larger than what boot memory has available: the second read cannot come from the cache.
        "file-cache": file_cache(512 * MiB, 8, 30),
        "idle": idle_scenario(15),
    }


@dataclass(frozen=True)
class Contender:
    name: str  # in the tables, the progress lines, the file names and --contenders
    controller: Optional[str] = None  # what resizes the guest: "vmrd", "poll" or nothing (a static size)
    preset: Optional[str] = None  # vmrd's policy preset
    interval_ms: int = 0  # the poller's interval
    at_peak: bool = False  # sized to the scenario's peak before it starts, else left at boot size
    backend: str = "virtio-mem"  # vmrd's backend; gunyah-membuf runs on the qti_virtio_mem emulation
    only: tuple = ()  # the scenarios it runs in; all when empty

    @property
    def daemon(self):
        """A controller runs in the guest: it needs the broker, writes a log of its resizes and has wakeups."""
        return self.controller is not None

    def applies(self, name, scenario):
        return (self.name not in scenario.skip and (self.daemon or not scenario.idle)
                and (not self.only or name in self.only))

    def observation(self, scenario):
        """Seconds watched after the scenario's command: give-back and re-grows need a controller."""
        watch = scenario.observe_s if self.daemon and not scenario.idle else 0
        return max(watch, 0.5)  # at least one more sample

    def expected_s(self, scenario):
        return RUN_OVERHEAD + (SETTLE if self.daemon else 0.5) + scenario.expect_s + self.observation(scenario)


CONTENDERS = [
    Contender("vmrd server", controller="vmrd", preset="server"),
    Contender(f"vmrd {RFC_PRESET}", controller="vmrd", preset=RFC_PRESET),
    Contender("static boot"),
    Contender("static peak", at_peak=True),
    Contender("poll 1s", controller="poll", interval_ms=1000),
    Contender("poll 100ms", controller="poll", interval_ms=100),
    # Gunyah guests (issue 17): the same ramp and burst through qti_virtio_mem hint fds instead of virtio-mem.
    *(Contender(name, controller="vmrd", preset=name.split()[1], backend="gunyah-membuf", only=("ramp", "burst"))
      for name in GUNYAH),
]
SMOKE_CONTENDERS = ("vmrd server", "static boot", "gunyah server")


def slug(name):
    return name.replace(" ", "-")


# ---- one run in a guest ----

def daemon_stats(guest, pid):
    stat = guest.run(f"cat /proc/{pid}/stat", check=False).split(")")[-1].split()
    status = guest.run(f"cat /proc/{pid}/status", check=False)
    hwm = re.search(r"VmHWM:\s+(\d+)", status)
    return {"cpu": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") if len(stat) > 12 else 0.0,
            "hwm": int(hwm.group(1)) * 1024 if hwm else 0}


def memory_at_end(guest, pid):
    rollup = guest.run(f"cat /proc/{pid}/smaps_rollup", check=False)
    out = {}
    for key in ("Rss", "Pss", "Private_Dirty", "Private_Clean"):
        found = re.search(rf"^{key}:\s+(\d+)", rollup, re.M)
        out[key] = int(found.group(1)) * 1024 if found else 0
    return out


def start_contender(guest, contender, scenario):
    """Starts what resizes the guest; returns the pid whose threads' wakeups count, or None."""
    if contender.controller == "vmrd":
        try:
            guest.start_vmrd(f"version: 1\nbackend: {{name: {contender.backend}}}\n"
                             f"policy: {{preset: {contender.preset}}}\n"
                             "daemon: {trace: /tmp/log.jsonl}\n")
        except AssertionError as e:  # say why: an unknown preset, for one
            raise AssertionError(f"{e}; vmrd said: {guest.vmrd_log().strip()[-300:]}") from None
        return int(guest.run("pidof vmrd"))
    if contender.controller == "poll":
        return int(guest.run(f"probe poll /tmp/log.jsonl {HEADROOM_MIB} {contender.interval_ms} "
                             ">/tmp/poll.err 2>&1 & echo $!"))
    if contender.at_peak and scenario.peak:
        guest.qmp.set_requested(scenario.peak)
        wait_for("the static peak size", lambda: guest.qmp.get("size") == scenario.peak, 120, 0.5)
    return None


def read_back(guest, path):
    """A file of the guest, or "" when it has none; compressed on the way: the console is slow."""
    out = guest.run(f"[ -f {path} ] && gzip -c {path} | base64", check=False)
    if not out.strip():
        return ""
    try:
        return gzip.decompress(base64.b64decode(out)).decode(errors="replace")
    except (ValueError, OSError, EOFError, zlib.error):  # a kernel message on the console: read it plainly
        return guest.run(f"cat {path}", check=False)


def run_one(images, broker_exe, work, scenario, contender):
    disk = None
    if scenario.disk:
        disk = os.path.join(work, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(scenario.disk)
    gunyah = contender.backend == "gunyah-membuf"
    g = Guest(images, work, disk=disk, hidden=GUNYAH_HIDDEN if gunyah else None)
    broker = None
    try:
        if gunyah:
            g.load_qti_virtio_mem()
        elif contender.daemon:
            broker = Broker(broker_exe, work, g)
        g.run("ip link set lo up")
        boot_total = g.meminfo("MemTotal")
        pid = start_contender(g, contender, scenario)
        # Started after the contender, to follow its threads' context switches.
        g.run(f"probe monitor /tmp/monitor.jsonl {MONITOR_MS} {pid or ''} >/dev/null 2>&1 &")
        time.sleep(SETTLE if contender.daemon else 0.5)
        before = {"oom": g.vmstat("oom_kill"), "stats": daemon_stats(g, pid) if pid else None}
        # Times in the guest's CLOCK_MONOTONIC (/proc/uptime: the guest never suspends), as the logs use.
        # At the limit timeout kills only the shell; killall ends the workload it started.
        out = g.run(f"cat /proc/uptime; timeout -s KILL {scenario.limit_s:.0f} sh -c '{scenario.command}'; "
                    "echo exit=$?; killall -q -KILL workload dd; cat /proc/uptime",
                    timeout=scenario.limit_s + 60, check=False)
        ups = [float(line.split()[0]) for line in out.splitlines() if re.fullmatch(r"[0-9.]+ [0-9.]+", line)]
        time.sleep(contender.observation(scenario))
        after = {"oom": g.vmstat("oom_kill"), "stats": daemon_stats(g, pid) if pid else None}
        if pid:
            after["stats"].update(memory_at_end(g, pid))
        end = float(g.run("cat /proc/uptime").split()[0])
        return {"start": ups[0], "workload_end": ups[-1], "end": end, "ok": "exit=0" in out,
                "boot_total": boot_total, "boot_s": g.boot_seconds, "before": before, "after": after,
                "monitor": records(read_back(g, "/tmp/monitor.jsonl")), "log": read_back(g, "/tmp/log.jsonl")}
    finally:
        if broker:
            broker.stop()
        g.stop()


# ---- the metrics of one run ----

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


@dataclass(frozen=True)
class Resize:
    requested: float  # when the contender asked, on the monitor's axis
    online: float  # when its call returned (the memory shows in MemTotal)
    grow: bool


def resizes(log, start_t, end_t):
    """The contender's successful plugs and unplugs during the run, in order."""
    out = []
    for t, r in log:
        if r.get("type") == "result" and r.get("action") in ("plug", "unplug") and r.get("done", 0) > 0:
            if start_t <= t <= end_t:
                out.append(Resize(t - r.get("call_us", 0) / 1e6, t, r["action"] == "plug"))
    return out


def reactions(window, grows, start_t):
    """For each grow, from the stall onset before it to the request and to the memory being online.

    The onset: the first sample of the stall episode the request came in
    (samples that saw the "some" total rise, none more than STALL_GAP apart,
    the last within STALL_GAP before the request), and not before the
    previous grow was online.  A grow without a stall before it has no onset
    and is left out."""
    stalls = [t for (_, a), (t, b) in zip(window, window[1:]) if b["some_total_us"] > a["some_total_us"]]
    to_request, to_online = [], []
    last_online = start_t
    for g in grows:
        episode = [ts for ts in stalls if last_online <= ts <= g.requested]
        if episode and g.requested - episode[-1] <= STALL_GAP:
            onset = episode[-1]
            for earlier in reversed(episode[:-1]):
                if onset - earlier > STALL_GAP:
                    break
                onset = earlier
            to_request.append(g.requested - onset)
            to_online.append(g.online - onset)
        last_online = g.online
    return to_request, to_online


def give_back(window, boot, workload_end):
    """(share of grown memory back GIVE_BACK_WINDOW s after the workload's end, seconds until 90 % was)."""
    peak = max(s["mem_total"] for _, s in window)
    grown = peak - boot
    if grown < BLOCK:
        return None, None
    at_window_end = [s["mem_total"] for t, s in window if t <= workload_end + GIVE_BACK_WINDOW][-1]
    done = next((t for t, s in window if t >= workload_end and s["mem_total"] <= boot + 0.1 * grown), None)
    return (max(0.0, min(1.0, (peak - at_window_end) / grown)),
            max(0.0, done - workload_end) if done is not None else math.inf)


def wakeup_rate(window, keep):
    """Context switches per second over the sample intervals whose first sample satisfies keep(sample)."""
    n = seconds = 0
    for (ta, a), (tb, b) in zip(window, window[1:]):
        if "switches" in a and "switches" in b and keep(a):
            n += b["switches"] - a["switches"]
            seconds += tb - ta
    return n / seconds if seconds >= 1 else None


def analyse(result, idle):
    """The metrics of one run: numbers, or None where one does not apply (math.inf: not reached)."""
    mon = result["monitor"]
    origin = next(r["start_us"] for r in mon if r["type"] == "header")
    start_t = result["start"] - origin / 1e6  # on the monitor's axis
    workload_end = result["workload_end"] - origin / 1e6
    end_t = result["end"] - origin / 1e6
    # The contender's context switches ride beside the sample, in the monitor's record.
    window = [(t, dict(r["sample"], **({"switches": r["switches"]} if "switches" in r else {})))
              for t, r in on_axis(mon, origin) if start_t <= t <= end_t]
    boot = result["boot_total"]
    # Footprint while the workload runs: afterwards the boot memory, which no
    # contender can give back, would dominate it.
    running = [s for t, s in window if t <= workload_end] or [s for _, s in window]
    done = resizes(on_axis(records(result["log"]), origin), start_t, end_t)
    daemon = result["before"]["stats"] is not None  # a controller ran: it has a pid
    m = {
        "oom": result["after"]["oom"] - result["before"]["oom"],
        "ok": result["ok"],
        "completion": workload_end - start_t,
        "some_s": (window[-1][1]["some_total_us"] - window[0][1]["some_total_us"]) / 1e6,
        "full_s": (window[-1][1]["full_total_us"] - window[0][1]["full_total_us"]) / 1e6,
        "peak_total": max(s["mem_total"] for _, s in window),
        "avg_total": statistics.mean(s["mem_total"] for s in running),
        "avg_used": statistics.mean(s["mem_total"] - s["mem_available"] for s in running),
    }
    m["footprint"] = m["avg_total"] / m["avg_used"] if m["avg_used"] else None
    to_request, to_online = reactions(window, [r for r in done if r.grow], start_t)
    m["to_request"] = statistics.median(to_request) if to_request else None
    m["to_online"] = statistics.median(to_online) if to_online else None
    observed = daemon and not idle and end_t - workload_end >= GIVE_BACK_WINDOW
    m["returned"], m["give_back_s"] = give_back(window, boot, workload_end) if observed else (None, None)
    if daemon:
        m["resizes"] = len(done)
        m["reversals"] = sum(1 for a, b in zip(done, done[1:]) if a.grow != b.grow)
        # Grows asked for after the workload ended (in idle: any), while nothing needs memory.
        m["regrows"] = sum(1 for r in done if r.grow and (idle or r.requested > workload_end))
        m["wakeups_idle"] = wakeup_rate(window, lambda s: s["mem_total"] <= boot) if idle else None
        m["wakeups_plugged"] = wakeup_rate(window, lambda s: s["mem_total"] > boot)
    b, a = result["before"]["stats"], result["after"]["stats"]
    if b and a:
        m["cpu_s"] = a["cpu"] - b["cpu"]
        m["rss"] = max(a["hwm"], a["Rss"])
        m["private"] = a["Private_Dirty"] + a["Private_Clean"]
    return m


# ---- tables over the runs ----

def num(v, digits):
    return "∞" if v == math.inf else f"{v:.{digits}f}"


def spread(values):
    """(median, min, max, n) of the values that exist, or None."""
    vals = [float(v) for v in values if v is not None]
    return (statistics.median(vals), min(vals), max(vals), len(vals)) if vals else None


@dataclass(frozen=True)
class Measure:
    label: str
    key: str
    digits: int = 2
    unit: str = ""
    scale: float = 1.0
    where: str = "all"  # the scenarios it is shown for: "all", "load" (with a workload) or "idle"

    def shown(self, idle):
        return self.where == "all" or (self.where == "idle") == idle

    def median(self, runs):
        s = spread(m.get(self.key) for m in runs)
        return s[0] * self.scale if s else None

    def format(self, value):
        return num(value, self.digits) + ("" if value == math.inf else self.unit)

    def cell(self, runs):
        """The median with min-max, e.g. "0.12 s (0.08–0.31)"; "-" where no run has the measure."""
        s = spread(m.get(self.key) for m in runs)
        if s is None:
            return "-"
        median, low, high, n = s[0] * self.scale, s[1] * self.scale, s[2] * self.scale, s[3]
        text = self.format(median)
        return text if n == 1 else f"{text} ({num(low, self.digits)}–{num(high, self.digits)})"


class Completed(Measure):
    """Runs whose workload exited 0, as k/N."""

    def cell(self, runs):
        return f"{sum(1 for m in runs if m['ok'])}/{len(runs)}"


MEASURES = [
    Measure("OOM kills", "oom", 0),
    Completed("workload completed", "ok"),
    Measure("workload time", "completion", 1, " s"),
    Measure("PSI stall some", "some_s", 2, " s"),
    Measure("PSI stall full", "full_s", 2, " s"),
    Measure("stall onset -> request (run's median)", "to_request", 0, " ms", 1000, "load"),
    Measure("stall onset -> memory online (run's median)", "to_online", 0, " ms", 1000, "load"),
    Measure("peak guest size", "peak_total", 0, " MiB", 1 / MiB),
    Measure("avg guest size, workload running", "avg_total", 0, " MiB", 1 / MiB, "load"),
    Measure("footprint (avg size / avg used, workload running)", "footprint", 2, "", 1, "load"),
    Measure(f"grown memory back within {GIVE_BACK_WINDOW} s", "returned", 0, " %", 100, "load"),
    Measure("time to give back 90 %", "give_back_s", 1, " s", 1, "load"),
    Measure("idle re-grows", "regrows", 0),
    Measure("successful resizes", "resizes", 0),
    Measure("grow/shrink reversals", "reversals", 0, "", 1, "load"),
    Measure("wakeups while idle at boot size", "wakeups_idle", 2, " /s", 1, "idle"),
    Measure("wakeups while plugged", "wakeups_plugged", 2, " /s", 1, "load"),
    Measure("daemon CPU", "cpu_s", 2, " s"),
    Measure("daemon peak RSS", "rss", 2, " MiB", 1 / MiB),
    Measure("daemon private memory at the end", "private", 2, " MiB", 1 / MiB),
]
MEASURE = {m.key: m for m in MEASURES}


def scenario_table(name, cells, idle):
    """cells: contender name -> the metrics of its runs, in column order."""
    names = list(cells)
    lines = [f"### {name}", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for measure in MEASURES:
        if measure.shown(idle):
            lines.append(f"| {measure.label} | " + " | ".join(measure.cell(cells[c]) for c in names) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    text: str
    key: str
    scenarios: Optional[tuple]  # a row for each; None: one row, for the worst median over all scenarios
    bound: object  # a number (in the measure's unit), or the name of the contender whose median is the bound
    compare: str = "<="  # "<=", "<" or ">="
    contender: str = "vmrd server"
    where_zero: Optional[str] = None  # the row applies only where this contender's median is 0

    def meets(self, value, bound):
        return {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[self.compare]


WORKLOADS = ("ramp", "burst", "sawtooth", "file-cache")
TARGETS = [
    Target("PSI some stall <= the 100 ms poller's", "some_s", ("ramp", "burst", "sawtooth"), "poll 100ms"),
    Target("a steady ramp does not stall: some stall <= 0.2 s", "some_s", ("ramp",), 0.2),
    Target("footprint <= the 1 s poller's", "footprint", ("ramp", "burst", "sawtooth"), "poll 1s"),
    Target("footprint <= 1.15", "footprint", ("ramp", "burst"), 1.15),
    Target(f">= 90 % of grown memory back within {GIVE_BACK_WINDOW} s of the workload's end", "returned",
           WORKLOADS, 90, ">="),
    Target("no idle re-grow", "regrows", None, 0),
    Target("sawtooth grow/shrink reversals <= the 1 s poller's", "reversals", ("sawtooth",), "poll 1s"),
    Target("0 OOM kills where static peak has 0", "oom", WORKLOADS, 0, where_zero="static peak"),
    Target(f"0 OOM kills where static peak has 0 (vmrd {RFC_PRESET})", "oom", WORKLOADS, 0,
           contender=f"vmrd {RFC_PRESET}", where_zero="static peak"),
    Target("0 wakeups while idle at boot size", "wakeups_idle", ("idle",), 0),
    Target("wakeups while plugged < the 1 s poller's", "wakeups_plugged", ("ramp", "burst", "sawtooth"), "poll 1s",
           "<"),
    Target("daemon peak RSS <= 4 MiB", "rss", None, 4),
]


def target_rows(target, cells):
    """Markdown rows for one target; cells: scenario -> contender -> the metrics of its runs."""
    measure = MEASURE[target.key]
    if target.scenarios is None:  # the worst scenario stands for all
        have = [(measure.median(cs[target.contender]), scn) for scn, cs in cells.items()
                if target.contender in cs and measure.median(cs[target.contender]) is not None]
        if not have:
            return []
        worst = min(have) if target.compare == ">=" else max(have)
        return [target_row(target, measure, cells, worst[1], "all (worst: {})".format(worst[1]))]
    return [target_row(target, measure, cells, scn, scn) for scn in target.scenarios if scn in cells]


def target_row(target, measure, cells, scn, label):
    runs = cells[scn].get(target.contender)
    if not runs:
        return f"| {target.text} | {label} | {target.contender}: no run | - | not measured |"
    if target.where_zero:
        other = cells[scn].get(target.where_zero)
        if other is None:
            return f"| {target.text} | {label} | {measure.cell(runs)} | {target.where_zero}: not run | not measured |"
        if measure.median(other) != 0:
            return f"| {target.text} | {label} | {measure.cell(runs)} | {target.where_zero}: {measure.cell(other)} | " \
                   "does not apply |"
    value = measure.median(runs)
    if isinstance(target.bound, str):
        other = cells[scn].get(target.bound)
        bound = measure.median(other) if other else None
        comparator = f"{target.bound}: {measure.cell(other)}" if other else f"{target.bound}: not run"
    else:
        bound, comparator = target.bound, f"{target.compare} {measure.format(target.bound)}"
    if value is None or bound is None:
        return f"| {target.text} | {label} | {measure.cell(runs)} | {comparator} | not measured |"
    if target.meets(value, bound):
        verdict = "met"
        if not isinstance(target.bound, str):
            failed = sum(1 for m in runs if m.get(target.key) is not None
                         and not target.meets(m[target.key] * measure.scale, bound))
            verdict += f" (median; {failed} of {len(runs)} runs missed)" if failed else ""
    elif value == bound:
        verdict = "missed: equal"
    else:
        verdict = f"missed by {measure.format(abs(value - bound))}"
    return f"| {target.text} | {label} | {measure.cell(runs)} | {comparator} | {verdict} |"


def targets_table(cells):
    lines = ["### Targets (medians compared)", "", "| target | scenario | value | comparator | result |",
             "|---|---|---|---|---|"]
    for target in TARGETS:
        lines += target_rows(target, cells)
    return "\n".join(lines)


def report(title, cells, idle_scenarios, notes):
    out = [title, ""] + notes
    for scn, cs in cells.items():
        out += [scenario_table(scn, cs, scn in idle_scenarios), ""]
    out += [targets_table(cells)]
    return "\n".join(out)


# ---- the plan, progress and files ----

@dataclass(frozen=True)
class Run:
    scenario: str
    contender: Contender
    index: int  # 0-based

    def slug(self):
        return f"{self.scenario}-{slug(self.contender.name)}-{self.index + 1}"


def plan(scns, chosen, runs):
    """Every cell's runs, run by run: a slow phase of the shared host then hits every contender alike."""
    return [Run(s, c, i) for i in range(runs) for s, scenario in scns.items() for c in chosen
            if c.applies(s, scenario)]


def mmss(seconds):
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


class Progress:
    """Which run of how many, elapsed time and the time left: the measured expectations, scaled by how
    the runs so far compared with theirs (the host's load)."""

    def __init__(self, runs, scns):
        self.expected = [r.contender.expected_s(scns[r.scenario]) for r in runs]
        self.t0 = time.monotonic()
        self.done = 0

    def total_expected(self):
        return sum(self.expected)

    def start(self, run, runs_per_cell):
        elapsed = time.monotonic() - self.t0
        scale = elapsed / sum(self.expected[:self.done]) if self.done else 1.0
        left = sum(self.expected[self.done:]) * scale
        print(f"[{self.done + 1}/{len(self.expected)}] {run.scenario} / {run.contender.name}, "
              f"run {run.index + 1}/{runs_per_cell}; elapsed {mmss(elapsed)}, about {mmss(left)} left", flush=True)
        self.run_t0 = time.monotonic()

    def end(self):
        self.done += 1
        return time.monotonic() - self.run_t0


def save_run(out_dir, run, mode, idle, result, plot):
    """Writes the run's file and logs; returns the timeline's drawing, started at low priority while the next
    guest boots."""
    with open(os.path.join(out_dir, run.slug() + ".run.json"), "w") as f:
        json.dump({"scenario": run.scenario, "contender": run.contender.name, "run": run.index + 1, "mode": mode,
                   "idle": idle, "result": result}, f)
    logs = []
    for kind, text in (("monitor", "\n".join(json.dumps(x) for x in result["monitor"])), ("log", result["log"])):
        if text.strip():
            path = os.path.join(out_dir, f"{run.slug()}.{kind}.jsonl")
            with open(path, "w") as f:
                f.write(text + "\n")
            logs.append(path)
    return subprocess.Popen([plot, "-o", os.path.join(out_dir, run.slug() + ".png"), "--title",
                             f"{run.scenario}: {run.contender.name}, run {run.index + 1}"] + logs,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(19))


def one_line(m):
    foot = f"{m['footprint']:.2f}" if m["footprint"] else "-"
    return (f"oom {m['oom']}, {'ok' if m['ok'] else 'FAILED'} in {m['completion']:.1f} s, stall "
            f"{m['some_s']:.2f} s, peak {m['peak_total'] / MiB:.0f} MiB, footprint {foot}")


def ordered(cells):
    """Scenarios and contenders in the order they are defined."""
    scn_order = list(scenarios("full")) + [s for s in scenarios("quick") if s not in scenarios("full")]
    names = [c.name for c in CONTENDERS]
    return {s: {c: cells[s][c] for c in sorted(cells[s], key=lambda c: names.index(c) if c in names else 99)}
            for s in sorted(cells, key=lambda s: scn_order.index(s) if s in scn_order else 99)}


def reanalyse(directory):
    """Tables from the *.run.json files a measurement left."""
    cells, idle = {}, set()
    for path in sorted(glob.glob(os.path.join(directory, "*.run.json"))):
        with open(path) as f:
            saved = json.load(f)
        cells.setdefault(saved["scenario"], {}).setdefault(saved["contender"], []).append(
            analyse(saved["result"], saved["idle"]))
        if saved["idle"]:
            idle.add(saved["scenario"])
    if not cells:
        print(f"bench: no *.run.json in {directory}", file=sys.stderr)
        return 1
    print(report(f"## vmrd benchmark, re-analysed from {directory}", ordered(cells), idle, []))
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench.py", description="The vmrd benchmark in real guests.")
    p.add_argument("build")
    p.add_argument("plot")
    p.add_argument("mode", nargs="?", default="full", choices=MODES)
    p.add_argument("scenario", nargs="*", help="scenarios of the mode; all by default")
    p.add_argument("--runs", type=int, help="runs per cell (default: 3, smoke 1)")
    p.add_argument("--contenders", help="comma-separated names, e.g. \"vmrd server,poll 100ms\"; known: " +
                   ", ".join(c.name for c in CONTENDERS))
    p.add_argument("--reanalyse", metavar="DIR", help="print the tables of an earlier measurement's run files")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenario if s not in scenarios(args.mode)]
    if unknown:
        p.error(f"no scenario {', '.join(unknown)} in {args.mode}; it has {', '.join(scenarios(args.mode))}")
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be at least 1")
    if args.contenders:
        wanted = [n.strip() for n in args.contenders.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in [c.name for c in CONTENDERS]]
        if unknown:
            p.error(f"no contender {', '.join(repr(n) for n in unknown)}; known: "
                    f"{', '.join(c.name for c in CONTENDERS)}")
        args.contenders = [c for c in CONTENDERS if c.name in wanted]
    else:
        args.contenders = [c for c in CONTENDERS if args.mode != "smoke" or c.name in SMOKE_CONTENDERS]
    args.runs = args.runs or (1 if args.mode == "smoke" else 3)
    return args


def run_plan(runs, scns, progress, images, work, broker, out_dir, args):
    """Runs the plan; returns the metrics (scenario -> contender -> runs), the failed and the skipped runs, and
    how long runs took."""
    cells, failures, skipped, durations, plots = {}, [], [], {}, []
    try:
        for run in runs:
            scenario = scns[run.scenario]
            progress.start(run, args.runs)
            try:
                result = run_one(images, broker, tempfile.mkdtemp(dir=work), scenario, run.contender)
                plots.append(save_run(out_dir, run, args.mode, scenario.idle, result, args.plot))
                m = analyse(result, scenario.idle)
            except Exception as e:  # one broken run must not lose the others; Skip: what it needs is absent
                (skipped if isinstance(e, Skip) else failures).append(
                    f"{run.scenario} / {run.contender.name} #{run.index + 1}: {e}")
                print(f"    {'skipped' if isinstance(e, Skip) else 'failed'}: {e}", flush=True)
                progress.end()
                continue
            cells.setdefault(run.scenario, {}).setdefault(run.contender.name, []).append(m)
            took = progress.end()
            durations.setdefault((run.scenario, run.contender.daemon), []).append(took)
            print(f"    {took:.0f} s (boot {result['boot_s']:.1f} s): {one_line(m)}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; the tables below cover what ran", flush=True)
    for p in plots:
        p.wait()
    return cells, failures, skipped, durations


def main():
    args = parse_args(sys.argv[1:])
    if args.reanalyse:
        return reanalyse(args.reanalyse)
    build, args.plot = os.path.abspath(args.build), os.path.abspath(args.plot)
    workload = os.path.join(build, "tests", "guest", "guest-workload")
    broker = os.path.join(build, "plugins", "virtio-mem", "broker", "vmrd-broker")
    scns = {k: v for k, v in scenarios(args.mode).items() if not args.scenario or k in args.scenario}
    runs = plan(scns, args.contenders, args.runs)
    if not runs:
        print(f"bench: {', '.join(c.name for c in args.contenders)} run in none of {', '.join(scns)} in "
              f"{args.mode} (bench/README.md says where each runs)", file=sys.stderr)
        return 64
    out_dir = os.path.join(build, "bench", args.mode, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vmrd-bench-")
    try:
        try:
            kernel, initrd, release = build_guest(build, workload, work, "6.1", strip=True)
        except Skip as e:
            print(f"SKIP: {e}")
            return 77  # meson's "skipped"
        except AssertionError as e:
            print(f"bench: cannot build the guest: {e}", file=sys.stderr)
            return 1
        progress = Progress(runs, scns)
        print(f"bench: {len(runs)} runs ({args.runs} per cell), about {mmss(progress.total_expected())} at the "
              f"speed measured for bench/README.md; files in {out_dir}", flush=True)
        cells, failures, skipped, durations = run_plan(runs, scns, progress, {"6.1": (kernel, initrd)}, work, broker,
                                              out_dir, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    took = ", ".join(f"{s} {statistics.median(d):.0f} s" + ("" if daemon else " (static)")
                     for (s, daemon), d in durations.items())
    notes = [f"Guest: Debian kernel {release} under QEMU TCG, 512 MiB at boot, 1 GiB zram, virtio-mem up to 3 GiB "
             f"(gunyah: {GUNYAH_HIDDEN} hidden from the kernel, plugged by the qti_virtio_mem emulation). "
             f"Host: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}. "
             f"{args.runs} run(s) per cell; median (min–max). Took {(time.monotonic() - progress.t0) / 60:.1f} min; "
             f"median run: {took}.", ""]
    text = report(f"## vmrd benchmark ({args.mode}), {time.strftime('%Y-%m-%d')}", ordered(cells),
                  {s for s, v in scns.items() if v.idle}, notes)
    text += "\n\n" + (f"Failed runs: {'; '.join(failures)}\n\n" if failures else "") + \
        (f"Skipped runs: {'; '.join(skipped)}\n\n" if skipped else "") + \
        f"Timelines, logs and run files: {out_dir}/"
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    print("\n" + text, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
