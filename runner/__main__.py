"""`python -m runner`: the same as the `pacsmig` console script."""

from runner.cli import main

main()
