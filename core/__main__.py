"""``python -m liftwatch``."""

from liftwatch.cli import main

main()
