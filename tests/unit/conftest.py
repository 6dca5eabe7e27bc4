"""Unit-test set-up: Ansible's per-process temporary directories go under one directory of the run's own.

ansible.constants makes a directory (``ansible-local-*``, in ~/.ansible/tmp) when it is first imported and
removes it at exit. ansible-test units runs every test in a fork that ends with os._exit, so each test that
imports it would leave one behind: here they are made under a directory of this process, removed at its end.
"""

import atexit
import os
import shutil
import tempfile

if "ANSIBLE_LOCAL_TEMP" not in os.environ:
    _LOCAL_TEMP = tempfile.mkdtemp(prefix="gpuops-unit-ansible-")
    os.environ["ANSIBLE_LOCAL_TEMP"] = _LOCAL_TEMP
    atexit.register(shutil.rmtree, _LOCAL_TEMP, True)
