"""Where the local tooling keeps its state: `<repo>/.state` unless CELLFED_STATE_DIR says otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    env = os.environ.get("CELLFED_STATE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".state"
