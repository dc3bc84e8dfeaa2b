"""Generate the Python protobuf/gRPC modules from proto/ into gen/.

The build owns generated code: this runs from setup.py's build step and from dev/setup, it is
idempotent (skips when every output is newer than every .proto), and gen/ is never committed or edited.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "gen"


def _protos() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def _up_to_date(protos: list[Path]) -> bool:
    stamp = OUT / ".stamp"
    if not stamp.exists():
        return False
    newest_input = max([p.stat().st_mtime for p in protos] + [Path(__file__).stat().st_mtime])
    return stamp.stat().st_mtime >= newest_input


def _plugin(name: str) -> str | None:
    """mypy-protobuf's plugins are console scripts: on PATH (pip's isolated build env puts them there) or
    beside the interpreter (a venv run without activation)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def _stub_args() -> list[str]:
    """Typed stubs (.pyi) are for type checking only: built when mypy-protobuf is there, else skipped."""
    mypy, mypy_grpc = _plugin("protoc-gen-mypy"), _plugin("protoc-gen-mypy_grpc")
    if not (mypy and mypy_grpc):
        print("build_proto: mypy-protobuf not found; generating without .pyi stubs", file=sys.stderr)
        return []
    return [
        f"--plugin=protoc-gen-mypy={mypy}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
    ]


def build(force: bool = False) -> None:
    from grpc_tools import protoc  # build-time dependency only

    protos = _protos()
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    if not force and _up_to_date(protos):
        return
    OUT.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        *_stub_args(),
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    # Every directory of generated modules becomes a regular package.
    for directory in {OUT / p.relative_to(PROTO_ROOT).parent for p in protos}:
        while directory != OUT:
            (directory / "__init__.py").touch()
            directory = directory.parent
    (OUT / ".stamp").touch()


if __name__ == "__main__":
    build(force="--force" in sys.argv)
