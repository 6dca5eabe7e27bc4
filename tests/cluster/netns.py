"""Low-level pieces of the SSH test hosts: commands, network namespaces, veths, the registry.

Everything this package creates on the machine is named with ``PREFIX`` (network namespaces
``gpct-<cluster id>-<n>``, host-side veths ``gpct<cluster id>h<n>``) and recorded in a registry
entry ``REGISTRY_DIR/<cluster id>.json`` before it is created, so that a later run can find and
remove what a crashed one left behind (``collect_stale``). Nothing here touches a namespace or
link without that prefix.

Addresses are link-local /30s, one per host, each with its own third octet:
``169.254.<octet>.1`` on the controller's veth, ``169.254.<octet>.2`` inside the namespace.
Octets in use on the machine (any interface address or route in 169.254.<octet>.0/24), the
metadata octet 169 and octets other registry entries hold are never handed out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import time

PREFIX = "gpct"
REGISTRY_DIR = os.environ.get("GPUOPS_TESTCLUSTER_REGISTRY", "/run/gpuops-testcluster")
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
# Third octets handed out: 169.254.169.254 is the cloud metadata address, 0 and 255 are odd.
OCTETS = [o for o in range(20, 250) if o != 169]


class CommandError(RuntimeError):
    def __init__(self, cmd, rc, stdout, stderr):
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr
        RuntimeError.__init__(self, "%s exited %s: %s" % (" ".join(cmd), rc, (stderr or stdout or "").strip()[-400:]))


def run(cmd, check=True, timeout=30, input=None, env=None):
    """Run a command (argv list), capture text output; raise CommandError when ``check`` and rc != 0."""
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise CommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


# ---------------------------------------------------------------- namespaces and links


def netns_list():
    """Names of the network namespaces ``ip netns`` knows."""
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns):
    """Pids of every process whose network namespace is ``ns`` (empty when it does not exist)."""
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def process_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return None


def process_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None


def process_start(pid):
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid from the original)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid, start=None):
    if not pid:
        return False
    current = process_start(pid)
    return current is not None and (start is None or current == start)


def kill_pids(pids, timeout=5.0):
    """SIGKILL every pid, then wait until each is gone (zombies of other parents count as gone)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if _running(p)]
        if left:
            time.sleep(0.02)
    return left


def _running(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:  # our own child: reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def kill_netns_processes(ns, timeout=5.0):
    """Kill every process in ``ns`` until none is left (new ones may appear while sshd forks)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in netns_pids(ns) if p != os.getpid()]
        if not pids:
            return []
        left = kill_pids(pids, timeout=max(deadline - time.monotonic(), 0.1))
        if time.monotonic() >= deadline:
            return left or [p for p in netns_pids(ns) if p != os.getpid()]


def link_names():
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def link_exists(name):
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def delete_netns(ns, timeout=5.0):
    """Kill the namespace's processes and delete it. Returns the pids that would not die."""
    if ns not in netns_list():
        return []
    left = kill_netns_processes(ns, timeout)
    run(["ip", "netns", "del", ns], check=False)
    return left


def delete_link(name, timeout=5.0):
    """Delete a veth (its peer goes with it) and wait until the kernel has let go of the name."""
    deadline = time.monotonic() + timeout
    while link_exists(name):
        run(["ip", "link", "del", "dev", name], check=False)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def used_octets():
    """Third octets of 169.254.x.y addresses and routes present on the machine right now."""
    used = set()
    for cmd in (["ip", "-o", "-4", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        for word in run(cmd, check=False).stdout.split():
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if net.version != 4 or not net.overlaps(LINK_LOCAL):
                continue
            if net.prefixlen <= 16:
                continue  # a /16 link-local route (zeroconf) does not pin an octet
            first, last = int(net.network_address), int(net.broadcast_address)
            for value in range(first, last + 1, 256) if net.prefixlen < 24 else [first]:
                used.add((value >> 8) & 0xFF)
    return used


# ---------------------------------------------------------------- the registry


@contextlib.contextmanager
def registry_lock():
    """Serialise octet allocation and creation between concurrent clusters on this machine."""
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    with open(os.path.join(REGISTRY_DIR, ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def registry_entries():
    """{cluster id: entry} for every registry entry that can be read."""
    out = {}
    try:
        names = os.listdir(REGISTRY_DIR)
    except OSError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(REGISTRY_DIR, name)) as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            continue
        out[name[:-5]] = entry
    return out


def write_entry(cid, entry):
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    path = os.path.join(REGISTRY_DIR, cid + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(entry, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def remove_entry(cid):
    try:
        os.unlink(os.path.join(REGISTRY_DIR, cid + ".json"))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def entry_is_live(entry):
    """A cluster is live while its folder exists and, for one a process owns, that process runs."""
    if not entry.get("dir") or not os.path.isdir(entry["dir"]):
        return False
    owner = entry.get("owner_pid")
    if owner is None:
        return True  # brought up by the CLI: lives until `down`
    return pid_alive(owner, entry.get("owner_start"))


def allocate_octets(count, taken=()):
    """``count`` free third octets (caller holds ``registry_lock``)."""
    busy = used_octets() | set(taken)
    for entry in registry_entries().values():
        busy.update(entry.get("octets") or [])
    free = [o for o in OCTETS if o not in busy]
    if len(free) < count:
        raise RuntimeError("only %d free 169.254.x.0/30 subnets for %d hosts" % (len(free), count))
    return free[:count]


def ours(name):
    return name.startswith(PREFIX)


def cleanup_names(namespaces, links, timeout=5.0):
    """Remove the given namespaces (killing their processes) and links; report what was removed."""
    removed = {"namespaces": [], "links": [], "stuck_pids": []}
    existing_ns = set(netns_list())
    for ns in namespaces:
        if ns in existing_ns:
            removed["stuck_pids"] += delete_netns(ns, timeout)
            removed["namespaces"].append(ns)
    existing_links = set(link_names())
    for link in links:
        if link in existing_links:
            delete_link(link, timeout)
            removed["links"].append(link)
    return removed
