# SPDX-License-Identifier: MIT
# A test guest: its images built from Debian packages, QEMU booting them, and a shell on the console.

import os
import re
import subprocess
import threading
import time

from .qmp import Qmp
from .util import MiB, Skip, die_with_parent, mib, wait_for

# build-guest.sh and the guest's init sit next to the package, in tests/guest.
GUEST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_guest(build, workload, out, series, strip=False):
    """Builds the guest for a kernel series (build-guest.sh); returns (kernel, initrd, kernel release).
    strip: programs without debug info (faster boots, more free memory in the guest)."""
    r = subprocess.run([os.path.join(GUEST_DIR, "build-guest.sh"), build, workload, out, series]
                       + (["strip"] if strip else []), capture_output=True, text=True)
    if r.returncode == 3:
        raise Skip(f"no Debian {series} cloud kernel: {r.stderr.strip()}")
    if r.returncode != 0:
        raise AssertionError(f"building the {series} guest failed:\n{r.stdout}\n{r.stderr}")
    kernel, initrd, release = r.stdout.split()
    return kernel, initrd, release


def build_rootfs(out, workload, debs):
    """Builds the systemd guest's disk image (build-rootfs.sh) with the .debs to install in it; returns its path
    and how long that took."""
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(GUEST_DIR, "build-rootfs.sh"), out, workload] + debs,
                       capture_output=True, text=True)
    if r.returncode == 3:
        raise Skip(r.stderr.strip())
    if r.returncode != 0:
        raise AssertionError(f"building the systemd guest's disk failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout.strip(), time.monotonic() - t0


class Console:
    """A shell on a guest's serial console: the guest's init (tests/guest/init) runs each line it reads and
    marks its output.  Guest and libvirt's Domain attach it to their QEMU's serial line."""

    def _attach(self, read, write, exited):
        """read() returns the next bytes (b"" at the end), write(bytes) sends, exited() says QEMU is gone."""
        self.console = []
        self.lock = threading.Lock()
        self.seq = 0
        self._write = write
        self._exited = exited
        threading.Thread(target=self._read, args=(read,), daemon=True).start()

    def _read(self, read):
        buf = b""
        while True:
            try:
                chunk = read()
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            with self.lock:
                self.console.extend(l.decode(errors="replace").rstrip("\r") for l in lines)
                del self.console[:-20000]

    def _boot(self, zram, timeout=90):
        """Waits for the guest's init (or, in the systemd guest, its console-loop.service), then gives it `zram`
        of zram swap."""
        t0 = time.monotonic()
        self.kernel_release = wait_for("the guest to boot", self._ready, timeout)
        self.boot_seconds = time.monotonic() - t0
        if zram:
            self.run(f"echo {zram} > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null"
                     " && swapon /dev/zram0")

    def _ready(self):
        with self.lock:
            for line in self.console:
                m = re.search(r"@@READY (\S+)@@", line)
                if m:
                    return m.group(1)
        if self._exited():
            raise AssertionError("QEMU exited during boot")
        return None

    def run(self, command, timeout=60, check=True):
        """Runs a shell command in the guest; returns its output."""
        self.seq += 1
        n = self.seq
        with self.lock:
            start = len(self.console)
        self._write(f"echo @@BEGIN {n}@@; ( {command} ) </dev/null; echo \"@@DONE {n} $?@@\"\n".encode())

        def done():
            with self.lock:
                lines = self.console[start:]
            for i, line in enumerate(lines):
                m = re.fullmatch(rf"@@DONE {n} (\d+)@@", line)
                if m:
                    begin = next((j for j, l in enumerate(lines) if l == f"@@BEGIN {n}@@"), -1)
                    return int(m.group(1)), "\n".join(lines[begin + 1:i])
            if self._exited():
                raise AssertionError("QEMU exited")
            return None

        status, output = wait_for(f"guest command `{command}`", done, timeout, 0.02)
        if check and status != 0:
            raise AssertionError(f"guest command `{command}` failed ({status}):\n{output}")
        return output

    def write_file(self, path, text):
        quoted = " ".join("'" + line.replace("'", "'\\''") + "'" for line in text.splitlines())
        self.run(f"printf '%s\\n' {quoted} > {path}")

    def start_vmrd(self, config):
        """Starts vmrd in the background with `config` as its whole config; waits until it runs."""
        self.write_file("/etc/vmrd/vmrd.yaml", config)
        self.run("vmrd --config /etc/vmrd/vmrd.yaml > /tmp/vmrd.log 2>&1 &")
        wait_for("vmrd to start", lambda: "running with backend" in self.vmrd_log(), 20, 0.2)

    def vmrd_log(self):
        # The shell creates the log in the background job: it may not be there yet.
        return self.run("cat /tmp/vmrd.log 2>/dev/null", check=False)

    def meminfo(self, key):
        return int(self.run(f"awk '/^{key}:/ {{print $2}}' /proc/meminfo")) * 1024

    def vmstat(self, key):
        return int(self.run(f"awk '$1 == \"{key}\" {{print $2}}' /proc/vmstat"))

    def console_tail(self, n=40):
        with self.lock:
            return "\n".join(self.console[-n:])


# What differs between the architectures a guest can have (Debian's names): QEMU, its machine, the serial
# console, and what build-guest.sh needs beyond the rest (qemu-user lists an arm64 program's libraries).
# arm64 runs TCG's `max` CPU with QEMU's own pointer authentication (pauth-impdef), much faster to emulate
# than the architected algorithm (meson/README.md has the numbers).
ARCHES = {
    "amd64": {"qemu": "qemu-system-x86_64", "machine": [], "console": "ttyS0", "build_tools": []},
    "arm64": {"qemu": "qemu-system-aarch64", "machine": ["-M", "virt", "-cpu", "max,pauth-impdef=on"],
              "console": "ttyAMA0", "build_tools": ["qemu-aarch64"]},
}


class Guest(Console):
    """A QEMU guest with a console command loop, QMP, virtio-mem and a virtio-serial port.
    disk: an image the guest reads as /dev/vda; root: an image (build-rootfs.sh) booted as the root file system
    on /dev/vda instead, with systemd as PID 1.
    hidden: that much RAM more, which the guest's kernel does not use (mem=): memory to hot-plug by other means
    than virtio-mem (hidden_range()).  port: False for a VM without the vmrd virtio-serial port.
    arch: a key of ARCHES, the architecture the images were built for."""

    def __init__(self, images, work, series="6.1", memory="512M", zram="1G", memhp="online_movable", disk=None,
                 root=None, hidden=None, port=True, arch="amd64"):
        self.work = work
        self.series = series
        self.zram = zram
        kernel, initrd = images[series]
        self.qmp_path = os.path.join(work, "qmp-test.sock")
        self.broker_qmp = os.path.join(work, "qmp-broker.sock")
        self.channel = os.path.join(work, "guest-channel.sock")
        accel = "tcg"
        machine = ARCHES[arch]
        append = f"console={machine['console']} memhp_default_state={memhp} psi=1 panic=-1 loglevel=3"
        if root:
            append += " root=/dev/vda systemd.show_status=false"
        self.hidden_base = None
        ram = memory
        if hidden:
            self.hidden_base = mib(memory) * MiB
            ram = f"{mib(memory) + mib(hidden)}M"
            # The memmap of memory plugged when memory ran out goes on that memory (qti_virtio_mem's OOM notifier).
            append += f" mem={memory} memory_hotplug.memmap_on_memory=1"
        cmd = [
            machine["qemu"], *machine["machine"], "-accel", accel, "-m", f"{ram},maxmem=9G", "-smp", "2",
            "-object", "memory-backend-ram,id=vmem0,size=4G",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=2M,requested-size=0",
            "-kernel", kernel, "-initrd", initrd,
            "-append", append,
            "-nographic", "-nic", "none", "-no-reboot",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-qmp", f"unix:{self.broker_qmp},server=on,wait=off",
            "-device", "virtio-serial-pci",
        ]
        if port:
            cmd += ["-chardev", f"socket,id=ch0,path={self.channel},server=on,wait=off",
                    "-device", "virtserialport,chardev=ch0,name=org.vmrd.0"]
        if disk:  # read-only, as /dev/vda
            cmd += ["-drive", f"file={disk},if=virtio,format=raw,readonly=on"]
        if root:
            # A throw-away image: the guest's flushes need not reach the disk.
            cmd += ["-drive", f"file={root},if=virtio,format=raw,cache=unsafe"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self._attach(self.proc.stdout.read1, self._send, lambda: self.proc.poll() is not None)
        try:
            self._boot(zram, 180 if root else 90)
            self.qmp = Qmp(self.qmp_path)
        except BaseException:
            print("# guest console:\n# " + "\n# ".join(self.console_tail().splitlines()), flush=True)
            self.proc.kill()
            self.proc.wait()
            raise

    def hidden_range(self):
        """The RAM the kernel was told to leave alone (hidden=): (base, size), whole memory blocks of the RAM the
        firmware reported above mem= (its map in the kernel log), checked to be no System RAM in /proc/iomem."""
        block = int(self.run("cat /sys/devices/system/memory/block_size_bytes"), 16)
        end = None
        for m in re.finditer(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] usable", self.run("dmesg")):
            if int(m[1], 16) <= self.hidden_base <= int(m[2], 16):
                end = int(m[2], 16) + 1
        assert end, f"the firmware reports no RAM at mem={self.hidden_base:#x}"
        base = -(-self.hidden_base // block) * block
        end = end // block * block
        assert end > base, f"no whole memory block of {block:#x} bytes between {base:#x} and {end:#x}"
        for m in re.finditer(r"^\s*([0-9a-f]+)-([0-9a-f]+) : System RAM$", self.run("cat /proc/iomem"), re.M):
            assert int(m[2], 16) < base or int(m[1], 16) >= end, f"System RAM at {m[0].strip()} despite mem="
        return base, end - base

    def load_qti_virtio_mem(self):
        """insmods the qti_virtio_mem emulation (tests/qti_virtio_mem) on the hidden range; returns that range as
        (base, size).  Skips when the guest has no module for its kernel, with build-guest.sh's reason."""
        failed = self.run("cat /modules/qti_virtio_mem.failed 2>/dev/null", check=False)
        assert not failed, "building qti_virtio_mem.ko failed:\n" + failed
        if self.run("[ -e /modules/qti_virtio_mem.ko ] && echo yes", check=False).strip() != "yes":
            why = self.run("cat /modules/qti_virtio_mem.skip 2>/dev/null", check=False).strip()
            raise Skip(f"no qti_virtio_mem.ko for this kernel: {why or 'build-guest.sh did not build it'}")
        base, size = self.hidden_range()
        self.run(f"insmod /modules/qti_virtio_mem.ko base={base:#x} size={size:#x}")
        return base, size

    def _send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

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
