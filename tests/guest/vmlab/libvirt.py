# SPDX-License-Identifier: MIT
# A real libvirtd of the harness's own (no systemd, its own config and state), and test guests as its domains.

import os
import pwd
import shutil
import signal
import socket
import subprocess
import xml.etree.ElementTree as ET

from .guest import Console
from .util import Skip, die_with_parent, wait_for

# Where libvirtd keeps its config and state.  The harness's libvirtd runs in
# a mount namespace of its own where each is a directory under its work
# folder, so the host's libvirt (if any) is neither used nor touched.
LIBVIRT_DIRS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt")
LIBVIRTD = "/usr/sbin/libvirtd"
QEMU_USER = "libvirt-qemu"  # Debian's build of libvirt

# QEMU runs as root with no sandbox: the harness's sockets and images stay
# reachable without a libvirt-qemu user, and logs go to files (no virtlogd).
QEMU_CONF = """user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
stdio_handler = "file"
"""


def ensure_qemu_user():
    """libvirtd's QEMU driver looks its build's QEMU user up before it reads qemu.conf: Debian's
    libvirt-daemon-system creates it, and the harness does the same if that package is not installed."""
    try:
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                            "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", QEMU_USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"libvirtd needs the user {QEMU_USER}, and useradd failed: {r.stderr.strip()}")


class Libvirtd:
    """libvirtd run by the harness as root, without systemd; restart() keeps its domains running."""

    def __init__(self, work):
        if os.geteuid() != 0:
            raise Skip("a system libvirtd needs root")
        for tool in (LIBVIRTD, "virsh", "unshare"):
            if not shutil.which(tool):
                raise Skip(f"{tool} is not installed (./run test installs libvirt-daemon, "
                           "libvirt-daemon-driver-qemu and libvirt-clients)")
        ensure_qemu_user()
        self.root = os.path.join(work, "libvirt")
        for d in LIBVIRT_DIRS:
            os.makedirs(self.root + d, exist_ok=True)
        self.sock = os.path.join(self.root + "/run/libvirt", "libvirt-sock")
        self.log_path = os.path.join(self.root, "libvirtd.log")
        with open(self.root + "/etc/libvirt/libvirtd.conf", "w") as f:
            f.write('auth_unix_ro = "none"\nauth_unix_rw = "none"\n')
        with open(self.root + "/etc/libvirt/qemu.conf", "w") as f:
            f.write(QEMU_CONF)
        self.uri = f"qemu:///system?socket={self.sock}"
        self.proc = None
        self.start()

    def start(self):
        binds = " && ".join(f"mkdir -p {d} && mount --bind {self.root + d} {d}" for d in LIBVIRT_DIRS)
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                                      f"{binds} && exec {LIBVIRTD}"],
                                     stdout=self.log, stderr=self.log, preexec_fn=die_with_parent)

        def up():
            if self.proc.poll() is not None:
                text = self.text()
                if "unshare" in text or "mount" in text:
                    raise Skip(f"cannot give libvirtd a mount namespace of its own here: {text.strip()[-300:]}")
                raise AssertionError(f"libvirtd exited ({self.proc.returncode}):\n{text[-3000:]}")
            return os.path.exists(self.sock) and self.virsh("version", check=False).returncode == 0

        wait_for("libvirtd to answer", up, 60, 0.2)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def virsh(self, *args, check=True):
        r = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"virsh {' '.join(args)} failed: {r.stderr.strip()}")
        return r

    def stop(self):
        """Ends libvirtd; QEMU keeps running its domains."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.close()

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        """Destroys every domain, then ends libvirtd."""
        if self.proc and self.proc.poll() is None:
            for name in self.virsh("list", "--name", check=False).stdout.split():
                self.virsh("destroy", name, check=False)
        self.stop()


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <maxMemory slots='2' unit='GiB'>9</maxMemory>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>2</vcpu>
  <cpu><numa><cell id='0' cpus='0-1' memory='{memory_mib}' unit='MiB'/></numa></cpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 memhp_default_state=online_movable psi=1 panic=-1 loglevel=3</cmdline>
  </os>
  <metadata>{metadata}</metadata>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='unix'><source mode='connect' path='{console}'/><target port='0'/></serial>
    <channel type='unix'>
      <source mode='bind' path='{channel}'/>
      <target type='virtio' name='org.vmrd.0'/>
    </channel>
    <memory model='virtio-mem'>
      <target>
        <size unit='GiB'>4</size>
        <node>0</node>
        <block unit='KiB'>2048</block>
        <requested unit='KiB'>0</requested>
      </target>
    </memory>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class Domain(Console):
    """A test guest as a libvirt domain (TCG, direct kernel boot, virtio-mem, the vmrd channel, zram), with
    the console command loop on a socket that QEMU connects to."""

    def __init__(self, libvirtd, images, work, name, series="6.1", memory_mib=512, zram="1G", metadata=""):
        self.libvirtd = libvirtd
        self.name = name
        self.zram = zram
        kernel, initrd = images[series]
        console = os.path.join(work, f"{name}-console.sock")
        self.channel = os.path.join(work, f"{name}-channel.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(console)
        self.listener.listen(1)
        self.listener.settimeout(60)
        path = os.path.join(work, f"{name}.xml")
        with open(path, "w") as f:
            f.write(DOMAIN_XML.format(name=name, memory_mib=memory_mib, kernel=kernel, initrd=initrd,
                                      metadata=metadata, console=console, channel=self.channel))
        libvirtd.virsh("define", path)
        self.conn = None
        self.start()

    def start(self):
        """Starts the domain and waits for its init."""
        self.libvirtd.virsh("start", self.name)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(None)
        conn = self.conn
        self._attach(lambda: conn.recv(4096), conn.sendall, lambda: not self.running())
        try:
            self._boot(self.zram)
        except BaseException:
            print("# guest console:\n# " + "\n# ".join(self.console_tail().splitlines()), flush=True)
            raise

    def running(self):
        r = self.libvirtd.virsh("domstate", self.name, check=False)
        return r.returncode != 0 or r.stdout.strip() == "running"  # libvirtd away: QEMU may still run

    def device(self):
        """The virtio-mem device's (current, requested) sizes in bytes, as `virsh dumpxml` shows them."""
        xml = ET.fromstring(self.libvirtd.virsh("dumpxml", self.name).stdout)
        target = xml.find("./devices/memory[@model='virtio-mem']/target")
        kib = {t: int(target.find(t).text) for t in ("current", "requested")}
        for t in kib:
            assert target.find(t).get("unit", "KiB") == "KiB", ET.tostring(target)
        return kib["current"] * 1024, kib["requested"] * 1024

    def size(self):
        return self.device()[0]

    def destroy(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        self.libvirtd.virsh("destroy", self.name, check=False)
        wait_for(f"domain {self.name} to stop", lambda: not self.running(), 30, 0.2)

    def stop(self):
        self.destroy()
        self.listener.close()

