"""pytest fixtures for the SSH test hosts (tests/cluster).

``ssh_cluster``  module scoped: ``CLUSTER_HOSTS`` hosts (module attribute, default 3) with
                 ``CLUSTER_GPUS`` GPUs each (default 12), brought down by a finalizer (also when a
                 test failed); a crashed run's leftovers are collected before bring-up.
``testcluster``  the module's cluster for one test: healthy when the test starts, healed after
                 (every host's processes killed, so its mounts and faults go too; rigs rebuilt;
                 network restored; sshd restarted; the controller's ControlPersist masters closed).

The hosts need root, network namespaces and openssh-server (scripts/install-test-deps). Where
they cannot run the tests are skipped with the reason; set GPUOPS_REQUIRE_CLUSTER=1 (CI) to
make that a failure instead.
"""

from __future__ import annotations

import os

import pytest

from cluster import SshCluster, environment_problem


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: needs SSH test hosts (root, network namespaces, sshd)")


@pytest.fixture(scope="session")
def cluster_environment():
    problem = environment_problem()
    if problem:
        message = "SSH test hosts unavailable: %s (run scripts/install-test-deps as root)" % problem
        if os.environ.get("GPUOPS_REQUIRE_CLUSTER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def ssh_cluster(request, cluster_environment):
    count = getattr(request.module, "CLUSTER_HOSTS", 3)
    gpus = getattr(request.module, "CLUSTER_GPUS", 12)
    cluster = SshCluster.up(count, gpus=gpus)
    request.addfinalizer(cluster.down)
    return cluster


@pytest.fixture
def testcluster(ssh_cluster, request):
    request.addfinalizer(ssh_cluster.heal)
    return ssh_cluster
