"""Entry point: ``garrison`` and ``python -m garrison``.

:func:`main` takes the arguments and returns the exit code; it never raises. Modules here import
only Typer at start-up so ``garrison --help`` is fast; each command imports what it needs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from garrison import __version__
from garrison.cli import (
    assess,
    audit,
    config,
    crypt,
    data,
    data_backdoor,
    data_bias,
    data_labels,
    gateway,
    keys,
    llm,
    load,
    redteam,
    rules,
    scan,
    signing,
    stored,
)

HELP = """Garrison: security for AI systems.

Scan model files, datasets and projects for hidden code, tampering and leaks; keep every finding
in one store; report to the console, JSON, SARIF or HTML; gate CI on the exit code.

Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or configuration error,
3 incomplete (something could not be scanned), 4 internal error.
"""

app = typer.Typer(
    name="garrison",
    help=HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"garrison {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Garrison: security for AI systems."""


app.command("scan")(scan.scan)
app.command("load")(load.load)
app.command("findings")(stored.findings)
app.command("report")(stored.report)
app.command("runs")(stored.runs)
app.add_typer(rules.app, name="rules")
app.add_typer(config.app, name="config")
app.add_typer(audit.app, name="audit")
app.command("encrypt")(crypt.encrypt)
app.command("decrypt")(crypt.decrypt)
app.command("rewrap")(crypt.rewrap)
app.add_typer(crypt.kek_app, name="kek")
app.command("sign")(signing.sign)
app.command("verify")(signing.verify)
app.command("watch")(signing.watch)
data.data_app.command("bias")(data_bias.bias)
data.data_app.command("labels")(data_labels.labels)
data.data_app.command("backdoor")(data_backdoor.backdoor)
app.add_typer(data.data_app, name="data")
app.add_typer(gateway.app, name="gateway")
app.add_typer(keys.app, name="keys")
app.add_typer(llm.app, name="llm")
app.add_typer(redteam.app, name="redteam")
app.add_typer(assess.app, name="assess")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    from garrison.core.errors import GarrisonError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
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
