# SPDX-License-Identifier: MIT
# A QMP client for the test itself (the broker has its own socket).

import json
import socket

from .util import wait_for


class Qmp:
    """QMP on a unix socket, with the virtio-mem device vm0's properties at hand."""

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
