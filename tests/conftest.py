"""Suite-wide pytest setup: only plugin registration lives here; fixtures live in their own modules."""

import sys
from pathlib import Path

# `tests` is not an installed package: make the checkout root importable so plugins load as `tests.<module>`
# however pytest is started (`pythonpath = ["."]` in pyproject's pytest options would do the same).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["tests.cassandra_cluster"]
