"""Names the package shares that cost nothing to import: the environment variables it reads."""

INVENTORY_ENV = "GPUOPS_PREFLIGHT_INVENTORY"
FAILURE_LOG_ENV = "GPUOPS_PREFLIGHT_FAILURE_LOG"
