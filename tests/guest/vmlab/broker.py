# SPDX-License-Identifier: MIT
# The host broker (vmrd-broker) run for one guest, with its config written and its log kept.

import os
import subprocess

from .util import GiB, die_with_parent, wait_for


class Broker:
    """vmrd-broker serving one guest's QMP socket and channel, or run with the config text given; stop() and
    start() again to restart it."""

    def __init__(self, exe, work, guest=None, max_size=3 * GiB, reserve="256M", config=None):
        self.exe = exe
        self.config = os.path.join(work, "broker.yaml")
        self.log_path = os.path.join(work, "broker.log")
        with open(self.config, "w") as f:
            f.write(config or f"""version: 1
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
