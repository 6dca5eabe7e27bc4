# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""node_training_health: from the host tool's compiled bundle where it holds this code, else the module shipped
(plugins/plugin_utils/_node_action.py; the module is documented in modules/node_training_health.py)."""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.plugin_utils._node_action import NodeAction


class ActionModule(NodeAction):
    KIND = "training_health"
