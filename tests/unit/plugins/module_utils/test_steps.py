from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk, _steps


@pytest.mark.parametrize("value, step", [
    ("03", "3"), ("3.0", "3"), (" 3", "3"), (3, "3"), (3.0, "3"), ("2.50", "2.5"), (2.5, "2.5"), (0, "0"),
    (1e3, "1000"), ("999999999.999999999", "999999999.999999999"),
])
def test_steps_given_every_way_mean_what_they_say(value, step):
    assert _steps.parse_step(value) == step
    assert _steps.folder_name(_steps.parse_step(value)) == "step" + step


@pytest.mark.parametrize("value, text", [
    ("-1", "step must be a step number of 0 or more, whole or decimal (e.g. -e step=3 or -e step=2.5), got '-1'"),
    ("1e3", "got '1e3'"),
    (True, "step must be a step number (e.g. -e step=3 or -e step=2.5), got True"),
    (-1, "got -1"),
    ("../3", "got '../3'"),
    ("3/../../etc", "got '3/../../etc'"),
    (10 ** 30, "step 1000000000000000000000000000000 has more than 9 digits on a side of the point"),
    (float("nan"), "got nan"),
])
def test_bad_steps_are_refused_naming_the_problem(value, text):
    with pytest.raises(ValueError) as err:
        _steps.parse_step(value)
    assert text in str(err.value)


def test_a_huge_step_number_is_refused_naming_the_option_not_pythons_int_limit():
    # str() of an int over 4300 digits raises Python's own ValueError, which names no option
    with pytest.raises(ValueError) as err:
        _steps.parse_step(10 ** 5000, "preflight_steps key")
    assert str(err.value).startswith("preflight_steps key must be a step number of at most 9 digits on a side of the "
                                     "point (e.g. -e step=3 or -e step=2.5), got a number of 5001 digits")


def test_a_huge_step_text_is_refused_with_a_short_message():
    with pytest.raises(ValueError) as err:
        _steps.parse_step("9" * 100000)
    assert len(str(err.value)) < 300
    assert "100000 characters" in str(err.value)
    with pytest.raises(ValueError) as err:
        _steps.parse_step("x" * 100000)
    assert len(str(err.value)) < 300


def test_a_step_folder_never_leaves_the_root():
    assert _ramdisk.step_folder("/dev/shm/prng", "03") == "/dev/shm/prng/step3"
    for folder in ("..", "../x", "a/../../x", "/etc", ".", "./"):
        with pytest.raises(ValueError) as err:
            _ramdisk.step_folder("/dev/shm/prng", 3, folder)
        assert "must be a name inside the ramdisk root" in str(err.value)
