#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Boots real guests under QEMU and runs vmrd in them against a real
# virtio-mem device and the real broker.  Prints TAP.
#
# usage: vmtest.py BUILD_DIR WORKLOAD BROKER [TEST ...]
# Every wait is a condition with a timeout; a failure prints the guest
# console's tail and the daemon's and broker's logs.

import ctypes
import json
import os
import signal
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

MiB = 1 << 20
GiB = 1 << 30
HERE = os.path.dirname(os.path.abspath(__file__))


class Skip(Exception):
    pass


def die_with_parent():
    """In a child: SIGKILL it when the harness dies, so no QEMU or broker outlives a killed test."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def build_guest(build, workload, out, series):
    """Builds the guest for a kernel series (build-guest.sh); returns (kernel, initrd, kernel release)."""
    r = subprocess.run([os.path.join(HERE, "build-guest.sh"), build, workload, out, series],
                       capture_output=True, text=True)
    if r.returncode == 3:
        raise Skip(f"no Debian {series} cloud kernel: {r.stderr.strip()}")
    if r.returncode != 0:
        raise AssertionError(f"building the {series} guest failed:\n{r.stdout}\n{r.stderr}")
    kernel, initrd, release = r.stdout.split()
    return kernel, initrd, release


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


class Qmp:
    """A QMP client for the test itself (the broker has its own socket)."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX)
        wait_for(f"QMP socket {path}", lambda: self._try_connect(path), timeout)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())  # greeting
        self.execute("qmp_capabilities")

    def _try_connect(self, path):
        try:
            self.sock.connect(path)
            return True
        except OSError:
            return False

    def execute(self, command, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")

    def get(self, prop):
        return self.execute("qom-get", path="/machine/peripheral/vm0", property=prop)

    def set_requested(self, size):
        self.execute("qom-set", path="/machine/peripheral/vm0", property="requested-size", value=size)

    def close(self):
        self.sock.close()


class Guest:
    """A QEMU guest with a console command loop, QMP, virtio-mem and a virtio-serial port."""

    def __init__(self, images, work, series="6.1", memory="512M", zram="1G", memhp="online_movable", disk=None):
        self.work = work
        self.series = series
        self.zram = zram
        kernel, initrd = images[series]
        self.qmp_path = os.path.join(work, "qmp-test.sock")
        self.broker_qmp = os.path.join(work, "qmp-broker.sock")
        self.channel = os.path.join(work, "guest-channel.sock")
        accel = "tcg"
        cmd = [
            "qemu-system-x86_64", "-accel", accel, "-m", f"{memory},maxmem=9G", "-smp", "2",
            "-object", "memory-backend-ram,id=vmem0,size=4G",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=2M,requested-size=0",
            "-kernel", kernel, "-initrd", initrd,
            "-append", f"console=ttyS0 memhp_default_state={memhp} psi=1 panic=-1 loglevel=3",
            "-nographic", "-nic", "none", "-no-reboot",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-qmp", f"unix:{self.broker_qmp},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=ch0,path={self.channel},server=on,wait=off",
            "-device", "virtserialport,chardev=ch0,name=org.vmrd.0",
        ]
        if disk:  # read-only, as /dev/vda
            cmd += ["-drive", f"file={disk},if=virtio,format=raw,readonly=on"]
        self.console = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        threading.Thread(target=self._read, daemon=True).start()
        self.seq = 0
        t0 = time.monotonic()
        try:
            self.kernel_release = wait_for("the guest to boot", self._ready, 90)
            self.boot_seconds = time.monotonic() - t0
            self.qmp = Qmp(self.qmp_path)
            if zram:
                self.run(f"echo {zram} > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null"
                         " && swapon /dev/zram0")
        except BaseException:
            print("# guest console:\n# " + "\n# ".join(self.console_tail().splitlines()), flush=True)
            self.proc.kill()
            self.proc.wait()
            raise

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            with self.lock:
                self.console.extend(l.decode(errors="replace").rstrip("\r") for l in lines)
                del self.console[:-20000]

    def _ready(self):
        with self.lock:
            for line in self.console:
                m = re.search(r"@@READY (\S+)@@", line)
                if m:
                    return m.group(1)
        if self.proc.poll() is not None:
            raise AssertionError("QEMU exited during boot")
        return None

    def run(self, command, timeout=60, check=True):
        """Runs a shell command in the guest; returns its output."""
        self.seq += 1
        n = self.seq
        with self.lock:
            start = len(self.console)
        self.proc.stdin.write(f"echo @@BEGIN {n}@@; ( {command} ) </dev/null; echo \"@@DONE {n} $?@@\"\n"
                              .encode())
        self.proc.stdin.flush()

        def done():
            with self.lock:
                lines = self.console[start:]
            for i, line in enumerate(lines):
                m = re.fullmatch(rf"@@DONE {n} (\d+)@@", line)
                if m:
                    begin = next((j for j, l in enumerate(lines) if l == f"@@BEGIN {n}@@"), -1)
                    return int(m.group(1)), "\n".join(lines[begin + 1:i])
            if self.proc.poll() is not None:
                raise AssertionError("QEMU exited")
            return None

        status, output = wait_for(f"guest command `{command}`", done, timeout, 0.02)
        if check and status != 0:
            raise AssertionError(f"guest command `{command}` failed ({status}):\n{output}")
        return output

    def write_file(self, path, text):
        quoted = " ".join("'" + line.replace("'", "'\\''") + "'" for line in text.splitlines())
        self.run(f"printf '%s\\n' {quoted} > {path}")

    def meminfo(self, key):
        return int(self.run(f"awk '/^{key}:/ {{print $2}}' /proc/meminfo")) * 1024

    def vmstat(self, key):
        return int(self.run(f"awk '$1 == \"{key}\" {{print $2}}' /proc/vmstat"))

    def console_tail(self, n=40):
        with self.lock:
            return "\n".join(self.console[-n:])

    def stop(self):
        try:
            self.qmp.execute("quit")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Broker:
    def __init__(self, exe, work, guest, max_size=3 * GiB, reserve="256M"):
        self.exe = exe
        self.config = os.path.join(work, "broker.yaml")
        self.log_path = os.path.join(work, "broker.log")
        with open(self.config, "w") as f:
            f.write(f"""version: 1
host:
  reserve: {reserve}
  requests_per_second: 20
vms:
  - name: test
    qmp: {guest.broker_qmp}
    device: vm0
    channel: {guest.channel}
    min: 0
    max: {max_size}
""")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.exe, "--config", self.config], stdout=self.log, stderr=self.log,
                                     preexec_fn=die_with_parent)
        wait_for("the broker to connect to QEMU", lambda: "guest channel connected" in self.text(), 15)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.log.close()


DAEMON_CONFIG = """version: 1
backend:
  name: virtio-mem
policy:
  preset: server
  shrink_idle: 5s
  cooldown: 3s
{extra}
"""


class Case:
    """One test: a guest, optionally a broker, and vmrd in the guest."""

    def __init__(self, ctx, series="6.1", zram="1G", broker=True, max_size=3 * GiB, memory="512M",
                 memhp="online_movable"):
        self.ctx = ctx
        self.work = tempfile.mkdtemp(prefix="vmrd-guest-", dir=ctx.work)
        self.guest = Guest(ctx.images, self.work, series=series, zram=zram, memory=memory, memhp=memhp)
        self.broker = None
        try:
            if broker:
                self.broker = Broker(ctx.broker, self.work, self.guest, max_size=max_size)
        except BaseException:
            self.guest.stop()
            raise

    def start_vmrd(self, extra="", config=None):
        """Starts vmrd with DAEMON_CONFIG plus `extra`, or with `config` whole."""
        self.guest.write_file("/etc/vmrd/vmrd.yaml", config or DAEMON_CONFIG.format(extra=extra))
        self.guest.run("vmrd --config /etc/vmrd/vmrd.yaml > /tmp/vmrd.log 2>&1 &")
        wait_for("vmrd to start", lambda: "running with backend" in self.vmrd_log(), 20, 0.2)

    def vmrd_log(self):
        return self.guest.run("cat /tmp/vmrd.log 2>/dev/null", check=False)

    def vmrd_alive(self):
        return self.guest.run("pidof vmrd", check=False).strip() != ""

    def size(self):
        return self.guest.qmp.get("size")

    def diagnostics(self):
        out = [f"--- guest console (kernel {self.guest.kernel_release}), last lines:", self.guest.console_tail()]
        try:
            out += ["--- vmrd log in the guest:", self.vmrd_log()[-6000:]]
        except Exception as e:
            out.append(f"(vmrd log unavailable: {e})")
        if self.broker:
            out += ["--- broker log:", self.broker.text()[-4000:]]
        return "\n".join(out)

    def close(self):
        if self.broker:
            self.broker.stop()
        self.guest.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    # `with Case(ctx) as c:` records the diagnostics of a failure and always
    # stops the guest and the broker.
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self.ctx.fail_details(self.diagnostics())
        self.close()
        return False


# ---------------------------------------------------------------- the tests

def test_pressure_grows_and_gives_back(ctx):
    """1 and 2: a workload beyond boot memory grows the guest; afterwards memory goes back, no idle re-grow."""
    with Case(ctx) as c:
        c.start_vmrd(extra="daemon:\n  trace: /tmp/trace.jsonl")
        total0 = c.guest.meminfo("MemTotal")
        # 1.2 GiB touched over 12 s on a 512 MiB guest with 1 GiB of zram.
        out = c.guest.run("workload 1200 12000 3000", timeout=240)
        assert "workload: ok" in out, out
        grown = c.guest.vmstat("oom_kill")
        assert grown == 0, f"{grown} OOM kills"
        log = c.vmrd_log()
        assert "decision: plug" in log, "vmrd never plugged:\n" + log
        plugs = re.findall(r"plug of (\S+ \S+) finished in \S+: (\S+ \S+) plugged", log)
        assert plugs, "no plug finished:\n" + log
        ctx.note(f"grew to {plugs[-1][1]} in {len(plugs)} plug(s); MemTotal at boot {total0 // MiB} MiB")
        # 2: give-back after the workload ended.
        t0 = time.monotonic()
        wait_for("memory to go back near the floor", lambda: c.size() <= 256 * MiB, 120, 0.5)
        ctx.note(f"gave back to {c.size() // MiB} MiB in {time.monotonic() - t0:.1f}s after the workload ended")
        settled = c.size()
        time.sleep(10)
        assert c.size() <= settled, f"re-grew while idle: {settled // MiB} -> {c.size() // MiB} MiB"
        assert c.guest.vmstat("oom_kill") == 0
        ctx.save_trace(c, "guest-6.1-server.jsonl")


def vmrd_status(c):
    """vmrdctl status --json in the guest (on one line: the console may interleave kernel messages)."""
    out = c.guest.run("vmrdctl status --json | tr -d '\\n'; echo")
    line = next((l for l in out.splitlines() if l.startswith("{") and l.endswith("}")), None)
    assert line, f"no status from vmrdctl:\n{out}"
    return json.loads(line)


def vmrd_settled(c, timeout=120):
    """Waits until vmrd has no call in flight; its status then."""
    def idle():
        s = vmrd_status(c)
        return s if s["backend"]["in_flight"] is None else None
    return wait_for("vmrd's call to finish", idle, timeout, 0.3)


def vmrdctl_resize(c, command, size, timeout=120):
    """vmrdctl grow/shrink, retried while a decision of vmrd's own is in flight; the status after it."""
    def asked():
        out = c.guest.run(f"vmrdctl {command} {size} 2>&1", check=False)
        return out if "in flight" not in out else None
    out = wait_for(f"vmrdctl {command} {size} to be taken", asked, timeout, 0.3)
    assert "vmrdctl: " not in out, out
    return vmrd_settled(c, timeout)


def kernel_complaints(c):
    """Lines of the guest's kernel log that mean memory went wrong."""
    return c.guest.run("dmesg | grep -E 'Bad page|BUG:|Oops|general protection' || true")


def test_data_integrity_through_resizes(ctx):
    """3: 50 shrink/grow cycles through vmrd under checksummed memory: 0 bad pages, 0 OOM kills."""
    # The workload's pages are allocated after a first grow, so they sit in
    # the plugged (movable) memory, and shrinks migrate some of them.
    # vmrdctl drives the cycles; they go through the daemon, the backend,
    # the broker and QMP to the guest driver, like any resize.  vmrd's own
    # idle shrink waits 10 min, so it does not get in between.
    cycles = 50
    with Case(ctx) as c:
        c.start_vmrd(config="version: 1\nbackend: {name: virtio-mem}\n"
                            "policy: {preset: server, shrink_idle: 10m, backoff_max: 10m}\nlimits: {min_interval: 0s}")
        vmrdctl_resize(c, "grow", "1G")
        # 600 MiB cannot all fit below the top 512 MiB of the plugged GiB.
        c.guest.run("workload 600 0 3600000 > /tmp/work.log 2>&1 &")
        wait_for("the workload to touch its memory",
                 lambda: "touched" in c.guest.run("cat /tmp/work.log"), 120, 0.5)
        short = 0
        migrated0 = c.guest.vmstat("pgmigrate_success")
        t0 = time.monotonic()
        for cycle in range(cycles):
            before = vmrd_status(c)["backend"]["plugged"]
            shrunk = vmrdctl_resize(c, "shrink", "512M")["backend"]["plugged"]
            if before - shrunk < 512 * MiB:
                short += 1
            if before > shrunk:
                vmrdctl_resize(c, "grow", f"{(before - shrunk) // MiB}M")
        elapsed = time.monotonic() - t0
        migrated = c.guest.vmstat("pgmigrate_success") - migrated0
        assert migrated > 0, "no page was migrated: the shrinks never touched the workload's memory"
        c.guest.run("kill -TERM $(pidof workload)")
        out = wait_for("the workload's verdict",
                       lambda: (lambda t: t if "pages checked" in t else None)(c.guest.run("cat /tmp/work.log")),
                       200, 1)
        assert "workload: ok" in out and " 0 bad" in out, out
        kills = c.guest.vmstat("oom_kill")
        assert kills == 0, f"{kills} OOM kills"
        complaints = kernel_complaints(c)
        assert not complaints.strip(), "the guest kernel complained:\n" + complaints
        status = vmrd_settled(c)
        assert status["backend"]["plugged"] == c.size(), f"vmrd books {status['backend']['plugged']}, QEMU {c.size()}"
        calls = dict(re.findall(r'vmrd_backend_calls_total\{action="(\w+)"\} (\d+)', c.guest.run("vmrdctl metrics")))
        assert int(calls.get("unplug", 0)) >= cycles, calls
        ctx.note(f"{cycles} cycles of vmrdctl shrink/grow 512M in {elapsed:.0f}s; {short} shrinks stopped short "
                 f"(memory in use); {migrated} pages migrated; backend calls {calls}; {out.splitlines()[-1]}; 0 OOM kills")


def test_restart_reconciliation(ctx):
    """SIGKILL vmrd mid-resize, then the broker mid-request: after restarts, sizes agree and stay in bounds."""
    limit = 1536 * MiB
    with Case(ctx, max_size=2 * GiB) as c:
        c.start_vmrd(extra=f"limits:\n  min_interval: 0s\n  max: {limit // MiB}M")

        def agreed(what):
            """vmrd's books, the device and what was requested agree, within limits.max."""
            def check():
                s = vmrd_status(c)
                size, requested = c.size(), c.guest.qmp.get("requested-size")
                if s["backend"]["connected"] and s["backend"]["in_flight"] is None and \
                        s["backend"]["plugged"] == size == requested:
                    return s
                return None
            s = wait_for(f"vmrd and QEMU to agree {what}", check, 90, 0.5)
            assert s["backend"]["plugged"] <= limit, f"{what}: {s['backend']['plugged']} above limits.max"
            return s["backend"]["plugged"]

        # The daemon: killed while its plug of 1 GiB is in flight.
        c.guest.run("vmrdctl grow 1G")
        in_flight = vmrd_status(c)["backend"]["in_flight"]
        c.guest.run("kill -9 $(pidof vmrd)")
        wait_for("vmrd to die", lambda: not c.vmrd_alive(), 10, 0.2)
        c.start_vmrd(extra=f"limits:\n  min_interval: 0s\n  max: {limit // MiB}M")
        after_daemon = agreed("after the daemon's restart")
        # It carries on: a grow beyond limits.max is capped there.
        s = vmrdctl_resize(c, "grow", "1G")
        assert s["backend"]["plugged"] == limit, s["backend"]
        agreed("after a grow to limits.max")

        # The broker: killed right after the guest's request to shrink.
        c.guest.run("vmrdctl shrink 1G")
        c.broker.stop(9)
        time.sleep(1)
        c.broker.start()
        after_broker = agreed("after the broker's restart")
        vmrdctl_resize(c, "grow", "256M")
        final = agreed("after one more grow")
        assert c.guest.vmstat("oom_kill") == 0
        ctx.note(f"vmrd killed with {in_flight or 'nothing'} in flight: {after_daemon // MiB} MiB agreed after "
                 f"restart; broker killed mid-shrink: {after_broker // MiB} MiB agreed; then {final // MiB} MiB")


def test_hostile_guest(ctx):
    """4: malformed, oversized, huge and negative requests and floods: the broker answers and stays within max."""
    with Case(ctx, max_size=1 * GiB) as c:
        port = "/dev/virtio-ports/org.vmrd.0"
        lines = [
            "not json",
            "{\"v\":1,\"id\":1,\"type\":\"resize\",\"target\":-5}",
            "{\"v\":1,\"id\":2,\"type\":\"resize\",\"target\":1152921504606846976}",
            "{\"v\":1,\"id\":3,\"type\":\"resize\",\"target\":99999999999999999999999}",
            "{\"v\":2,\"id\":4,\"type\":\"hello\"}",
            "{\"v\":1,\"id\":5,\"type\":\"resize\",\"target\":\"4G\"}",
            "{\"v\":1,\"id\":6,\"type\":\"shutdown\"}",
            "{\"v\":1,\"id\":7,\"type\":\"resize\",\"target\":1099511627776}",
        ]
        script = " ".join("'" + l.replace("'", "'\\''") + "'" for l in lines)
        c.guest.run(f"exec 3<>{port}; printf '%s\\n' {script} >&3; "
                    f"head -c 3000 /dev/zero | tr '\\0' x >&3; echo >&3; "
                    f"i=0; while [ $i -lt 200 ]; do echo '{{\"v\":1,\"id\":9,\"type\":\"resize\",\"target\":8589934592}}' >&3; i=$((i+1)); done; "
                    f"timeout 3 cat <&3 > /tmp/replies; exec 3>&-", timeout=60, check=False)
        replies = c.guest.run("cat /tmp/replies")
        for code in ("bad-json", "bad-request", "bad-version", "too-long", "rate-limited"):
            assert f"\"error\":\"{code}\"" in replies, f"no {code} reply in:\n{replies[:3000]}"
        assert c.broker.alive(), "the broker died"
        requested = c.guest.qmp.get("requested-size")
        assert requested <= 1 * GiB, f"requested-size {requested} beyond the VM's max"
        granted = re.findall(r"\"id\":7.*?\"requested\":(\d+)", replies)
        assert granted and int(granted[0]) <= 1 * GiB, f"1 TiB ask not clamped: {granted}"
        ctx.note(f"broker alive; requested-size {requested // MiB} MiB (max 1024)")


def test_broker_absent_then_restarted(ctx):
    """5: vmrd runs without a broker, catches up when it starts, and again after it is killed and restarted."""
    with Case(ctx, broker=False) as c:
        c.start_vmrd()
        assert "not connected" in c.vmrd_log() or "no reply" in c.vmrd_log(), c.vmrd_log()
        out = c.guest.run("workload 700 2000 0", timeout=240)
        assert "workload: ok" in out
        assert c.vmrd_alive(), "vmrd died without a broker:\n" + c.vmrd_log()
        assert c.size() == 0
        c.broker = Broker(ctx.broker, c.work, c.guest)
        out = c.guest.run("workload 1000 3000 2000", timeout=240)
        wait_for("growth once the broker is there", lambda: c.size() > 0, 60, 0.5)
        c.broker.stop(9)
        c.broker.start()
        before = c.size()
        out = c.guest.run("workload 1400 3000 2000", timeout=240)
        assert "workload: ok" in out, out
        assert c.vmrd_alive(), c.vmrd_log()
        ctx.note(f"device {before // MiB} MiB before the broker restart, {c.size() // MiB} MiB after")


def test_broker_survives_qemu_restart(ctx):
    """The broker reconnects to QMP and the channel when QEMU restarts, and serves the new guest."""
    with Case(ctx) as c:
        c.start_vmrd()
        c.guest.run("workload 900 6000 0", timeout=240)
        wait_for("growth in the first QEMU", lambda: c.size() > 0, 30, 0.5)
        c.guest.stop()
        wait_for("the broker to notice", lambda: "QEMU closed QMP" in c.broker.text(), 15, 0.2)
        c.guest = Guest(ctx.images, c.work)
        wait_for("the broker to reconnect", lambda: c.broker.text().count("guest channel connected") >= 2, 15, 0.2)
        c.start_vmrd()
        out = c.guest.run("workload 900 6000 0", timeout=240)
        assert "workload: ok" in out, out
        wait_for("growth in the restarted QEMU", lambda: c.size() > 0, 30, 0.5)
        assert c.broker.alive()
        ctx.note(f"after the restart the device grew to {c.size() // MiB} MiB through the same broker")


def test_psi_windows_on_both_kernels(ctx):
    """6: the embedded preset's 50 ms window falls back to 500 ms on 6.1 and is taken as is on 6.12; both grow."""
    for series, expect_fallback in (("6.1", True), ("6.12", False)):
        with Case(ctx, series=series) as c:
            c.start_vmrd(config="version: 1\nbackend: {name: virtio-mem}\npolicy: {preset: embedded}\n"
                                "limits: {min_interval: 0s}")
            log = c.vmrd_log()
            fell_back = "refused by the kernel" in log and "armed some 50ms/500ms" in log
            assert fell_back == expect_fallback, f"{series}: fallback {fell_back}, expected {expect_fallback}:\n{log}"
            c.guest.run("workload 800 3000 1000", timeout=240)
            wait_for("growth", lambda: c.size() > 0, 30, 0.5)
            ctx.note(f"{series} ({c.guest.kernel_release}): fallback {fell_back}, grew to {c.size() // MiB} MiB")


def test_guard_without_swap(ctx):
    """issue 3: without swap, memory.high on the workload's cgroup turns OOM kills into pressure, and vmrd grows."""
    with Case(ctx, zram=None) as c:
        c.guest.run("echo +memory > /sys/fs/cgroup/cgroup.subtree_control && mkdir /sys/fs/cgroup/work")
        c.start_vmrd(extra="psi:\n  cgroups: [/sys/fs/cgroup/work/memory.pressure]\n"
                           "guard:\n  cgroup: /sys/fs/cgroup/work\n  margin: 192M")
        out = c.guest.run("sh -c 'echo $$ > /sys/fs/cgroup/work/cgroup.procs && exec workload 900 9000 1000'", timeout=300,
                          check=False)
        kills = c.guest.vmstat("oom_kill")
        assert "workload: ok" in out and kills == 0, f"{kills} OOM kills:\n{out}"
        ctx.note(f"no OOM kill; device grew to {c.size() // MiB} MiB")
        # The cgroup goes away (EPOLLERR on its PSI fd) and comes back.
        c.guest.run("rmdir /sys/fs/cgroup/work")
        wait_for("vmrd to notice the cgroup is gone", lambda: "went away" in c.vmrd_log(), 15, 0.5)
        c.guest.run("mkdir /sys/fs/cgroup/work")
        wait_for("vmrd to re-arm the cgroup's trigger", lambda: "is back; trigger re-armed" in c.vmrd_log(), 20, 0.5)
        assert c.vmrd_alive(), c.vmrd_log()


def unit_capabilities():
    """The CapabilityBoundingSet= of the shipped vmrd.service."""
    with open(os.path.join(HERE, "..", "..", "config", "vmrd.service.in")) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                return line.split("=", 1)[1].split()
    raise AssertionError("config/vmrd.service.in has no CapabilityBoundingSet=")


def test_service_view(ctx):
    """issue 6: vmrd with only vmrd.service's capabilities, on 6.12 (short PSI windows need CAP_SYS_RESOURCE) with
    hotplug offline by default, which vmrd fixes through sysfs; vmrdctl status, events and metrics, HTTP /metrics,
    and the event log drawn by vmrd-plot."""
    caps = unit_capabilities()
    config = DAEMON_CONFIG.format(extra="daemon:\n  online_movable: true\n  trace: /tmp/events.jsonl\n"
                                        "control:\n  http: 127.0.0.1:9560")
    # What a missing capability shows as in vmrd's log.
    missing = ("refused by the kernel", "mlockall failed", "oom_score_adj: cannot set")
    with Case(ctx, series="6.12", memhp="offline") as c:
        c.guest.write_file("/etc/vmrd/vmrd.yaml", config)
        c.guest.run("ip link set lo up")

        def start(caps, log):
            c.guest.run(f"capexec {caps} /usr/local/sbin/vmrd --config /etc/vmrd/vmrd.yaml > {log} 2>&1 &")
            wait_for("vmrd to start", lambda: "running with backend" in c.guest.run(f"cat {log}"), 20, 0.2)
            return c.guest.run(f"cat {log}")

        # Without any capability each one is missed and said so: the check below can fail.
        log = start("none", "/tmp/nocaps.log")
        for m in missing:
            assert m in log, f"without capabilities, expected '{m}' in:\n{log}"
        c.guest.run("kill $(pidof vmrd)")
        wait_for("vmrd to stop", lambda: not c.vmrd_alive(), 10, 0.2)
        # That run set the onlining policy already: undo it, for the real run to do.
        c.guest.run("echo offline > /sys/devices/system/memory/auto_online_blocks")

        log = start(",".join(caps), "/tmp/vmrd.log")
        for m in missing:
            assert m not in log, f"with {caps}: '{m}' in:\n{log}"
        assert c.guest.run("cat /sys/devices/system/memory/auto_online_blocks").strip() == "online_movable"

        c.guest.run("vmrdctl events > /tmp/events.txt 2>&1 &")
        out = c.guest.run("workload 900 6000 2000", timeout=240)
        assert "workload: ok" in out, out
        wait_for("growth", lambda: c.size() > 0, 30, 0.5)
        assert c.guest.vmstat("oom_kill") == 0
        online = c.guest.run("cat /sys/devices/system/memory/memory*/valid_zones | grep -c '^Movable'",
                             check=False).strip()
        assert online != "0", "no memory block was onlined to ZONE_MOVABLE"

        # vmrdctl's view agrees with the device, as QEMU reports it.
        def agrees():
            status = json.loads(c.guest.run("vmrdctl status --json"))
            return status if status["backend"]["plugged"] == c.size() else None
        status = wait_for("vmrdctl status to match the device's size", agrees, 30, 0.5)
        assert status["backend"]["name"] == "virtio-mem" and status["psi"][0]["trigger"] == "some 100ms/1s"
        metrics = c.guest.run("vmrdctl metrics")
        plugs = int(re.search(r'^vmrd_backend_calls_total\{action="plug"\} (\d+)$', metrics, re.M).group(1))
        psi = sum(int(n) for n in re.findall(r'^vmrd_psi_events_total\{.*\} (\d+)$', metrics, re.M))
        assert plugs >= 1 and psi >= 1, metrics
        scraped = c.guest.run("wget -q -O - http://127.0.0.1:9560/metrics")
        assert f'vmrd_backend_calls_total{{action="plug"}} {plugs}' in scraped, scraped
        events = c.guest.run("cat /tmp/events.txt")
        assert "decision  plug" in events and "result    plug" in events, events
        assert c.guest.run("vmrdctl reclaim", check=False).strip(), "vmrdctl reclaim said nothing"
        ctx.note(f"with {' '.join(caps)} only: {plugs} plug(s), {psi} PSI event(s), device at {c.size() // MiB} MiB")

        # The event log, drawn on the host.
        plot = os.path.join(HERE, "..", "..", "tools", "vmrd-plot")
        if shutil.which("gnuplot"):
            path = os.path.join(c.work, "events.jsonl")
            with open(path, "w") as f:
                f.write(c.guest.run("cat /tmp/events.jsonl") + "\n")
            r = subprocess.run([plot, "-o", path + ".png", path], capture_output=True, text=True)
            assert r.returncode == 0 and os.path.getsize(path + ".png") > 20000, r.stderr
            ctx.note("vmrd-plot: " + r.stdout.strip().split(": ", 1)[1])
        else:
            ctx.note("gnuplot absent: the event log was not drawn (./run test installs gnuplot-nox)")


TESTS = [
    test_pressure_grows_and_gives_back,
    test_data_integrity_through_resizes,
    test_restart_reconciliation,
    test_hostile_guest,
    test_broker_absent_then_restarted,
    test_broker_survives_qemu_restart,
    test_psi_windows_on_both_kernels,
    test_guard_without_swap,
    test_service_view,
]


class Context:
    def __init__(self, build, workload, broker):
        self.build = build
        self.workload = workload
        self.broker = broker
        self.work = tempfile.mkdtemp(prefix="vmrd-vmtest-")
        self.images = {}
        self.details = []
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    def fail_details(self, text):
        self.details.append(text)

    def save_trace(self, case, name):
        text = case.guest.run("cat /tmp/trace.jsonl", check=False)
        path = os.path.join(self.build, "meson-logs", name)
        with open(path, "w") as f:
            f.write(text + "\n")
        self.note(f"trace saved to {path}")

    def prepare(self):
        for tool in ("qemu-system-x86_64", "cpio", "depmod", "xz"):
            if not shutil.which(tool) and not os.path.exists(f"/sbin/{tool}"):
                raise Skip(f"{tool} is not installed (./run test installs it)")
        if not os.path.exists("/bin/busybox"):
            raise Skip("busybox-static is not installed")
        for series in ("6.1", "6.12"):
            kernel, initrd, _ = build_guest(self.build, self.workload, os.path.join(self.work, "images"), series)
            self.images[series] = (kernel, initrd)


def main():
    build, workload, broker = sys.argv[1:4]
    wanted = sys.argv[4:]
    tests = [t for t in TESTS if not wanted or t.__name__ in wanted]
    ctx = Context(os.path.abspath(build), os.path.abspath(workload), os.path.abspath(broker))
    print(f"1..{len(tests)}", flush=True)
    try:
        ctx.prepare()
    except Skip as e:
        for i, t in enumerate(tests, 1):
            print(f"ok {i} - {t.__name__} # SKIP {e}", flush=True)
        return 0
    failed = 0
    for i, t in enumerate(tests, 1):
        ctx.notes, ctx.details = [], []
        t0 = time.monotonic()
        try:
            t(ctx)
            status = f"ok {i} - {t.__name__}"
        except Exception as e:
            failed += 1
            status = f"not ok {i} - {t.__name__}"
            print("# " + "\n# ".join(traceback.format_exc().splitlines()))
            for d in ctx.details:
                print("# " + "\n# ".join(d.splitlines()))
        for n in ctx.notes:
            print(f"# {n}")
        print(f"{status} ({time.monotonic() - t0:.0f}s)", flush=True)
    shutil.rmtree(ctx.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
