"""The SSH test-host library and its CLI: bring-up, what a host looks like, teardown leaving nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from cluster import REMOTE_PYTHON, SshCluster, collect_stale, netns, playbook
from cluster.hosts import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def leftovers(cid, root):
    """Everything of cluster ``cid`` still on the machine."""
    out = {
        "namespaces": [n for n in netns.netns_list() if n.startswith("gpct-%s-" % cid)],
        "links": [n for n in netns.link_names() if n.startswith("gpct%s" % cid)],
        "registry": cid in netns.registry_entries(),
        "dir": os.path.exists(root),
        "processes": [],
    }
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            cmdline = netns.process_cmdline(int(entry)) or ""
            if root + "/" in cmdline:
                out["processes"].append((int(entry), cmdline))
    return out


NOTHING = {"namespaces": [], "links": [], "registry": False, "dir": False, "processes": []}


def test_hosts_are_reachable_only_over_ssh_and_down_leaves_nothing(cluster_environment, tmp_path):
    root = str(tmp_path / "cl")
    cl = SshCluster.up(2, root=root, gpus=2)
    try:
        octets = [h.octet for h in cl]
        assert len(set(octets)) == 2 and 169 not in octets
        for host in cl:
            assert host.address == "169.254.%d.2" % host.octet and host.gateway == "169.254.%d.1" % host.octet
            assert host.banner().startswith("SSH-2.0-OpenSSH")
            routes = netns.run(["ip", "-n", host.ns, "-4", "route", "show"]).stdout.split("\n")
            assert [r.split()[0] for r in routes if r.strip()] == ["169.254.%d.0/30" % host.octet]  # no default route
            # Key login as root; the host key is checked against the cluster's own known_hosts.
            out = host.ssh("id -u; echo $HOME; readlink -f /proc/$$/ns/net").stdout.split()
            assert out[0] == "0"
            assert out[2] != os.readlink("/proc/self/ns/net")  # the command ran inside the namespace
        wrong = os.path.join(root, "empty_known_hosts")
        open(wrong, "w").close()
        refused = netns.run(["ssh", "-o", "UserKnownHostsFile=%s" % wrong, "-o", "GlobalKnownHostsFile=/dev/null",
                             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-i", cl.client_key,
                             "root@%s" % cl.hosts[0].address, "true"], check=False)
        assert refused.returncode == 255 and "Host key verification failed" in refused.stderr

        with open(cl.inventory) as handle:
            inventory = yaml.safe_load(handle)
        group = inventory["all"]["children"]["rigs"]
        assert sorted(group["hosts"]) == ["rig01", "rig02"]
        assert group["vars"]["preflight_summary_dir"] == os.path.join(root, "summaries")
        assert 3 in group["vars"]["preflight_steps"]
        for name, hostvars in group["hosts"].items():
            host = cl[name]
            assert hostvars["ansible_connection"] == "ssh" and hostvars["ansible_user"] == "root"
            assert hostvars["ansible_host"] == host.address
            assert hostvars["ansible_python_interpreter"] == REMOTE_PYTHON
            assert hostvars["ansible_ssh_private_key_file"] == cl.client_key
            assert hostvars["ansible_control_path_dir"] == os.path.join(root, "cp")
            assert hostvars["preflight_rocm_smi"] == os.path.join(host.rig.path, "bin", "rocm-smi")
            assert hostvars["preflight_sysfs_root"].startswith(host.rig.path)
            assert hostvars["expected_gpu_count"] == 2

        ping = playbook.adhoc(cl.inventory, "ping", timeout=120)
        assert ping.rc == 0 and ping.stdout.count('"ping": "pong"') == 2, ping.tail()
        assert cl.control_sockets()  # ControlPersist masters in the cluster's folder
        assert leftovers(cl.cid, root)["processes"]
    finally:
        cl.down()
    assert leftovers(cl.cid, root) == NOTHING


def test_a_crashed_owner_is_collected_as_stale(cluster_environment, tmp_path):
    root = str(tmp_path / "crashed")
    script = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, %r)
        from cluster import SshCluster
        cl = SshCluster.up(2, root=%r, gpus=1)
        cl.hosts[0].ssh("true")
        print(cl.cid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """ % (os.path.join(REPO, "tests"), root))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -9, proc.stderr
    cid = proc.stdout.strip()
    before = leftovers(cid, root)
    assert len(before["namespaces"]) == 2 and before["registry"]  # the crash left it all behind

    removed = collect_stale()

    assert cid in removed["clusters"]
    assert leftovers(cid, root) == NOTHING


def test_cli_up_status_down(cluster_environment, tmp_path):
    root = str(tmp_path / "cli")
    cli = os.path.join(REPO, "scripts", "testcluster")
    up = subprocess.run([cli, "up", "2", "--dir", root, "--gpus", "1"], capture_output=True, text=True, timeout=120, check=False)
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == os.path.join(root, "inventory.yml")
        again = subprocess.run([cli, "up", "1", "--dir", root], capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 1 and "already holds a cluster" in again.stderr
        status = subprocess.run([cli, "status", "--dir", root, "--json"], capture_output=True, text=True, timeout=60, check=False)
        report = json.loads(status.stdout)
        (cid, info), = report["clusters"].items()
        assert info["live"] is True and info["owner_pid"] is None and info["dir"] == root
        assert sorted(info["hosts"]) == ["rig01", "rig02"]
        assert all(h["sshd_pid"] and h["banner"].startswith("SSH-2.0") for h in info["hosts"].values())
    finally:
        down = subprocess.run([cli, "down", "--dir", root], capture_output=True, text=True, timeout=120, check=False)
    assert down.returncode == 0, down.stderr
    assert "removed cluster in %s" % root in down.stdout
    assert leftovers(cid, root) == NOTHING
