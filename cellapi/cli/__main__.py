"""`python -m cellapi.cli ...` runs `cellctl` (the tests use it where no console script is installed)."""

from cellapi.cli.main import main

main()
