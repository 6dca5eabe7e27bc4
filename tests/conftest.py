"""Test-wide set-up: import the collection from the clone and the simulated-rig harness.

``scripts/setup`` links .collections/ansible_collections/gpuops/preflight to the clone, so
``ansible_collections.gpuops.preflight...`` imports resolve here as they do under ansible-test.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT / ".collections", ROOT / "tests"):
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))

# ansible.constants makes its own temporary directory (~/.ansible/tmp/ansible-local-*) when first imported and
# removes it at exit. ansible-test units runs each test in a fork that leaves with os._exit, so a test that
# imported it first would leave one directory behind per test: import it here, once per process that exits
# normally. (ansible-test's module tests cannot import controller code, nor need it.)
try:
    import ansible.constants  # noqa: F401  pylint: disable=unused-import
except ImportError:
    pass
