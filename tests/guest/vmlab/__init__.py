# SPDX-License-Identifier: MIT
# vmlab: the harness that boots real guests under QEMU with a virtio-mem device, for the guest tests, the demo and the bench.

from .broker import Broker
from .case import DAEMON_CONFIG, Case, Context, run_tap
from .guest import ARCHES, Guest, build_guest, build_rootfs
from .qmp import Qmp
from .util import GiB, MiB, Skip, die_with_parent, wait_for

__all__ = ["ARCHES", "Broker", "DAEMON_CONFIG", "Case", "Context", "run_tap", "Guest", "build_guest", "build_rootfs", "Qmp",
           "GiB", "MiB", "Skip", "die_with_parent", "wait_for"]
