"""python -m gpuops_preflight: the gpuops-preflight command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
