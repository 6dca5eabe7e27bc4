"""External tools of the operator-output tests: promtool, chromium (scripts/install-report-deps).

A test that needs one skips when it is missing, and FAILS instead when GPUOPS_REQUIRE_REPORT_TOOLS=1
(CI sets it after installing them, so a missing tool can never pass silently there).
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "GPUOPS_REQUIRE_REPORT_TOOLS"


def require_tool(*names: str) -> str:
    """The path of the first of ``names`` on PATH; skip, or fail under GPUOPS_REQUIRE_REPORT_TOOLS=1."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = "%s not installed (scripts/install-report-deps installs it)" % " / ".join(names)
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail("%s, and %s=1 requires it" % (message, REQUIRE_ENV))
    pytest.skip(message)
    raise AssertionError("unreachable")
