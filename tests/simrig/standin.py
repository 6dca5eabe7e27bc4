"""The stand-in executables ``<rig>/bin/rocm-smi`` and ``<rig>/bin/amd-smi`` (POSIX sh, fast).

The script finds its rig from ``$0`` (following symlinks, so a rig folder can be moved or the
tool linked onto PATH) and replays ``<rig>/<tool>.d/``:

``stdout``, ``stderr``, ``rc``  the recording (replayed byte for byte)
``mode``                        replay (default) | hang | slow | fail | garbage | empty
``delay``                       seconds for ``slow``
``fail_stderr``, ``fail_rc``    what ``fail`` prints and returns (the recorded shm-mutex failure)
``garbage_stdout``              what ``garbage`` prints (non-JSON, with a broken ``{`` line)
``<subcommand>/stdout|stderr|rc``  a recording for one subcommand (amd-smi ``static``, ``list``); the
                                default recording answers every other argument list; ``<subcommand>/mode``
                                (and its ``fail_*``, ``delay``) overrides the mode for that subcommand
``gpus``                        ``<index> <sysfs device path> <ok|lost|vanished>``: the devices
                                ``--resetclocks`` walks, in tool-index order
``resetclocks_broken``          if present, ``--resetclocks`` claims success but writes nothing
``calls.log``                   one line per invocation: the arguments, space-joined (appended)

Flags are otherwise IGNORED: whatever ``--show*`` options the product passes, the recording is
what comes back (the recording was made with its own command line; see SOURCES.md).

Modes: ``hang`` ignores SIGTERM (``trap '' TERM``; the child inherits that) and keeps a child
``sleep`` holding stdout, so only SIGKILL of the whole process group ends it and lets a reader
see EOF. ``empty`` is rocm-smi's real "no JSON data" case: nothing on stdout, the WARNING on
stderr, exit 0.
"""

from __future__ import annotations

import os

# The shell pieces both stand-ins share (the NVIDIA one too: nvidia.py): find the rig from $0,
# following links; the hang and slow modes.
RIG_FROM_SELF = r"""self=$0
while [ -h "$self" ]; do
    link=$(readlink "$self")
    case $link in
        /*) self=$link ;;
        *) case $self in */*) self=${self%/*}/$link ;; *) self=$link ;; esac ;;
    esac
done
case $self in */*) bindir=${self%/*} ;; *) bindir=. ;; esac
"""
HANG_AND_SLOW = r"""    hang)
        trap '' TERM INT HUP
        sleep 86400 &
        while :; do wait; sleep 1; done
        ;;
    slow)
        delay=1
        [ -f "$d/delay" ] && read -r delay < "$d/delay"
        sleep "$delay"
        ;;
"""

SCRIPT = r"""#!/bin/sh
# simrig stand-in (tests only, never installed by the product): replays a recording of real
# tool output from <rig>/<tool>.d/. See tests/simrig/standin.py for the file protocol.
""" + RIG_FROM_SELF + r"""tool=${self##*/}
rig=$(cd "$bindir/.." && pwd -P) || exit 127
d=$rig/$tool.d
printf '%s\n' "$*" >> "$d/calls.log" 2>/dev/null

mode=replay
[ -f "$d/mode" ] && read -r mode < "$d/mode"
# a subcommand folder may hold its own mode (amd-smi list failing while metric answers)
case $1 in
    [a-z]*) if [ -f "$d/$1/mode" ]; then d=$d/$1; read -r mode < "$d/mode"; fi ;;
esac

case $mode in
""" + HANG_AND_SLOW + r"""    fail)
        [ -f "$d/fail_stderr" ] && cat "$d/fail_stderr" >&2
        rc=1
        [ -f "$d/fail_rc" ] && read -r rc < "$d/fail_rc"
        exit "$rc"
        ;;
esac

reset=
for arg in "$@"; do
    [ "$arg" = --resetclocks ] && reset=1
done
if [ -n "$reset" ]; then
    bar='============================'
    printf '\n\n%s ROCm System Management Interface %s\n' "$bar" "$bar"
    printf '====================================== Reset Clocks ======================================\n'
    if [ -f "$d/gpus" ]; then
        while read -r idx dev state; do
            f=$rig/sys/$dev/power_dpm_force_performance_level
            if [ "$state" != ok ]; then
                printf 'GPU[%s]\t\t: Unable to reset clocks\n' "$idx"
                continue
            fi
            [ -f "$d/resetclocks_broken" ] || printf 'auto\n' > "$f"
            printf 'GPU[%s]\t\t: OverDrive set to 0\n' "$idx"
            printf 'GPU[%s]\t\t: Successfully reset clocks\n' "$idx"
            printf 'GPU[%s]\t\t: Performance level reset to auto\n' "$idx"
        done < "$d/gpus"
    fi
    printf '%s==================================%s\n' "$bar" "$bar"
    printf '================================== End of ROCm SMI Log ===================================\n'
    exit 0
fi

case $mode in
    garbage)
        [ -f "$d/garbage_stdout" ] && cat "$d/garbage_stdout"
        exit 0
        ;;
    empty)
        printf 'WARNING: No JSON data to report\n' >&2
        exit 0
        ;;
esac

src=$d
case $1 in
    [a-z]*) [ -f "$d/$1/stdout" ] && src=$d/$1 ;;
esac
[ -f "$src/stdout" ] && cat "$src/stdout"
[ -f "$src/stderr" ] && cat "$src/stderr" >&2
rc=0
[ -f "$src/rc" ] && read -r rc < "$src/rc"
exit "$rc"
"""


def install(bin_dir, tool):
    """Write the stand-in as ``<bin_dir>/<tool>`` (mode 0755)."""
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, tool)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(SCRIPT)
    os.chmod(target, 0o755)
    return target
