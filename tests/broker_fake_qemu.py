#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# vmrd-broker against fake QEMUs: QMP servers that answer like QEMU's, one of
# them slowly, and guest channels played by this test.  Checks what a unit
# test of the session cannot: that one VM whose QEMU is slow to answer
# delays no other VM, and that a set QEMU answers late is reported as done.
#
# usage: broker_fake_qemu.py VMRD_BROKER

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
SLOW_S = 2.0  # how long the slow QEMU takes to answer each command


class FakeQemu(threading.Thread):
    """One QMP client at a time, a virtio-mem-pci device `vm0` with 2 MiB blocks."""

    def __init__(self, path, delay):
        super().__init__(daemon=True)
        self.delay = delay
        self.props = {"block-size": 2 * MiB, "size": 0, "requested-size": 0}
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(1)

    def run(self):
        while True:
            conn, _ = self.server.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        f = conn.makefile("rw")
        f.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}) + "\n")
        f.flush()
        for line in f:
            cmd = json.loads(line)
            args = cmd.get("arguments", {})
            if cmd["execute"] == "qom-set":
                time.sleep(self.delay)
                self.props["requested-size"] = self.props["size"] = args["value"]
                answer = {"return": {}}
            elif cmd["execute"] == "qom-get":
                time.sleep(self.delay)
                answer = {"return": self.props[args["property"]]}
            else:
                answer = {"return": {}}
            f.write(json.dumps(answer) + "\n")
            f.flush()


class Channel:
    """The host end of a guest channel: the broker connects to it."""

    def __init__(self, path):
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(1)
        self.conn = None
        self.buffer = b""

    def accept(self, timeout):
        self.server.settimeout(timeout)
        self.conn, _ = self.server.accept()

    def ask(self, request, timeout):
        """Sends a request; returns (its reply, seconds it took), passing over size notices."""
        start = time.monotonic()
        self.conn.sendall((json.dumps(dict(request, v=1)) + "\n").encode())
        while time.monotonic() - start < timeout:
            self.conn.settimeout(max(0.01, timeout - (time.monotonic() - start)))
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("type") == "reply" and msg.get("id") == request["id"]:
                    return msg, time.monotonic() - start
            try:
                self.buffer += self.conn.recv(4096)
            except socket.timeout:
                break
        raise AssertionError(f"no reply to {request} within {timeout} s")


def main():
    broker_exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        vms = {"slow": SLOW_S, "fast": 0.0}
        qemus, channels, yaml = {}, {}, ["version: 1", "host: {reserve: 0}", "vms:"]
        for name, delay in vms.items():
            qemus[name] = FakeQemu(os.path.join(d, f"{name}-qmp.sock"), delay)
            qemus[name].start()
            channels[name] = Channel(os.path.join(d, f"{name}-channel.sock"))
            yaml.append(f"  - {{name: {name}, qmp: {d}/{name}-qmp.sock, device: vm0, "
                        f"channel: {d}/{name}-channel.sock, min: 0, max: 1G}}")
        config = os.path.join(d, "broker.yaml")
        with open(config, "w") as f:
            f.write("\n".join(yaml) + "\n")
        started = time.monotonic()
        broker = subprocess.Popen([broker_exe, "--config", config], stderr=subprocess.PIPE, text=True)
        try:
            # A guest channel is connected once the VM's device was read:
            # the fast one at once, while the slow one takes 3 x SLOW_S.
            ready = {}
            for name in ("fast", "slow"):
                channels[name].accept(30)
                ready[name] = time.monotonic() - started
            print(f"devices read after {ready['fast']:.2f} s (fast) and {ready['slow']:.2f} s (slow)")
            # Relative to the slow one: the broker's own start may be slow (sanitizers, a loaded host).
            assert ready["fast"] < ready["slow"] - SLOW_S, f"the fast VM waited {ready['fast']:.2f} s"
            assert channels["slow"].ask({"id": 1, "type": "hello"}, 10)[0]["ok"]

            # The slow VM's resize keeps its QEMU busy for 4 x SLOW_S (the
            # set, then the state read again); the fast VM is served meanwhile.
            late = []
            slow = threading.Thread(target=lambda: late.append(channels["slow"].ask(
                {"id": 2, "type": "resize", "target": 256 * MiB}, 30)))
            slow.start()
            time.sleep(0.2)
            worst = 0.0
            for i in range(8):  # within requests_per_second
                reply, took = channels["fast"].ask({"id": 10 + i, "type": "resize", "target": (i + 1) * 2 * MiB}, 10)
                assert reply["ok"], reply
                worst = max(worst, took)
            print(f"fast VM: 8 resizes while the slow VM's QEMU was busy, the slowest answered in {worst:.3f} s")
            assert worst < SLOW_S / 2, f"the fast VM waited {worst:.3f} s for the slow one"

            # The slow set is answered as done, however late, with the size
            # QEMU reached.
            slow.join()
            assert late, "no reply to the slow VM's resize"
            reply, took = late[0]
            assert reply["ok"] and reply["requested"] == reply["size"] == 256 * MiB, reply
            print(f"slow VM: its resize answered as done after {took:.1f} s")
        finally:
            broker.terminate()
            try:
                _, err = broker.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                broker.kill()
                _, err = broker.communicate()
            print(err[-3000:])
            if broker.returncode not in (0, -15):
                raise AssertionError(f"vmrd-broker exited {broker.returncode}")
    print("PASS: one slow QEMU delays no other VM")


if __name__ == "__main__":
    main()
