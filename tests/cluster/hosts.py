"""SSH test hosts: simulated rigs reachable over real SSH, one network namespace and sshd each.

    from cluster import SshCluster

    with SshCluster.up(3) as cl:                    # 3 hosts, 12-GPU rigs, inventory written
        cl.inventory                                # path of the YAML inventory (group ``rigs``)
        cl["rig01"].rig.set_tool_mode("hang")       # the simrig Rig behind the host
        cl["rig02"].kill_sshd()                     # sshd and every session in the namespace die
        cl["rig02"].start_sshd()                    # and come back
    # down(): processes, ControlPersist masters, namespaces, veths, rigs and the folder are gone

Per host (``SshHost``): network namespace ``gpct-<cid>-<n>``, veth pair (``gpct<cid>h<n>`` on the
controller, ``eth0`` inside), ``169.254.<octet>.1/30`` (controller) and ``169.254.<octet>.2/30``
(host), ``lo`` up, no default route (nothing inside can reach anything but the controller), its
own sshd (private config, own host key, key-only root login, PidFile and log in the host folder),
its own simrig rig folder (the namespaces share the filesystem).

Each sshd runs in a mount namespace of its own (``ip netns exec`` makes one), where the login
user's ``~/.bashrc`` is masked by an empty file (``mask_shell_rc``): sshd starts every command
through the login shell, and bash reads ``~/.bashrc`` for commands over SSH; this machine's root
``.bashrc`` runs ``pyenv init`` (0.5 s per command), which a rig does not. Mounts a fault needs
(a full tmpfs, a read-only cache folder) go into that namespace too (``SshHost.mount_*``), so
they vanish with the host's processes and never leak into the controller.

Client side: one generated ed25519 key, and a ``known_hosts`` file written from the host keys
generated here, so host key checking stays ON as in the repository's ansible.cfg
(``StrictHostKeyChecking=yes``; the machine's own ~/.ssh/known_hosts is never read or written:
the same addresses come back with new keys on every run). ControlPersist sockets go to
``<dir>/cp`` (``ansible_control_path_dir``), so ``down`` can close every master.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import netns
from .netns import PREFIX, run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIMRIG_PARENT = os.path.dirname(HERE)  # tests/: where simrig lives
SSHD = "/usr/sbin/sshd"
REMOTE_PYTHON = "/usr/bin/python3"
STATE_FILE = "cluster.json"
DEFAULT_CLI_DIR = "/dev/shm/gpuops-testcluster"

SSHD_CONFIG = """\
# gpuops.preflight SSH test host {name} (tests/cluster): private sshd, key-only root login.
Port {port}
ListenAddress {address}
AddressFamily inet
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
# The rig folders live in world-writable /dev/shm or /tmp: StrictModes would refuse the key file.
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
# Many parallel connections (forks >= hosts, ControlPersist masters, the benchmark).
MaxStartups 512:30:1024
MaxSessions 128
MaxAuthTries 3
LoginGraceTime 30
# As docs/PERFORMANCE.md recommends for rigs: sshd drops a session whose client stopped answering
# (a pulled cable) after about 4-6 s, which closes the module's result pipe and so stops the module.
ClientAliveInterval 2
ClientAliveCountMax 2
# The host's own temp folder (the namespaces share /tmp): what its modules leave there is the host's.
SetEnv TMPDIR={temp_dir}
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""

SILENT_SERVER = r"""
import socket, sys, time
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(128)
print("listening", flush=True)
held = []
while True:
    conn, _ = srv.accept()
    held.append(conn)   # accept, keep it open, never send a byte
"""


class ClusterError(RuntimeError):
    pass


def _require_root():
    if os.geteuid() != 0:
        raise ClusterError("SSH test hosts need root (network namespaces, sshd); run as root")
    for tool in ("ip", "ssh", "ssh-keygen", "nsenter", "mount"):
        if not shutil.which(tool):
            raise ClusterError("%s not found: run scripts/install-test-deps" % tool)
    if not os.access(SSHD, os.X_OK):
        raise ClusterError("%s not found: run scripts/install-test-deps" % SSHD)


def environment_problem():
    """Why SSH test hosts cannot run here (None when they can): for pytest skips."""
    try:
        _require_root()
    except ClusterError as exc:
        return str(exc)
    probe = run(["ip", "netns", "list"], check=False)
    if probe.returncode != 0:
        return "ip netns does not work here: %s" % probe.stderr.strip()
    return None


def _simrig():
    if SIMRIG_PARENT not in sys.path:
        sys.path.insert(0, SIMRIG_PARENT)
    import simrig  # noqa: PLC0415 (tests/ is not always on sys.path for the CLI)
    return simrig


def default_root(prefix="gpct-"):
    """A fresh folder for a cluster: /dev/shm when it has room (rigs are many small files and their
    ramdisk then is a real tmpfs), else the system temp folder."""
    return _simrig().scratch_dir(prefix=prefix)


class SshHost(object):
    """One SSH test host. ``address`` is where SSH reaches it; ``rig`` its simrig Rig."""

    def __init__(self, cluster, name, index, octet, rig_path):
        self.cluster = cluster
        self.name = name
        self.index = index
        self.octet = octet
        self.ns = "%s-%s-%d" % (PREFIX, cluster.cid, index)
        self.veth = "%s%sh%d" % (PREFIX, cluster.cid, index)
        self.gateway = "169.254.%d.1" % octet
        self.address = "169.254.%d.2" % octet
        self.port = 22
        self.dir = os.path.join(cluster.root, "hosts", name)
        self.sshd_config = os.path.join(self.dir, "sshd_config")
        self.host_key = os.path.join(self.dir, "ssh_host_ed25519_key")
        self.pid_file = os.path.join(self.dir, "sshd.pid")
        self.log_file = os.path.join(self.dir, "sshd.log")
        self.temp_dir = os.path.join(self.dir, "tmp")  # its sessions' TMPDIR
        self.rig_path = rig_path
        self._rig = None

    # ------------------------------------------------------------ state

    def as_dict(self):
        return {"name": self.name, "index": self.index, "octet": self.octet, "ns": self.ns, "veth": self.veth,
                "address": self.address, "gateway": self.gateway, "rig": self.rig_path}

    @property
    def rig(self):
        if self._rig is None:
            self._rig = _simrig().Rig.load(self.rig_path)
        return self._rig

    def reload_rig(self):
        self._rig = None
        return self.rig

    def __repr__(self):
        return "SshHost(%s, %s, ns=%s)" % (self.name, self.address, self.ns)

    # ------------------------------------------------------------ processes

    def pids(self):
        """Every process in the host's network namespace."""
        return netns.netns_pids(self.ns)

    def processes(self):
        """[(pid, comm, cmdline)] of the host's processes."""
        return [(p, netns.process_name(p), netns.process_cmdline(p)) for p in self.pids()]

    def clear_temp(self):
        for name in os.listdir(self.temp_dir):
            path = os.path.join(self.temp_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)

    def unpacked_payloads(self):
        """Modules AnsiballZ unpacked into the host's temp folder and left there."""
        return sorted(n for n in os.listdir(self.temp_dir) if n.startswith("ansible_") and "_payload_" in n)

    def sshd_pid(self):
        """The listening sshd's pid, when it runs (from its PidFile, checked against the namespace)."""
        try:
            with open(self.pid_file) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            return None
        return pid if pid in self.pids() and netns.process_name(pid) == "sshd" else None

    def sshd_running(self):
        return self.sshd_pid() is not None

    def _start_command(self):
        inner = "exec %s -f %s -E %s" % (SSHD, self.sshd_config, self.log_file)
        rc_file = self.cluster.login_rc_file()
        if self.cluster.mask_shell_rc and rc_file:
            inner = "mount --bind %s %s 2>/dev/null; %s" % (self.cluster.masked_rc, rc_file, inner)
        return ["ip", "netns", "exec", self.ns, "sh", "-c", inner]

    def launch_sshd(self):
        """Start sshd (it daemonizes); returns the Popen of the launcher, see ``wait_sshd``."""
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass
        return subprocess.Popen(self._start_command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_sshd(self, launcher=None, timeout=15.0):
        """Wait until sshd wrote its PidFile (it does so after binding) and sends its banner."""
        deadline = time.monotonic() + timeout
        if launcher is not None:
            try:
                out, err = launcher.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                launcher.kill()
                out, err = launcher.communicate()
            if launcher.returncode != 0:
                raise ClusterError("%s: sshd did not start (rc %s): %s %s" % (
                    self.name, launcher.returncode, err.decode(errors="replace").strip(), self._log_tail()))
        while time.monotonic() < deadline:
            if self.sshd_pid() and self.banner(timeout=2.0):
                return self.sshd_pid()
            time.sleep(0.02)
        raise ClusterError("%s: sshd did not come up on %s:%d within %ss %s" % (
            self.name, self.address, self.port, timeout, self._log_tail()))

    def start_sshd(self, timeout=15.0):
        """(Re)start the host's sshd; returns its pid. A no-op when it already runs."""
        pid = self.sshd_pid()
        if pid:
            return pid
        return self.wait_sshd(self.launch_sshd(), timeout)

    def kill_sshd(self):
        """Kill the listening sshd AND every session (ControlPersist ``sshd: root@notty``, modules):
        what a host that drops off looks like to the controller. Returns the pids killed."""
        pids = self.pids()
        self.kill_all()
        return pids

    def kill_all(self, timeout=5.0):
        """Kill every process in the namespace (sshd, sessions, modules, stand-ins, servers)."""
        left = netns.kill_netns_processes(self.ns, timeout)
        if left:
            raise ClusterError("%s: processes would not die: %s" % (self.name, left))

    def _log_tail(self, lines=5):
        try:
            with open(self.log_file, errors="replace") as handle:
                tail = handle.read().splitlines()[-lines:]
        except OSError:
            return ""
        return "(sshd.log: %s)" % " | ".join(tail) if tail else ""

    # ------------------------------------------------------------ network

    def banner(self, timeout=3.0):
        """The SSH banner the host sends (None when nothing answers in time)."""
        try:
            with socket.create_connection((self.address, self.port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                data = sock.recv(256)
        except OSError:
            return None
        return data.decode("ascii", "replace").strip() or None

    def cut_network(self):
        """Pull the cable: the host's eth0 goes down, packets to it vanish without an answer (no
        RST, no FIN), its processes keep running. ``restore_network`` (or ``heal``) undoes it."""
        run(["ip", "-n", self.ns, "link", "set", "eth0", "down"])

    def restore_network(self):
        run(["ip", "-n", self.ns, "-batch", "-"], input="link set lo up\naddr replace %s/30 dev eth0\n"
            "link set eth0 up\n" % self.address)
        run(["ip", "link", "set", self.veth, "up"])

    def start_silent_server(self, port=None, timeout=10.0):
        """Stop sshd and listen on its port with a server that accepts TCP and never says a word.

        The server runs inside the namespace (``down``/``heal`` kill it). Returns its pid."""
        self.kill_all()
        port = port or self.port
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-u", "-c", SILENT_SERVER,
                                 self.address, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.cluster._children.append(proc)
        line = _readline(proc.stdout, timeout)
        if b"listening" not in line:
            proc.kill()
            raise ClusterError("%s: silent server did not start: %s" % (self.name, proc.stderr.read(2000)))
        return proc.pid

    # ------------------------------------------------------------ inside the host

    def exec(self, argv, check=True, timeout=30, input=None):
        """Run a command in the host's network AND mount namespace (that of its sshd): where the
        modules run. Needs sshd running."""
        pid = self.sshd_pid()
        if not pid:
            raise ClusterError("%s: sshd does not run: no mount namespace to enter" % self.name)
        return run(["nsenter", "-t", str(pid), "-m", "-n", "--"] + list(argv), check=check, timeout=timeout,
                   input=input)

    def sh(self, script, check=True, timeout=30):
        return self.exec(["sh", "-c", script], check=check, timeout=timeout)

    def mount_tmpfs(self, path, size="1m"):
        """A small tmpfs over ``path`` inside the host (gone with the host's processes)."""
        self.exec(["mkdir", "-p", path])
        self.exec(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "gpct-test", path])
        return path

    def bind_readonly(self, path):
        """``path`` read-only inside the host (EROFS on every change under it)."""
        self.exec(["mount", "--bind", path, path])
        self.exec(["mount", "-o", "remount,bind,ro", path])
        return path

    def fill(self, path, free_kb=0):
        """Fill the file system at ``path`` (a tmpfs from ``mount_tmpfs``) until ENOSPC, then give back
        ``free_kb`` KiB: a full folder, or one with too little room for an Ansible module payload."""
        filler = os.path.join(path, "filler")
        self.exec(["dd", "if=/dev/zero", "of=%s" % filler, "bs=4k"], check=False)
        if free_kb:
            self.exec(["truncate", "-s", "-%dK" % free_kb, filler])
        return filler

    def hang_login(self, seconds=100000):
        """The login user's shell rc file (``~/.bashrc``: bash reads it for commands over SSH) sleeps: every SSH
        command authenticates, then never starts. Inside the host only (gone with its processes). Returns the
        rc file."""
        rc_file = self.cluster.login_rc_file()
        if not (self.cluster.mask_shell_rc and rc_file):
            raise ClusterError("%s: no login rc file to replace (%s)" % (self.name, rc_file))
        hung = os.path.join(self.dir, "hung_bashrc")
        with open(hung, "w") as handle:
            handle.write("# gpuops.preflight test host: a login that hangs after authentication\nsleep %d\n" % seconds)
        self.exec(["mount", "--bind", hung, rc_file])
        return rc_file

    def umount(self, path):
        return self.exec(["umount", "-l", path], check=False).returncode == 0

    def mounts(self):
        """Mount points inside the host that lie under the cluster folder."""
        pid = self.sshd_pid()
        if not pid:
            return []
        try:
            with open("/proc/%d/mountinfo" % pid) as handle:
                lines = handle.read().splitlines()
        except OSError:
            return []
        return [l.split()[4] for l in lines if l.split()[4].startswith(self.cluster.root)]

    def ssh(self, command, timeout=30, check=True):
        """Run a shell command on the host over SSH (not multiplexed), as Ansible would reach it."""
        argv = ["ssh"] + self.cluster.ssh_options(standalone=True) + ["root@%s" % self.address, command]
        return run(argv, check=check, timeout=timeout)

    # ------------------------------------------------------------ inventory

    def host_vars(self, **overrides):
        """Inventory variables: SSH to this host, rig paths from simrig, minus the local bits."""
        out = {
            "ansible_connection": "ssh",
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": self.cluster.client_key,
            "ansible_ssh_common_args": " ".join(self.cluster.ssh_options()),
            "ansible_control_path_dir": self.cluster.control_dir,
            "ansible_python_interpreter": REMOTE_PYTHON,
        }
        rig_vars = self.rig.host_vars()
        for key in ("ansible_connection", "ansible_python_interpreter"):
            rig_vars.pop(key, None)
        out.update(rig_vars)
        out.update(overrides)
        return out


def _readline(stream, timeout):
    result = []

    def reader():
        result.append(stream.readline())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else b""


class SshCluster(object):
    """N SSH test hosts under one folder. Build with ``SshCluster.up(n, ...)``, reopen with
    ``SshCluster.load(dir)``, remove with ``down()`` (also a context manager)."""

    def __init__(self, root, cid, owner=True, mask_shell_rc=True):
        self.root = os.path.abspath(root)
        self.cid = cid
        self.hosts = []
        self.owner = owner
        self.mask_shell_rc = mask_shell_rc
        self.inventory = None
        self._children = []
        self._down = False

    # ------------------------------------------------------------ paths

    @property
    def client_key(self):
        return os.path.join(self.root, "keys", "id_ed25519")

    @property
    def known_hosts(self):
        return os.path.join(self.root, "known_hosts")

    @property
    def control_dir(self):
        return os.path.join(self.root, "cp")

    @property
    def summary_dir(self):
        return os.path.join(self.root, "summaries")

    @property
    def rigs_dir(self):
        return os.path.join(self.root, "rigs")

    @property
    def masked_rc(self):
        return os.path.join(self.root, "keys", "masked_bashrc")

    @staticmethod
    def login_rc_file():
        """The remote login user's ~/.bashrc (root here), when there is one to mask."""
        path = os.path.join(pwd.getpwnam("root").pw_dir, ".bashrc")
        return path if os.path.isfile(path) else None

    def ssh_options(self, standalone=False):
        """ssh options for these hosts: the known_hosts of the cluster, host key checking on. With
        ``standalone`` (a plain ssh call, not Ansible) also the key, batch mode and a timeout."""
        opts = ["-o", "UserKnownHostsFile=%s" % self.known_hosts, "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectionAttempts=1"]
        if not standalone:
            return opts
        return opts + ["-i", self.client_key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]

    def __getitem__(self, name):
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def __iter__(self):
        return iter(self.hosts)

    def __len__(self):
        return len(self.hosts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    def __repr__(self):
        return "SshCluster(%s, %d hosts, %s)" % (self.cid, len(self.hosts), self.root)

    # ------------------------------------------------------------ bring-up

    @classmethod
    def up(cls, count, root=None, names=None, gpus=12, rig_kwargs=None, persistent=False, mask_shell_rc=True,
           extra_group_vars=None, sshd_timeout=20.0):
        """Bring up ``count`` hosts and write the inventory; on any failure everything created is removed.

        root        the cluster folder: new or empty (``down`` removes it); default: a fresh one
        names       host names (default rig01, rig02, ...)
        gpus        GPUs per rig; ``rig_kwargs`` more simrig ``Rig.build`` arguments for every rig
        persistent  True for the CLI: no owning process (lives until ``down``); False: owned by
                    this process, and a later ``collect_stale`` removes it once this process is gone
        """
        _require_root()
        if count < 1:
            raise ValueError("a cluster needs at least one host")
        names = list(names or ["rig%02d" % (i + 1) for i in range(count)])
        if len(names) != count or len(set(names)) != count:
            raise ValueError("need %d distinct host names" % count)
        collect_stale()
        root = os.path.abspath(root or default_root())
        if os.path.exists(os.path.join(root, STATE_FILE)):
            raise ClusterError("%s already holds a cluster: bring it down first (scripts/testcluster down --dir %s)"
                               % (root, root))
        if os.path.isdir(root) and os.listdir(root):
            # down() removes the whole folder: never take one that holds anything else.
            raise ClusterError("%s is not empty: give a new or empty folder for the cluster" % root)
        os.makedirs(root, exist_ok=True)
        cluster = cls(root, _new_cid(), owner=not persistent, mask_shell_rc=mask_shell_rc)
        try:
            cluster._create(names, gpus, rig_kwargs or {}, persistent, sshd_timeout)
            cluster.write_inventory(extra_group_vars=extra_group_vars)
        except BaseException:
            cluster.down()
            raise
        return cluster

    def _create(self, names, gpus, rig_kwargs, persistent, sshd_timeout):
        simrig = _simrig()
        for sub in ("keys", "hosts", "cp", "summaries", "rigs"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        os.chmod(self.control_dir, 0o700)
        with netns.registry_lock():
            octets = netns.allocate_octets(len(names))
            self.hosts = [SshHost(self, name, i + 1, octets[i], os.path.join(self.rigs_dir, name))
                          for i, name in enumerate(names)]
            entry = {"cid": self.cid, "dir": self.root, "octets": octets, "created": time.time(),
                     "owner_pid": None if persistent else os.getpid(),
                     "owner_start": None if persistent else netns.process_start(os.getpid()),
                     "namespaces": [h.ns for h in self.hosts], "links": [h.veth for h in self.hosts]}
            netns.write_entry(self.cid, entry)
            self._save()
            self._create_network()
        # Keys and rigs while nothing waits on them.
        for host in self.hosts:
            os.makedirs(host.temp_dir, exist_ok=True)
        keygens = [self._keygen(self.client_key, "gpuops-testcluster-client")]
        keygens += [self._keygen(h.host_key, "gpuops-testcluster-%s" % h.name) for h in self.hosts]
        with open(self.masked_rc, "w") as handle:
            handle.write("# gpuops testcluster: the controller's ~/.bashrc (pyenv init) is masked on test hosts\n")
        spec = {h.name: dict(rig_kwargs, gpus=gpus) for h in self.hosts}
        simrig.build_cluster(self.rigs_dir, spec)
        for proc, path in keygens:
            err = proc.communicate(timeout=60)[1]
            if proc.returncode != 0:
                raise ClusterError("ssh-keygen %s failed: %s" % (path, err.decode(errors="replace")))
        with open(self.client_key + ".pub") as handle:
            authorized = handle.read()
        authorized_keys = os.path.join(self.root, "keys", "authorized_keys")
        with open(authorized_keys, "w") as handle:
            handle.write(authorized)
        known = []
        for host in self.hosts:
            with open(host.host_key + ".pub") as handle:
                key_type, key = handle.read().split()[:2]
            known.append("%s %s %s\n" % (host.address, key_type, key))
            with open(host.sshd_config, "w") as handle:
                handle.write(SSHD_CONFIG.format(name=host.name, port=host.port, address=host.address,
                                                host_key=host.host_key, pid_file=host.pid_file,
                                                authorized_keys=authorized_keys, temp_dir=host.temp_dir))
        with open(self.known_hosts, "w") as handle:
            handle.writelines(known)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        check = run([SSHD, "-t", "-f", self.hosts[0].sshd_config], check=False)
        if check.returncode != 0:
            raise ClusterError("sshd rejects the generated config: %s" % check.stderr.strip())
        launchers = [(h, h.launch_sshd()) for h in self.hosts]
        with ThreadPoolExecutor(max_workers=min(16, len(launchers))) as pool:
            list(pool.map(lambda item: item[0].wait_sshd(item[1], sshd_timeout), launchers))

    @staticmethod
    def _keygen(path, comment):
        proc = subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return proc, path

    def _create_network(self):
        root_cmds = []
        for h in self.hosts:
            root_cmds += ["netns add %s" % h.ns,
                          "link add %s type veth peer name eth0 netns %s" % (h.veth, h.ns),
                          "addr add %s/30 dev %s" % (h.gateway, h.veth),
                          "link set %s up" % h.veth]
        run(["ip", "-batch", "-"], input="\n".join(root_cmds) + "\n", timeout=120)
        procs = []
        for h in self.hosts:
            script = "link set lo up\naddr add %s/30 dev eth0\nlink set eth0 up\n" % h.address
            proc = subprocess.Popen(["ip", "-n", h.ns, "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            procs.append((h, proc, script))
        for h, proc, script in procs:
            err = proc.communicate(script, timeout=60)[1]
            if proc.returncode != 0:
                raise ClusterError("%s: network set-up failed: %s" % (h.name, err.strip()))

    def _save(self):
        state = {"cid": self.cid, "root": self.root, "owner": self.owner, "mask_shell_rc": self.mask_shell_rc,
                 "inventory": self.inventory, "hosts": [h.as_dict() for h in self.hosts]}
        tmp = os.path.join(self.root, STATE_FILE + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(self.root, STATE_FILE))

    @classmethod
    def load(cls, root):
        """Reopen a cluster brought up by another process (the CLI)."""
        with open(os.path.join(root, STATE_FILE)) as handle:
            state = json.load(handle)
        cluster = cls(state["root"], state["cid"], owner=False, mask_shell_rc=state.get("mask_shell_rc", True))
        cluster.inventory = state.get("inventory")
        cluster.hosts = [SshHost(cluster, h["name"], h["index"], h["octet"], h["rig"]) for h in state["hosts"]]
        return cluster

    # ------------------------------------------------------------ inventory

    def write_inventory(self, path=None, hosts=None, extra_group_vars=None, extra_hosts=None, host_overrides=None):
        """Write a YAML inventory: group ``rigs`` with one entry per host (``host_vars()``), the rigs'
        ``preflight_steps`` and ``preflight_summary_dir`` (``<dir>/summaries``) as group vars.

        hosts            names to include (default all); ``extra_hosts`` {name: vars} more entries;
        host_overrides   {name: {var: value}} per host. Returns the path (also ``self.inventory``
        when ``path`` is None)."""
        simrig = _simrig()
        chosen = [self[n] for n in hosts] if hosts else list(self.hosts)
        entries = {}
        for host in chosen:
            entries[host.name] = host.host_vars(**((host_overrides or {}).get(host.name) or {}))
        entries.update(extra_hosts or {})
        group_vars = {"preflight_summary_dir": self.summary_dir}
        group_vars.update(extra_group_vars or {})
        default = path is None
        path = path or os.path.join(self.root, "inventory.yml")
        simrig.write_inventory(path, entries, extra_group_vars=group_vars, steps=self.hosts[0].rig.steps)
        if default:
            self.inventory = path
            self._save()
        return path

    # ------------------------------------------------------------ connections

    def control_sockets(self):
        try:
            return [os.path.join(self.control_dir, n) for n in os.listdir(self.control_dir)]
        except OSError:
            return []

    def close_connections(self):
        """Close every ControlPersist master Ansible opened to these hosts (``ssh -O exit``), then
        kill any ssh client still naming this cluster's folder. Returns the sockets closed."""
        closed = []
        for sock in self.control_sockets():
            proc = run(["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "gpct-control"], check=False, timeout=10)
            closed.append(sock)
            if proc.returncode != 0 and os.path.exists(sock):
                try:
                    os.unlink(sock)
                except OSError:
                    pass
        self._kill_clients()
        return closed

    def _kill_clients(self):
        """ssh clients on the controller whose command line names this cluster's folder."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            if netns.process_name(pid) != "ssh":
                continue
            cmdline = netns.process_cmdline(pid) or ""
            if self.root + "/" in cmdline:
                pids.append(pid)
        netns.kill_pids(pids)
        return pids

    # ------------------------------------------------------------ health

    def heal(self, rebuild_rigs=True, hosts=None):
        """Undo every fault: kill each host's processes (their mounts go with them), rebuild its rig,
        restart sshd, close the controller's masters. For tests sharing a cluster."""
        self.close_connections()
        chosen = [self[n] for n in hosts] if hosts else self.hosts
        for host in chosen:
            host.kill_all()
            host.clear_temp()  # as a reboot empties a tmpfs /tmp: what killed modules left there
        self._reap_children()
        if rebuild_rigs:
            simrig = _simrig()
            before = dict((h.name, h.host_vars()) for h in chosen)
            for host in chosen:
                old = host.rig
                simrig.Rig.build(self.rigs_dir, host.name, gpus=len(old.gpus_by_position),
                                 inputs_root=old.inputs_root, steps=old.state["steps"])
                host.reload_rig()
            if self.inventory and any(before[h.name] != h.host_vars() for h in chosen):
                self.write_inventory()  # a /dev/shm ramdisk moved (cluster folder not on a tmpfs)
        for host in chosen:
            host.restore_network()
        launchers = [(h, h.launch_sshd()) for h in chosen]
        for host, launcher in launchers:
            host.wait_sshd(launcher)

    def _reap_children(self):
        for proc in self._children:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        self._children = []

    def status(self):
        """{host: {address, ns, sshd_pid, banner, processes}} for every host."""
        out = {}
        existing = set(netns.netns_list())
        for host in self.hosts:
            present = host.ns in existing
            out[host.name] = {"address": host.address, "ns": host.ns, "ns_exists": present,
                              "veth_exists": netns.link_exists(host.veth),
                              "sshd_pid": host.sshd_pid() if present else None,
                              "banner": host.banner(timeout=1.0) if present else None,
                              "processes": len(host.pids()) if present else 0, "rig": host.rig_path}
        return out

    # ------------------------------------------------------------ teardown

    def down(self):
        """Remove everything: masters, every process in every namespace, namespaces, veths, rigs
        (and their /dev/shm ramdisks), the registry entry and the folder. Safe to call twice and
        on a half-built cluster. Raises ClusterError listing what could not be removed."""
        problems = []
        try:
            self.close_connections()
        except Exception as exc:  # keep tearing down
            problems.append("closing connections: %s" % exc)
        self._reap_children()
        result = netns.cleanup_names([h.ns for h in self.hosts], [h.veth for h in self.hosts])
        if result["stuck_pids"]:
            problems.append("processes would not die: %s" % result["stuck_pids"])
        simrig = _simrig()
        for host in self.hosts:
            try:
                if os.path.exists(os.path.join(host.rig_path, "simrig.json")):
                    simrig.Rig.load(host.rig_path).destroy()
            except Exception as exc:
                problems.append("%s: removing the rig: %s" % (host.name, exc))
        shutil.rmtree(self.root, ignore_errors=True)
        if os.path.exists(self.root):
            problems.append("could not remove %s" % self.root)
        left_ns = [h.ns for h in self.hosts if h.ns in netns.netns_list()]
        left_links = [h.veth for h in self.hosts if netns.link_exists(h.veth)]
        if left_ns or left_links:
            problems.append("left behind: namespaces %s, links %s" % (left_ns, left_links))
        netns.remove_entry(self.cid)
        simrig.collect_orphans()
        self._down = True
        if problems:
            raise ClusterError("; ".join(problems))


def _new_cid():
    existing = set(netns.registry_entries())
    names = set(netns.netns_list())
    while True:
        cid = "%04x" % random.SystemRandom().randrange(0x10000)
        if cid not in existing and not any(n.startswith("%s-%s-" % (PREFIX, cid)) for n in names):
            return cid


def teardown_dir(root):
    """``down`` for a folder: the cluster recorded there (if any), by its state file or registry."""
    state = os.path.join(root, STATE_FILE)
    if os.path.exists(state):
        SshCluster.load(root).down()
        return True
    for cid, entry in netns.registry_entries().items():
        if os.path.abspath(entry.get("dir") or "") == os.path.abspath(root):
            netns.cleanup_names(entry.get("namespaces") or [], entry.get("links") or [])
            netns.remove_entry(cid)
            shutil.rmtree(root, ignore_errors=True)
            return True
    return False


class ExitGuard(object):
    """Tear a cluster down when the process exits or gets SIGINT/SIGTERM/SIGHUP before ``disarm``."""

    def __init__(self):
        import signal
        self._signal = signal
        self.cluster_root = None
        self.armed = True
        self._previous = {}
        atexit.register(self._atexit)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _cleanup(self):
        if self.armed and self.cluster_root:
            try:
                teardown_dir(self.cluster_root)
            except Exception as exc:
                sys.stderr.write("testcluster: teardown after interruption failed: %s\n" % exc)
        self.armed = False

    def _atexit(self):
        self._cleanup()

    def _on_signal(self, signum, frame):
        # Unwind: SshCluster.up tears down what it built on the way out, atexit is the backstop.
        raise SystemExit(128 + signum)

    def disarm(self):
        self.armed = False
        for sig, handler in self._previous.items():
            self._signal.signal(sig, handler)


def collect_stale(all_clusters=False):
    """Remove clusters whose owner died or whose folder is gone, then orphan namespaces/links with
    our prefix that no live registry entry claims. ``all_clusters``: remove every cluster too."""
    removed = {"clusters": [], "namespaces": [], "links": []}
    with netns.registry_lock():
        entries = netns.registry_entries()
        live = {}
        for cid, entry in entries.items():
            if all_clusters or not netns.entry_is_live(entry):
                if entry.get("dir") and os.path.exists(os.path.join(entry["dir"], STATE_FILE)):
                    try:
                        SshCluster.load(entry["dir"]).down()
                    except Exception:
                        pass
                result = netns.cleanup_names(entry.get("namespaces") or [], entry.get("links") or [])
                if entry.get("dir") and os.path.isdir(entry["dir"]):
                    shutil.rmtree(entry["dir"], ignore_errors=True)
                netns.remove_entry(cid)
                removed["clusters"].append(cid)
                removed["namespaces"] += result["namespaces"]
                removed["links"] += result["links"]
            else:
                live[cid] = entry
        claimed_ns = set(n for e in live.values() for n in e.get("namespaces") or [])
        claimed_links = set(n for e in live.values() for n in e.get("links") or [])
        orphan_ns = [n for n in netns.netns_list() if netns.ours(n) and n not in claimed_ns]
        orphan_links = [n for n in netns.link_names() if netns.ours(n) and n not in claimed_links]
        result = netns.cleanup_names(orphan_ns, orphan_links)
        removed["namespaces"] += result["namespaces"]
        removed["links"] += result["links"]
    _simrig().collect_orphans()
    return removed
