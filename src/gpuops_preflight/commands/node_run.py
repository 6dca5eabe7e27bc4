"""gpuops-preflight node-run: one family's host checks, asked for by a node task (the collection's own use).

A node task (``node_training_health``) whose host has the host tool at the same code as the controller runs
``gpuops-preflight-local node-run`` there instead of shipping its module: the same checks, by the same host
runner, imported from the bundle's compiled files, so nothing is built, sent or compiled for the run
(plugins/plugin_utils/_node_action.py, docs/PERFORMANCE.md). The request is one JSON object on standard input:

    {"protocol": 1, "kind": "training_health", "sources_digest": "<sha256>", "check_mode": false,
     "params": {<the module's options, validated against its argument spec on the controller>}}

The answer is one JSON object on standard output:

* ``{"gpuops_node_run": 1, "ran": true, "result": {...}}``, exit 0: the module's result, as the module would
  have returned it (its refusal of bad options too);
* ``{"gpuops_node_run": 1, "ran": false, "why": "..."}``, exit 3: nothing was run, because this bundle is not
  the controller's code (another version, not a bundle, another protocol). The node task ships the module.

Paths are expanded here (``~``, ``$VAR``), as AnsibleModule expands an option of type ``path`` on the host.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

PROTOCOL = 1
EXIT_RAN, EXIT_NOT_HERE = 0, 3
# A request is a few kilobytes of options; more is not a request.
MAX_REQUEST = 1 << 20


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "node-run", help="run one family's host checks for a node task (JSON request on stdin; the collection's "
                         "own use)",
        description="Run one family's host checks as its node module would, for the collection's node tasks: "
                    "the request is one JSON object on standard input, the answer one on standard output.")
    parser.set_defaults(handler=run)


def answer(**fields: Any) -> None:
    sys.stdout.write(json.dumps(dict(gpuops_node_run=PROTOCOL, **fields), sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def not_here(why: str) -> int:
    answer(ran=False, why=why)
    return EXIT_NOT_HERE


def bundle_digest() -> str | None:
    """``sources_digest`` of the bundle this command runs from (its BUNDLE.json); None outside a bundle."""
    from .. import collection

    if os.environ.get(collection.BUNDLED_ENV) != "1":
        return None
    lib = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with open(os.path.join(lib, "BUNDLE.json"), encoding="utf-8") as handle:
            found = json.load(handle).get("sources_digest")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def expand_paths(params: dict, spec: dict) -> None:
    """``~`` and ``$VAR`` in the options of type path, with this host's environment (AnsibleModule's rule)."""
    def expand(value: Any) -> Any:
        return os.path.expanduser(os.path.expandvars(value)) if isinstance(value, str) else value

    for name, option in spec.items():
        value = params.get(name)
        if option.get("type") == "path":
            params[name] = expand(value)
        elif option.get("type") == "list" and option.get("elements") == "path" and isinstance(value, list):
            params[name] = [expand(item) for item in value]


def run(args: argparse.Namespace) -> int:  # pylint: disable=unused-argument
    from .. import collection

    data = sys.stdin.buffer.read(MAX_REQUEST + 1)
    if len(data) > MAX_REQUEST:
        return not_here("the request is over %d bytes" % MAX_REQUEST)
    try:
        request = json.loads(data or b"null")
    except ValueError as exc:
        return not_here("the request is not JSON: %s" % exc)
    if not isinstance(request, dict) or request.get("protocol") != PROTOCOL:
        return not_here("not a node-run request of protocol %d" % PROTOCOL)
    found = bundle_digest()
    if found is None:
        return not_here("this command does not run from a host tool bundle with a sources digest")
    if request.get("sources_digest") != found:
        return not_here("the bundle holds other code (digest %s, the controller's %s)"
                        % (found[:16], str(request.get("sources_digest"))[:16]))
    families, options, host_runner, watchdog = (collection.module_utils(name) for name in
                                                ("_families", "_options", "_host_runner", "_watchdog"))
    params = request.get("params")
    try:
        family_module = families.declaration(request.get("kind"))
    except ValueError as exc:
        return not_here(str(exc))
    if not isinstance(params, dict):
        return not_here("the request has no options")
    family = family_module.FAMILY
    if not hasattr(family_module, "OPTIONS"):
        return not_here("the %s family's options are declared in its module, not in module_utils" % family.kind)
    expand_paths(params, options.argument_spec(family, **family_module.OPTIONS))
    module = collection.LocalModule(check_mode=bool(request.get("check_mode")), params=params)
    problems = options.all_problems(params, family, getattr(family_module, "validate", None))
    if problems:
        result: dict = {"failed": True, "msg": "; ".join(problems)}
    else:
        # the node task may stop waiting (a cancel, its timeout, a dropped connection): then stop at once
        watchdog.start()
        try:
            result = host_runner.run(family, module, params)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # the module would end in a traceback; here the same failure, in one line
            result = {"failed": True, "msg": "the %s checks failed to run: %s: %s" % (family.kind, type(exc).__name__,
                                                                                      exc)}
    result.setdefault("invocation", {"module_args": family.redact(dict(params)) if family.redact else dict(params)})
    if module.warnings:
        result["warnings"] = list(result.get("warnings") or []) + module.warnings
    answer(ran=True, result=result)
    return EXIT_RAN
