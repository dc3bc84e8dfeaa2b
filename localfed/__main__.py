"""`python -m localfed ...` runs the `cellfed` command (handy before `pip install -e .` works)."""

from localfed.cli import main

main()
