"""``python -m liftwatch``: the ``liftwatch`` command (the launcher is the one place that knows every package)."""

from liftwatch.launcher.cli import main

main()
