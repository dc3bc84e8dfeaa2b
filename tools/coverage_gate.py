"""Coverage of a `dev/test` run: combines the data files of every measured process (pytest and the
subprocesses it started), prints the figure of each package, the least-covered files, the pure cores and
the totals, writes the HTML/JSON/text reports under test-artifacts/, and with --enforce-floors fails
when a figure is under its floor (`[tool.cellfed.coverage]` in pyproject.toml).

The pure cores are the modules that pyproject.toml holds to strict typing (the `[[tool.mypy.overrides]]`
entries with `strict = true`): one list, in one place; a new core joins both by being added there.

Figures are coverage.py's own (statements and branches together, as `coverage report` prints them);
the lines-only figure is printed beside them."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import coverage
from coverage.exceptions import NoDataError

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
LEAST_COVERED = 10


@dataclass(frozen=True)
class Counts:
    statements: int = 0
    covered_lines: int = 0
    branches: int = 0
    covered_branches: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.statements + other.statements,
            self.covered_lines + other.covered_lines,
            self.branches + other.branches,
            self.covered_branches + other.covered_branches,
        )

    @property
    def percent(self) -> float:
        """coverage.py's figure: covered statements and branches over all of them."""
        total = self.statements + self.branches
        return 100.0 if total == 0 else 100.0 * (self.covered_lines + self.covered_branches) / total

    @property
    def lines_percent(self) -> float:
        return 100.0 if self.statements == 0 else 100.0 * self.covered_lines / self.statements


def pure_cores(pyproject: Mapping[str, object], root: Path = ROOT) -> list[str]:
    """Paths (relative to the checkout) of the modules held to `strict = true` by mypy."""
    overrides = pyproject.get("tool", {}).get("mypy", {}).get("overrides", [])  # type: ignore[attr-defined]
    modules = sorted({m for o in overrides if o.get("strict") for m in _as_list(o["module"])})
    paths = []
    for module in modules:
        base = root.joinpath(*module.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if not path.exists():
            raise SystemExit(f"coverage: pure core {module} (strict in pyproject.toml) has no file")
        paths.append(str(path.relative_to(root)))
    return paths


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def file_counts(report: Mapping[str, object]) -> dict[str, Counts]:
    files: Mapping[str, Mapping[str, Mapping[str, int]]] = report["files"]  # type: ignore[assignment]
    return {
        name: Counts(s["num_statements"], s["covered_lines"], s["num_branches"], s["covered_branches"])
        for name, data in files.items()
        for s in [data["summary"]]
    }


def by_package(files: Mapping[str, Counts]) -> dict[str, Counts]:
    packages: dict[str, Counts] = defaultdict(Counts)
    for name, counts in files.items():
        packages[str(Path(name).parent)] += counts
    return dict(sorted(packages.items()))


def table(rows: Iterable[tuple[str, Counts]], title: str) -> str:
    out = [f"{title:<44} {'stmts':>6} {'miss':>5} {'branch':>6} {'bmiss':>5} {'lines':>6} {'cover':>6}"]
    for name, c in rows:
        out.append(
            f"{name:<44} {c.statements:>6} {c.statements - c.covered_lines:>5} {c.branches:>6} "
            f"{c.branches - c.covered_branches:>5} {c.lines_percent:>5.1f}% {c.percent:>5.1f}%"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reports the coverage of a dev/test run.")
    parser.add_argument("--enforce-floors", action="store_true", help="fail under the floors (whole suite)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # the config's paths (data file, reports) are relative to the checkout
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floors = pyproject["tool"]["cellfed"]["coverage"]
    cores = pure_cores(pyproject)

    # One data file, not another parallel one; combined again only when new parallel files exist, so the
    # report can be re-run on the data of the last run.
    cov = coverage.Coverage(data_suffix=False)
    data_file = Path(cov.config.data_file)
    if any(data_file.parent.glob(data_file.name + ".*")):
        cov.combine(keep=False)
        cov.save()
    else:
        cov.load()
    try:
        with open(ARTIFACTS / "coverage.txt", "w") as text:
            total = cov.report(file=text, show_missing=True, skip_empty=True)
        cov.json_report(outfile=str(ARTIFACTS / "coverage.json"), pretty_print=False)
    except NoDataError:
        print("coverage: no data (no test ran?)")
        return 1 if args.enforce_floors else 0
    cov.html_report()
    files = file_counts(json.loads((ARTIFACTS / "coverage.json").read_text()))
    whole = sum(files.values(), Counts())

    print(table(by_package(files).items(), "package"), end="\n\n")
    least = sorted(files.items(), key=lambda kv: (kv[1].percent, -kv[1].statements))[:LEAST_COVERED]
    print(table(least, f"{LEAST_COVERED} least-covered files"), end="\n\n")
    buf = io.StringIO()
    core_total = cov.report(include=[str(ROOT / c) for c in cores], file=buf, show_missing=True)
    print(f"pure cores (strict in pyproject.toml):\n{buf.getvalue()}")

    core_counts = sum((files[c] for c in cores if c in files), Counts())
    print(f"coverage: total {total:.2f}% (lines {whole.lines_percent:.2f}%), ", end="")
    print(f"pure cores {core_total:.2f}% (lines {core_counts.lines_percent:.2f}%)")
    print(f"coverage: HTML report in {Path(cov.config.html_dir).resolve().relative_to(ROOT)}/index.html")
    if not args.enforce_floors:
        print("coverage: floors not applied (a subset of the suite ran)")
        return 0
    failed = [
        f"{what} {got:.2f}% is under its floor {floor}%"
        for what, got, floor in (
            ("total", total, floors["fail_under_total"]),
            ("pure cores", core_total, floors["fail_under_pure_cores"]),
        )
        if got < floor
    ]
    for line in failed:
        print(f"coverage: FAILED: {line}")
    if not failed:
        print(f"coverage: floors met (total {floors['fail_under_total']}%, ", end="")
        print(f"pure cores {floors['fail_under_pure_cores']}%)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
