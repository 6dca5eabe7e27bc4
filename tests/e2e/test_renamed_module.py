"""A renamed module keeps working under its old name, with the deprecation meta/runtime.yml declares."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from e2e.runner import BIN, REPO

LOG = os.path.join(REPO, "tests", "fixtures", "gpu", "dmesg", "mi300x_smu_0xffffffff_failed_read_reg_counts_ROCm-4268.txt")


def adhoc(module):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="1")
    return subprocess.run([os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-i", "localhost,",
                           "-e", "ansible_python_interpreter=" + sys.executable, "-m", module,
                           "-a", json.dumps({"source": "file", "path": LOG})],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_old_kernel_log_module_name_runs_the_new_module_and_says_it_is_deprecated():
    old, new = adhoc("gpuops.preflight.amdgpu_kernel_log_info"), adhoc("gpuops.preflight.gpu_kernel_log_info")
    assert old.returncode == 0 and new.returncode == 0, old.stdout + old.stderr
    output = old.stdout + old.stderr
    assert "amdgpu_kernel_log_info is now gpuops.preflight.gpu_kernel_log_info" in " ".join(output.split())
    assert "3.0.0" in output and "deprecat" in output.lower()
    assert "deprecat" not in (new.stdout + new.stderr).lower()

    def findings(proc):
        text = proc.stdout
        return [(f["category"], f["severity"]) for f in json.loads(text[text.index("=>") + 2:])["findings"]]
    assert findings(old) == findings(new) and any(severity == "hard" for _category, severity in findings(new))
