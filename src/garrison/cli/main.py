"""Entry point: ``garrison`` and ``python -m garrison``.

:func:`main` takes the arguments and returns the exit code; it never raises. Typer is imported only
when a command line is parsed with it, and each command imports what it needs. When the
first argument names a command, only that command's module is imported and only it is registered:
``garrison scan PATH`` does not pay for building the other thirty commands, and its plain forms
(:func:`garrison.cli.scan_run.plain_arguments`) are not parsed by Typer at all. Everything else
(``--help``, ``--version``, a mistyped command) gets the whole application, so help and error
messages list every command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from garrison import __version__

if TYPE_CHECKING:
    import typer

HELP = """Garrison: security for AI systems.

Scan model files, datasets and projects for hidden code, tampering and leaks; keep every finding
in one store; report to the console, JSON, SARIF or HTML; gate CI on the exit code.

Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or configuration error,
3 incomplete (something could not be scanned), 4 internal error.
"""


def _version(value: bool) -> None:
    if value:
        import typer

        sys.stdout.write(f"garrison {__version__}\n")
        raise typer.Exit(0)


def _group(module: str, attribute: str, name: str) -> Callable[[typer.Typer], None]:
    def register(app: typer.Typer) -> None:
        from importlib import import_module

        app.add_typer(getattr(import_module(f"garrison.cli.{module}"), attribute), name=name)

    return register


def _command(module: str, name: str) -> Callable[[typer.Typer], None]:
    def register(app: typer.Typer) -> None:
        from importlib import import_module

        app.command(name)(getattr(import_module(f"garrison.cli.{module}"), name))

    return register


_DATA_COMMANDS_ADDED = False


def _data(app: typer.Typer) -> None:
    global _DATA_COMMANDS_ADDED  # noqa: PLW0603 - the data group is a module-level app, filled once
    from garrison.cli import data, data_backdoor, data_bias, data_labels

    if not _DATA_COMMANDS_ADDED:
        data.data_app.command("bias")(data_bias.bias)
        data.data_app.command("labels")(data_labels.labels)
        data.data_app.command("backdoor")(data_backdoor.backdoor)
        _DATA_COMMANDS_ADDED = True
    app.add_typer(data.data_app, name="data")


COMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    "scan": _command("scan", "scan"),
    "load": _command("load", "load"),
    "findings": _command("stored", "findings"),
    "report": _command("stored", "report"),
    "runs": _command("stored", "runs"),
    "rules": _group("rules", "app", "rules"),
    "config": _group("config", "app", "config"),
    "audit": _group("audit", "app", "audit"),
    "encrypt": _command("crypt", "encrypt"),
    "decrypt": _command("crypt", "decrypt"),
    "rewrap": _command("crypt", "rewrap"),
    "kek": _group("crypt", "kek_app", "kek"),
    "sign": _command("signing", "sign"),
    "verify": _command("signing", "verify"),
    "watch": _command("signing", "watch"),
    "data": _data,
    "gateway": _group("gateway", "app", "gateway"),
    "keys": _group("keys", "app", "keys"),
    "llm": _group("llm", "app", "llm"),
    "redteam": _group("redteam", "app", "redteam"),
    "assess": _group("assess", "app", "assess"),
}
"""Every top-level command, in the order ``garrison --help`` lists them, and how to register it."""

_APPS: dict[str | None, typer.Typer] = {}


def build_app(command: str | None = None) -> typer.Typer:
    """The application with every command, or with only ``command`` (one of :data:`COMMANDS`)."""
    if command in _APPS:
        return _APPS[command]
    import typer

    def root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """Garrison: security for AI systems."""

    app = typer.Typer(
        name="garrison",
        help=HELP,
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
    )
    app.callback()(root)
    for name, register in COMMANDS.items():
        if command is None or name == command:
            register(app)
    _APPS[command] = app
    return app


def __getattr__(name: str) -> object:
    """``app``: the whole application, built on first use."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    from garrison.core.errors import GarrisonError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from garrison.cli.scan_run import collector_paused

        if args and args[0] == "scan":
            from garrison.cli.scan_run import plain_arguments, run_scan

            plain = plain_arguments(args[1:])
            if plain is not None:  # the common forms, parsed without importing Typer
                return run_scan(**plain)
        with collector_paused():
            app = build_app(args[0] if args and args[0] in COMMANDS else None)
        app(args=args, prog_name="garrison")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if code == 130:  # Ctrl-C, turned into an exit by the argument parser
            sys.stderr.write("garrison: interrupted; nothing was saved\n")
        return code
    except GarrisonError as exc:
        sys.stderr.write(f"garrison: error: {exc.diagnostics()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("garrison: interrupted; nothing was saved\n")
        return 130
    except Exception as exc:
        if os.environ.get("GARRISON_DEBUG"):
            raise
        sys.stderr.write(
            f"garrison: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in Garrison. Rerun with GARRISON_DEBUG=1 for the traceback and "
            "please report it.\n"
        )
        return 4
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
