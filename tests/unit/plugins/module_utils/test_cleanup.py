from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _cleanup


def test_cache_errors_are_grouped_per_folder():
    targets = [{"path": "/h/.cache/miopen"}, {"path": "/h/.cache/comgr_cache"}]
    errors = [{"path": "/h/.cache/miopen/2.19.0/a.ukdb", "message": "cannot remove /h/.cache/miopen/2.19.0/a.ukdb: Read-only file system"},
              {"path": "/h/.cache/miopen/2.19.0/b.ukdb", "message": "cannot remove /h/.cache/miopen/2.19.0/b.ukdb: Read-only file system"},
              {"path": "/h/.cache/comgr_cache", "message": "cannot remove /h/.cache/comgr_cache: Permission denied"},
              {"path": None, "message": "refused to remove 'x': not a planned cache target"}]
    assert _cleanup.group_errors(errors, targets) == [
        "could not remove 2 paths in /h/.cache/miopen, e.g. cannot remove /h/.cache/miopen/2.19.0/a.ukdb: Read-only file system",
        "cannot remove /h/.cache/comgr_cache: Permission denied",
        "refused to remove 'x': not a planned cache target",
    ]
