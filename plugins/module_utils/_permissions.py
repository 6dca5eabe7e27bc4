# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: who a service runs as, and what Linux lets that user do with a path.

The serving gate (the model store, MPS folders) and the training health check (the daemon's paths) judge
permissions for another user than the one they run as, so never with ``os.access``: ``may_access`` computes
Linux's rules from a stat result, the user's groups and the POSIX access ACL (``read_acl``). Small on purpose:
the training health check ships it without the serving gate's code.
"""

from __future__ import annotations

import os
import stat
import struct

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline
from ansible_collections.gpuops.preflight.plugins.module_utils._values import seconds_text

R_OK, W_OK, X_OK = 4, 2, 1
_ACL_XATTR = "system.posix_acl_access"
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


# The user database may be a directory service (LDAP, SSSD) that stops answering: a lookup waits this long.
IDENTITY_TIMEOUT = 5.0


def service_identity(user=None, environ=None, timeout=IDENTITY_TIMEOUT):
    """The user the service runs as: ``{"name", "uid", "gid", "groups", "source"}``.

    ``user`` (a name or a uid) when given; else, under sudo as root, the user who ran sudo
    (SUDO_UID); else this process's own credentials. ValueError for an unknown user, and for a
    lookup that did not end within ``timeout`` seconds (None: no bound).
    """
    if timeout is None:
        return _identity(user, environ)
    outcome = _deadline.run_all({"identity": (lambda: _identity(user, environ), timeout)})["identity"]
    if outcome.timed_out:
        raise ValueError("looking up the service user%s took over %ss: is the user database (LDAP, SSSD) answering?"
                         % (" %r" % (user,) if user not in (None, "") else "", seconds_text(timeout)))
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _identity(user, environ):
    import pwd  # POSIX only, imported where it is used
    environ = os.environ if environ is None else environ
    if user not in (None, ""):
        text = str(user).strip()
        try:
            # a uid is ASCII digits: int() takes other scripts' digits, and '²' is a digit it refuses
            entry = pwd.getpwuid(int(text)) if text.isdecimal() and text.isascii() else pwd.getpwnam(text)
        except (KeyError, OverflowError):
            raise ValueError("service user %r does not exist on this host" % (user,))
        return {"name": entry.pw_name, "uid": entry.pw_uid, "gid": entry.pw_gid,
                "groups": sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid))), "source": "given"}
    euid = os.geteuid()
    sudo_uid = environ.get("SUDO_UID", "")
    if euid == 0 and sudo_uid.isdigit() and int(sudo_uid) != 0:
        uid = int(sudo_uid)
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            gid = int(environ.get("SUDO_GID", "0") or 0) if str(environ.get("SUDO_GID", "")).isdigit() else uid
            return {"name": str(uid), "uid": uid, "gid": gid, "groups": [gid], "source": "sudo"}
        return {"name": entry.pw_name, "uid": uid, "gid": entry.pw_gid,
                "groups": sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid))), "source": "sudo"}
    try:
        name = pwd.getpwuid(euid).pw_name
    except KeyError:
        name = str(euid)
    return {"name": name, "uid": euid, "gid": os.getegid(), "groups": sorted(set(os.getgroups()) | {os.getegid()}),
            "source": "process"}


def read_acl(path):
    """The POSIX access ACL of ``path`` as [(tag, perm, id)], or None when it has none (or it cannot be read)."""
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        raw = getxattr(path, _ACL_XATTR)
    except OSError:
        return None
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack("<I", raw[:4])[0] != 2:
        return None
    return [struct.unpack("<HHI", raw[i:i + 8]) for i in range(4, len(raw), 8)]


def may_access(st, ident, want, acl=None):
    """Would the user ``ident`` get ``want`` (R_OK|W_OK|X_OK bits) on a file with stat ``st``?

    Linux's rules, computed, never os.access (the gate may run as root for another user): root
    may read and search anything, and execute a file only with some x bit; the owner gets the
    owner bits only; then named users, the owning and named groups (through the ACL mask) and
    others, as the POSIX ACL (when there is one) or the mode says.
    """
    mode = st.st_mode
    if ident["uid"] == 0:
        return not (want & X_OK) or stat.S_ISDIR(mode) or bool(mode & 0o111)
    if st.st_uid == ident["uid"]:
        return ((mode >> 6) & want) == want
    groups = set(ident.get("groups") or []) | {ident["gid"]}
    if acl:
        mask = 7
        for tag, perm, _id in acl:
            if tag == _ACL_MASK:
                mask = perm
        for tag, perm, qid in acl:
            if tag == _ACL_USER and qid == ident["uid"]:
                return ((perm & mask) & want) == want
        matched = False
        for tag, perm, qid in acl:
            if (tag == _ACL_GROUP_OBJ and st.st_gid in groups) or (tag == _ACL_GROUP and qid in groups):
                matched = True
                if ((perm & mask) & want) == want:
                    return True
        if matched:
            return False
        for tag, perm, _id in acl:
            if tag == _ACL_OTHER:
                return (perm & want) == want
        return False
    if st.st_gid in groups:
        return ((mode >> 3) & want) == want
    return (mode & want) == want


def owner_text(st):
    import grp  # POSIX only, imported where it is used
    import pwd
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return "mode %04o %s:%s" % (stat.S_IMODE(st.st_mode), owner, group)


def user_text(ident):
    return "user '%s' (uid %d)" % (ident["name"], ident["uid"])


def ancestors(path):
    """'/a/b/c' -> ['/', '/a', '/a/b'] (the directories one passes through to reach ``path``)."""
    out, current = [], os.path.dirname(path)
    while True:
        out.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return list(reversed(out))
