"""Where the project and its shipped configurations are."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = PROJECT_ROOT / "workflow" / "configs" / "smoke.yaml"
SWEEP_CONFIG = PROJECT_ROOT / "workflow" / "configs" / "sweep.yaml"
