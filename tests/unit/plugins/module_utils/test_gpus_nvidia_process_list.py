"""_gpus and _gpu_checks on an nvidia-smi answer without a process list for a GPU: who holds its memory is unknown,
never "nobody"."""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import training
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_nvidia_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus_vendors import FakeModule

GEFORCE_340 = "tensorflow-notes_1x_geforce210_340.98_table_processes_not_supported.txt"
A5000 = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"


def test_table_without_a_process_list_leaves_the_processes_unknown(tmp_path):
    # a wrapper that prints the default table (recorded: driver 340.98, "Compute processes: ... Not Supported")
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:07:00.0")
    result = gpus.probe(FakeModule({"nvidia-smi": (0, training("nvidia-smi", GEFORCE_340), "")}), sysfs_root=root)
    assert [(g["bdf"], g["health"]) for g in result["gpus"]] == [("0000:07:00.0", "ok")]
    assert result["processes"] == [] and result["processes_available"] is False
    assert result["process_lists"] == {"nvidia": False}
    assert result["tool"]["process_list"] == "nvidia-smi gives no process list for 0000:07:00.0 (Not Supported)"
    assert _gpu_checks.missing_process_lists(result) == [
        ("nvidia", "nvidia-smi gives no process list for 0000:07:00.0 (Not Supported)")]


def test_xml_with_a_process_section_of_n_a_leaves_the_processes_unknown(tmp_path):
    # hand-made: the real A5000 XML with <processes>N/A</processes> on its second GPU
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    text = training("nvidia-smi", A5000)
    head, sep, tail = text.partition('<gpu id="00000000:C1:00.0">')
    assert sep
    start, end = tail.index("<processes>"), tail.index("</processes>") + len("</processes>")
    text = head + sep + tail[:start] + "<processes>N/A</processes>" + tail[end:]
    result = gpus.probe(FakeModule({"nvidia-smi": (0, text, "")}), sysfs_root=root)
    assert [p["bdf"] for p in result["processes"]] == ["0000:81:00.0"]
    assert result["processes_available"] is False
    assert result["tool"]["process_list"] == "nvidia-smi gives no process list for 0000:c1:00.0 (N/A)"


def test_a_full_answer_has_its_process_list(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    result = gpus.probe(FakeModule({"nvidia-smi": (0, training("nvidia-smi", A5000), "")}), sysfs_root=root)
    assert result["processes_available"] is True and result["tool"]["process_list"] is None
