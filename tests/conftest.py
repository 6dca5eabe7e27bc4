"""Test-wide set-up: import the collection from the clone and the simulated-rig harness.

``scripts/setup`` links .collections/ansible_collections/gpuops/preflight to the clone, so
``ansible_collections.gpuops.preflight...`` imports resolve here as they do under ansible-test.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# src: the package of this clone, not the one a shared venv's editable install points at (another clone).
for path in (ROOT / "src", ROOT / ".collections", ROOT / "tests"):
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))
