# SPDX-License-Identifier: MIT
# One guest test (Case), what the tests share (Context), and the runner that prints their TAP.

import os
import subprocess
import shutil
import tempfile
import time
import traceback

from .broker import Broker
from .guest import ARCHES, Guest, build_guest
from .util import GiB, Skip

# vmrd's config in the tests and the demo: the defaults.
DAEMON_CONFIG = """version: 1
backend:
  name: virtio-mem
{extra}
"""


class Case:
    """One test: a guest, optionally a broker, and vmrd in the guest.  root: the systemd guest's disk image;
    hidden: RAM the guest's kernel leaves alone; port: whether the VM has the vmrd port (Guest)."""

    def __init__(self, ctx, series="6.1", zram="1G", broker=True, max_size=3 * GiB, memory="512M",
                 memhp="online_movable", root=None, hidden=None, port=True):
        self.ctx = ctx
        self.work = tempfile.mkdtemp(prefix="vmrd-guest-", dir=ctx.work)
        self.guest = Guest(ctx.images, self.work, series=series, zram=zram, memory=memory, memhp=memhp, root=root,
                           hidden=hidden, port=port, arch=ctx.arch)
        self.broker = None
        try:
            if broker:
                self.broker = Broker(ctx.broker, self.work, self.guest, max_size=max_size)
        except BaseException:
            self.guest.stop()
            raise

    def start_vmrd(self, extra="", config=None):
        """Starts vmrd with DAEMON_CONFIG plus `extra`, or with `config` whole."""
        self.guest.start_vmrd(config or DAEMON_CONFIG.format(extra=extra))

    def vmrd_log(self):
        return self.guest.vmrd_log()

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


class Context:
    """What the tests of one run share: the built programs, the guest images, and each test's notes.
    build: the host's programs (vmrd-replay); guest_build: the guest's (by default the same build), of
    architecture `arch` (a key of ARCHES), whose WORKLOAD is given."""

    def __init__(self, build, workload, broker, arch="amd64", guest_build=None):
        self.build = build
        self.workload = workload
        self.broker = broker
        self.arch = arch
        self.guest_build = guest_build or build
        self.work = tempfile.mkdtemp(prefix="vmrd-vmlab-")
        self.images = {}
        self.details = []
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    def fail_details(self, text):
        self.details.append(text)

    def save_trace(self, case, name):
        text = case.guest.run("cat /tmp/trace.jsonl", check=False)
        if self.arch != "amd64":
            name = f"{self.arch}-{name}"
        path = os.path.join(self.build, "meson-logs", name)
        with open(path, "w") as f:
            f.write(text + "\n")
        self.note(f"trace saved to {path}")
        return path

    def check_replay(self, trace, config):
        """vmrd-replay --check: the trace fed back to a Controller gives every recorded decision."""
        path = trace + ".yaml"
        with open(path, "w") as f:
            f.write(config)
        replay = os.path.join(self.build, "core", "vmrd-replay")
        r = subprocess.run([replay, "--check", "--config", path, trace], capture_output=True, text=True)
        assert r.returncode == 0, f"the replay differs from the daemon:\n{r.stdout}{r.stderr}"
        return r.stdout.strip()

    def prepare(self, series=("6.1", "6.12")):
        for tool in [ARCHES[self.arch]["qemu"], "cpio", "depmod", "xz"] + ARCHES[self.arch]["build_tools"]:
            if not shutil.which(tool) and not os.path.exists(f"/sbin/{tool}"):
                raise Skip(f"{tool} is not installed (./run test installs it)")
        if self.arch == "amd64" and not os.path.exists("/bin/busybox"):
            raise Skip("busybox-static is not installed")
        for s in series:
            kernel, initrd, _ = build_guest(self.guest_build, self.workload, os.path.join(self.work, "images"), s)
            self.images[s] = (kernel, initrd)


def run_tap(tests, argv, series=("6.1", "6.12"), arch="amd64", guest_build=None):
    """Runs the tests named in argv (BUILD_DIR WORKLOAD BROKER [TEST ...]; all without names) as TAP, on guests
    of the kernel series and architecture given (Context).  Returns the exit code."""
    build, workload, broker = argv[:3]
    wanted = argv[3:]
    tests = [t for t in tests if not wanted or t.__name__ in wanted]
    ctx = Context(os.path.abspath(build), os.path.abspath(workload), os.path.abspath(broker), arch,
                  guest_build and os.path.abspath(guest_build))
    print(f"1..{len(tests)}", flush=True)
    try:
        ctx.prepare(series)
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
        except Skip as e:
            status = f"ok {i} - {t.__name__} # SKIP {e}"
        except Exception:
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
