#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The broker's libvirt driver against a real libvirtd (started by the
# harness, without systemd) and real guests as its domains.  Prints TAP.
#
# usage: test_libvirt.py BUILD_DIR WORKLOAD BROKER [TEST ...]

import re
import shutil
import sys
import tempfile

from vmlab import DAEMON_CONFIG, GiB, MiB, Broker, run_tap, wait_for
from vmlab.libvirt import Domain, Libvirtd

# vmrd's own element in a domain's <metadata>: the range the broker gives it.
METADATA = "<vmrd:vm xmlns:vmrd='urn:vmrd:domain:1' min='0' max='{max}'/>"


class LibvirtCase:
    """A libvirtd, its domains and a broker with the libvirt driver; close() ends them all."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.work = tempfile.mkdtemp(prefix="vmrd-libvirt-", dir=ctx.work)
        self.libvirtd = Libvirtd(self.work)
        self.domains = []
        self.broker = None

    def domain(self, name, max_size):
        d = Domain(self.libvirtd, self.ctx.images, self.work, name, metadata=METADATA.format(max=max_size))
        self.domains.append(d)
        return d

    def start_broker(self, host=""):
        """A broker that serves every domain of the libvirtd, with `host` added to its host section."""
        self.broker = Broker(self.ctx.broker, self.work, config=f"""version: 1
host:
  driver: libvirt
  libvirt: {self.libvirtd.uri}
  reserve: 256M
  requests_per_second: 20
{host}""")

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            out = []
            for d in self.domains:
                out += [f"--- domain {d.name}: console, last lines:", d.console_tail()]
                try:
                    out += [f"--- vmrd log in {d.name}:", d.vmrd_log()[-4000:]]
                except Exception as e:
                    out.append(f"(vmrd log unavailable: {e})")
            if self.broker:
                out += ["--- broker log:", self.broker.text()[-4000:]]
            out += ["--- libvirtd log:", self.libvirtd.text()[-2000:]]
            self.ctx.fail_details("\n".join(out))
        if self.broker:
            self.broker.stop()
        for d in self.domains:
            d.stop()
        self.libvirtd.close()
        shutil.rmtree(self.work, ignore_errors=True)
        return False


def test_libvirt_driver(ctx):
    """Issue 15: a broker told only libvirtd's URI finds the domain by its XML, grows it under pressure within
    the max of vmrd's metadata, and gives it back after libvirtd restarted under it; the domain stopped is let
    go, and served again when it starts.  `virsh dumpxml` shows each size the broker set."""
    with LibvirtCase(ctx) as c:
        g = c.domain("g1", 2 * GiB)
        c.start_broker()
        assert "found in libvirt: device virtiomem0" in c.broker.text(), c.broker.text()
        g.start_vmrd(DAEMON_CONFIG.format(extra=""))
        out = g.run("workload 1200 12000 3000", timeout=240)
        assert "workload: ok" in out, out
        assert g.vmstat("oom_kill") == 0
        current, requested = g.device()
        assert 0 < requested <= 2 * GiB, f"requested {requested // MiB} MiB, outside 0..2048 MiB"
        log = g.vmrd_log()
        plugged = re.findall(r"plug of \S+ \S+ finished in \S+: (\S+) (\S+) plugged", log)
        assert plugged, log
        ctx.note(f"grew through libvirt: dumpxml current {current // MiB} MiB, requested {requested // MiB} MiB")

        c.libvirtd.restart()
        wait_for("the broker to reconnect to libvirt",
                 lambda: c.broker.text().count("vm g1: connected to its device") >= 2, 30, 0.2)
        wait_for("the memory to go back through the restarted libvirtd", lambda: g.size() <= 256 * MiB, 120, 0.5)
        current, requested = g.device()
        assert current == requested, f"dumpxml: current {current} != requested {requested}"
        ctx.note(f"after the libvirtd restart gave back to {current // MiB} MiB (dumpxml current = requested)")

        g.destroy()
        wait_for("the broker to let the stopped domain go",
                 lambda: "vm g1: its domain is no longer running" in c.broker.text(), 30, 0.2)
        g.start()
        wait_for("the broker to serve the domain again",
                 lambda: c.broker.text().count("guest channel connected") >= 2, 30, 0.2)
        assert c.broker.text().count("vm g1: found in libvirt") == 2, c.broker.text()
        g.start_vmrd(DAEMON_CONFIG.format(extra=""))
        out = g.run("workload 900 6000 0", timeout=240)
        assert "workload: ok" in out, out
        wait_for("growth in the restarted domain", lambda: g.device()[1] > 0, 30, 0.5)
        assert c.broker.alive()
        ctx.note(f"the restarted domain grew to {g.device()[1] // MiB} MiB through the same broker")


def test_three_guests_under_a_budget(ctx):
    """Issue 15: three domains under one broker with a budget smaller than what two of them want at once.  The
    third holds half the budget and idles, its own policy set to keep it for 10 minutes.  When the two busy ones
    run short, the broker asks it to give back and it does; the two's total never passes the budget, each stays
    within its range, and the budget ends split between them within a block."""
    budget, block, max_size = 1 * GiB, 2 * MiB, 2 * GiB
    with LibvirtCase(ctx) as c:
        guests = [c.domain(f"g{i}", max_size) for i in (1, 2, 3)]
        c.start_broker(host="  budget: 1G\n")
        wait_for("the broker to reach all three guests",
                 lambda: c.broker.text().count("guest channel connected") >= 3, 30, 0.2)
        busy, idle = guests[:2], guests[2]
        for g in busy:
            g.start_vmrd(DAEMON_CONFIG.format(extra=""))
        idle.start_vmrd(DAEMON_CONFIG.format(extra="policy: {preset: server, shrink_hold: 10m, backoff_max: 10m}"))
        idle.run("vmrdctl grow 512M")
        wait_for("the idle guest to hold 512 MiB", lambda: idle.device() == (512 * MiB, 512 * MiB), 60, 0.5)
        for g in busy:
            g.run("(workload 1100 15000 8000; echo \"workload exited $?\") > /tmp/workload.log 2>&1 &")
        fair = []
        worst = 0

        def sample():
            nonlocal worst
            r = [g.device()[1] for g in busy]
            total = sum(r) + idle.device()[1]
            assert total <= budget, f"requested {[x // MiB for x in r]} MiB + idle: {total // MiB} MiB over the budget"
            assert all(x <= max_size for x in r), f"requested {r} beyond the max"
            worst = max(worst, total)
            if sum(r) >= budget - 2 * block:
                fair.append(abs(r[0] - r[1]))
            return all("workload exited" in g.run("cat /tmp/workload.log", check=False) for g in busy)

        wait_for("both workloads to end", sample, 300, 0.5)
        for g in busy:
            out = g.run("cat /tmp/workload.log")
            assert "workload: ok" in out, f"{g.name}: {out}"
        assert "vm g3: asking the guest to give back" in c.broker.text(), "the idle guest was never asked"
        assert "the host asks for memory back" in idle.vmrd_log(), idle.vmrd_log()
        kept = idle.device()[1]
        assert kept < 512 * MiB, f"the idle guest kept all of its {kept // MiB} MiB"
        assert fair, f"the budget was never used up by the two (peak {worst // MiB} MiB of {budget // MiB})"
        assert fair[-1] <= block, f"the shares ended {fair[-1] // MiB} MiB apart, more than a block"
        ctx.note(f"the idle guest, asked, went from 512 to {kept // MiB} MiB; peak total {worst // MiB} MiB of a "
                 f"{budget // MiB} MiB budget; once the two used it up their shares were at most "
                 f"{max(fair) // MiB} MiB apart over {len(fair)} samples, {fair[-1] // MiB} MiB at the end")


TESTS = [
    test_libvirt_driver,
    test_three_guests_under_a_budget,
]


if __name__ == "__main__":
    sys.exit(run_tap(TESTS, sys.argv[1:]))
