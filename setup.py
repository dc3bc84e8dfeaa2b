"""Hooks proto generation into the build so `pip install .` produces gen/ (see tools/build_proto.py)."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).parent / "tools"))


class BuildWithProtos(build_py):
    def run(self) -> None:
        import build_proto

        build_proto.build()
        super().run()


setup(cmdclass={"build_py": BuildWithProtos})
