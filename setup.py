"""Generates the protobuf/gRPC modules (tools/build_proto.py) before setuptools discovers packages, so
`pip install .` from a clean tree ships gen/cellfed; build_py regenerates them when a .proto changed."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).parent / "tools"))
import build_proto  # a build-time helper next to this file

# Package discovery reads the tree when setup() is called: gen/ must exist by then.
build_proto.build()


class BuildWithProtos(build_py):
    def run(self) -> None:
        build_proto.build()
        super().run()


setup(cmdclass={"build_py": BuildWithProtos})
