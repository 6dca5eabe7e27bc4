"""The execution environment: meta/execution-environment.yml, requirements.txt, bindep.txt.

scripts/ee-context builds the collection, writes a complete ansible-builder definition that
installs it, and runs ``ansible-builder create``; the generated context is checked here. The
collection-level requirements are checked the way the image build reads them: the built tarball
is installed, and ansible-builder's introspection lists what it would install for it.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def run(argv, **kwargs):
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                          check=False, universal_newlines=True, **kwargs)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def ee(tmp_path_factory):
    out = tmp_path_factory.mktemp("ee")
    run([ROOT / "scripts" / "ee-context", out, "localhost/gpuops-ee-base:test"],
        env=dict(os.environ, GPUOPS_VENV_BIN=str(BIN)))
    return out


def galaxy_version():
    with open(ROOT / "galaxy.yml") as handle:
        return yaml.safe_load(handle)["version"]


def test_the_collection_metadata_is_valid_for_ansible_builder():
    from ansible_builder import ee_schema

    with open(ROOT / "meta" / "execution-environment.yml") as handle:
        definition = yaml.safe_load(handle)
    ee_schema.validate_schema(definition)
    assert definition["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    for name in definition["dependencies"].values():  # relative to the collection root, as introspection reads them
        assert (ROOT / name).is_file()


def test_the_context_installs_the_built_collection_on_the_given_base(ee):
    tarball = "gpuops-preflight-%s.tar.gz" % galaxy_version()
    containerfile = (ee / "context" / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="localhost/gpuops-ee-base:test"' in containerfile
    assert "COPY _build/collections/ /build/collections/" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile  # the collection's requirements are read during the build
    assert (ee / "context" / "_build" / "collections" / tarball).is_file()
    with open(ee / "context" / "_build" / "requirements.yml") as handle:
        requirements = yaml.safe_load(handle)
    assert requirements["collections"] == [{"name": "/build/collections/%s" % tarball, "type": "file"}]
    definition = yaml.safe_load((ee / "definition" / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    assert definition["dependencies"]["ansible_core"]["package_pip"].startswith("ansible-core==")
    assert definition["dependencies"]["ansible_runner"]["package_pip"].startswith("ansible-runner==")


def test_the_built_collection_ships_its_requirements(ee):
    tarball = ee / "definition" / ("gpuops-preflight-%s.tar.gz" % galaxy_version())
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"MANIFEST.json", "meta/execution-environment.yml", "requirements.txt", "bindep.txt"} <= names


def test_introspection_of_the_installed_collection_lists_its_requirements(ee, tmp_path):
    tarball = ee / "definition" / ("gpuops-preflight-%s.tar.gz" % galaxy_version())
    # --force, outside the clone: the clone's ansible.cfg sees its own copy as installed already.
    run([BIN / "ansible-galaxy", "collection", "install", "--offline", "--force", "-p", tmp_path, tarball],
        cwd=str(tmp_path))
    assert (tmp_path / "ansible_collections" / "gpuops" / "preflight" / "MANIFEST.json").is_file()
    found = yaml.safe_load(run([BIN / "ansible-builder", "introspect", "--sanitize", tmp_path]).split("---", 1)[1])
    assert found["python"] == ["ansible-runner>=2.4  # from collection gpuops.preflight"]
    assert sorted(found["system"]) == ["openssh-client [platform:dpkg]  # from collection gpuops.preflight",
                                       "openssh-clients [platform:rpm]  # from collection gpuops.preflight"]


def test_a_missing_output_folder_argument_is_refused():
    proc = subprocess.run([str(ROOT / "scripts" / "ee-context")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=60, check=False, universal_newlines=True)
    assert proc.returncode != 0 and "usage: scripts/ee-context OUT" in proc.stdout


def test_a_debian_base_gets_apt_get_and_its_own_pip(tmp_path):
    """What scripts/build-ee asks for (it builds the image on a Debian base it makes itself)."""
    env = dict(os.environ, GPUOPS_VENV_BIN=str(BIN), GPUOPS_EE_PYTHON="python3.13",
               GPUOPS_EE_PACKAGE_MANAGER="/usr/bin/apt-get", GPUOPS_EE_PIP_IN_BASE="1")
    run([ROOT / "scripts" / "ee-context", tmp_path, "localhost/gpuops-ee-base:trixie"], env=env)
    definition = yaml.safe_load((tmp_path / "definition" / "execution-environment.yml").read_text())
    assert definition["options"] == {"package_manager_path": "/usr/bin/apt-get", "skip_pip_install": True}
    assert definition["dependencies"]["python_interpreter"] == {"package_system": "python3.13",
                                                                "python_path": "/usr/bin/python3.13"}
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert 'ARG PKGMGR="/usr/bin/apt-get"' in containerfile and 'ARG PYCMD="/usr/bin/python3.13"' in containerfile
    assert "pip_install" not in containerfile  # Debian's python has no ensurepip
