# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: find a tool (a GPU tool, journalctl, dmesg), or say exactly why it cannot be used.

An operator names a tool by name (looked up on PATH and in the vendor's folders) or by path. When
it cannot be used the reason names what was looked for and what is wrong with it: "not found",
"is a directory", "not a regular file", "is not executable". A missing tool is never silent.
"""

from __future__ import annotations

import os
import stat


def locate(module, wanted, opt_dirs=()):
    """(path, None) when ``wanted`` can be run, else (None, reason)."""
    if not wanted or not isinstance(wanted, str) or "\0" in wanted:
        return None, "no tool named (%r)" % (wanted,)
    if "/" in wanted:
        try:
            st = os.stat(wanted)
        except OSError:
            return None, "%s not found" % wanted
        if stat.S_ISDIR(st.st_mode):
            return None, "%s is a directory, not an executable" % wanted
        if not stat.S_ISREG(st.st_mode):
            return None, "%s is not a regular file" % wanted
        if not os.access(wanted, os.X_OK):
            return None, "%s is not executable (mode %s)" % (wanted, oct(st.st_mode & 0o777))
        return wanted, None
    path = module.get_bin_path(wanted, opt_dirs=list(opt_dirs or []))
    if path:
        return path, None
    where = "PATH" + (" or in %s" % ", ".join(opt_dirs) if opt_dirs else "")
    return None, "%s not found on %s" % (wanted, where)
