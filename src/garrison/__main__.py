"""``python -m garrison`` runs the command-line interface."""

from garrison.cli.main import run

run()
