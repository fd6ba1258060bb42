#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The demo: a real guest whose memory grows and shrinks with its workload.
# Boots the test guest under QEMU with a virtio-mem device, starts the broker
# on the host and vmrd in the guest, runs a workload in rounds and shows
# vmrd's decisions live with the device's size.  Ctrl-C stops it cleanly.
#
# usage: demo.py BUILD_DIR WORKLOAD BROKER [ROUNDS]

import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmtest  # noqa: E402

MiB = 1 << 20


def main():
    build, workload, broker = (os.path.abspath(a) for a in sys.argv[1:4])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    work = tempfile.mkdtemp(prefix="vmrd-demo-")
    print("building the guest (Debian 6.1 cloud kernel, busybox, vmrd as installed)...", flush=True)
    r = subprocess.run([os.path.join(vmtest.HERE, "build-guest.sh"), build, workload, work, "6.1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"demo: cannot build the guest:\n{r.stderr}", file=sys.stderr)
        return 1
    kernel, initrd, release = r.stdout.split()
    guest = vmtest.Guest({"6.1": (kernel, initrd)}, work)
    print(f"guest booted in {guest.boot_seconds:.1f}s: kernel {release}, 512 MiB, 1 GiB zram, "
          "virtio-mem device of up to 4 GiB", flush=True)
    host = vmtest.Broker(broker, work, guest)
    print(f"broker running on the host (log: {host.log_path}); starting vmrd in the guest", flush=True)
    guest.write_file("/etc/vmrd/vmrd.yaml", vmtest.DAEMON_CONFIG.format(extra=""))
    guest.run("vmrd --config /etc/vmrd/vmrd.yaml > /tmp/vmrd.log 2>&1 &")

    stop = threading.Event()
    lock = threading.Lock()  # one console command at a time

    def grun(command):
        with lock:
            return guest.run(command, check=False)

    def follow():
        shown = 0
        while not stop.is_set():
            try:
                with lock:
                    text = guest.run(f"tail -c +{shown + 1} /tmp/vmrd.log", check=False)
                    size = guest.qmp.get("size")
            except Exception:
                return
            for line in text.splitlines():
                print(f"  [{size // MiB:5d} MiB plugged] {line}", flush=True)
            shown += len(text.encode()) + (1 if text else 0)
            stop.wait(0.5)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        for n in range(1, rounds + 1):
            mib = 600 + 300 * n
            print(f"\n== round {n}: the workload grows to {mib} MiB over 10 s and holds it 10 s", flush=True)
            grun(f"workload {mib} 10000 10000 > /tmp/work.log 2>&1 &")
            vmtest.wait_for("the workload", lambda: "pages checked" in grun("cat /tmp/work.log"), 300, 1)
            print("   " + grun("tail -n 1 /tmp/work.log"), flush=True)
            print(f"== round {n}: idle for 30 s; vmrd gives the memory back", flush=True)
            time.sleep(30)
        with lock:
            print(f"\ndone: device at {guest.qmp.get('size') // MiB} MiB, "
                  f"{guest.vmstat('oom_kill')} OOM kills in the guest", flush=True)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        stop.set()
        follower.join(2)
        host.stop()
        guest.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
