"""A report as the log lines operators already know from WATCHER (format ``[%(levelname)s] %(message)s``):

    [ERROR] Preflight BLOCKED: SSH unreachable: 192.168.3.120
    [WARNING] Preflight warnings: ['GPU_COUNT_MISMATCH: rig-6600: expected 12 GPUs, found 10']
    [DEBUG] Preflight check: SSH OK, Ramdisk OK, Inputs OK, ... (rig-6600)
    [INFO] [CLEANUP] Complete: 2 nodes cleaned

A cleanup problem is never more than a warning: the cleanup never stops WATCHER.
"""

from __future__ import annotations

import logging

from .collection import module_utils
from .report import BLOCKED, CANCELED, PASSED, Report

LOG = logging.getLogger("gpuops_preflight")


def check_line(facts: dict) -> str:
    """``SSH OK, Ramdisk OK, Inputs OK, GPU count WARN`` for one host of the report."""
    reachable = facts.get("reachable")
    parts = ["SSH %s" % ("OK" if reachable else "PENDING" if reachable is None else "FAIL")]
    label = module_utils("_families").label
    for name, result in (facts.get("checks") or {}).items():
        parts.append("%s %s" % (label(name), str(result.get("status") or "?").upper()))
    return ", ".join(parts)


def log_report(report: Report, logger: logging.Logger = LOG) -> None:
    if report.kind == "cleanup":
        _cleanup(report, logger)
        return
    word = report.word
    for host, facts in report.hosts.items():
        logger.debug("%s check: %s (%s)", word, check_line(facts), host)
    if report.status == PASSED:
        logger.info("%s", report.reason())
    elif report.status == CANCELED:
        logger.warning("%s", report.reason())
    else:
        logger.error("%s", report.reason())
    if report.status == BLOCKED:
        for item in report.hard_failures:
            logger.info("%s fix for %s on %s: %s", word, item.check, item.host, item.fix)
    if report.warnings:
        logger.warning("%s warnings: %s", word, report.warning_texts())


def _cleanup(report: Report, logger: logging.Logger) -> None:
    for host, facts in report.hosts.items():
        logger.debug("[CLEANUP] Check: %s (%s)", check_line(facts), host)
    if report.status != PASSED:
        logger.warning("[CLEANUP] %s", report.reason())
    elif report.summary is not None and not report.summary.get("applies", True):
        logger.info("[CLEANUP] Nothing to do: step %s is not a distributed step", report.step)
    else:
        cleaned = [h for h, f in report.hosts.items() if f.get("reachable") and f.get("status") != "failed"]
        logger.info("[CLEANUP] Complete: %d nodes cleaned", len(cleaned))
    if report.warnings:
        logger.warning("[CLEANUP] Warnings: %s", report.warning_texts())
