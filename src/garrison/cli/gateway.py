"""``garrison gateway serve|check|roles|routes|limits``: run the security gateway, validate its
configuration, or change its roles, routes and limits (:mod:`garrison.cli.gateway_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from garrison.cli.gateway_config import limits_app, roles_app, routes_app

app = typer.Typer(
    help="The security gateway in front of ML and LLM endpoints.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(roles_app, name="roles")
app.add_typer(routes_app, name="routes")
app.add_typer(limits_app, name="limits")

ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", help="gateway.yaml: routes, auth, roles, limits, audit.")
]


@app.command("serve")
def serve(
    config: ConfigPath = Path("gateway.yaml"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes (limits need the sqlite or redis backend above 1).", min=1, max=64
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the gateway until interrupted (Ctrl-C or SIGTERM finishes requests in flight).

    Every request is authenticated, authorized, limited, validated, filtered, forwarded and
    audited; GET /healthz, /readyz and /metrics answer without credentials.

    Example: garrison gateway serve --config gateway.yaml --port 8080 --workers 2
    """
    from garrison.gateway.server import serve as run

    run(config, host=host, port=port, workers=workers, log_level=log_level)


@app.command("check")
def check(config: ConfigPath = Path("gateway.yaml")) -> None:
    """Validate gateway.yaml and print a summary; exit 2 naming the first problem."""
    from garrison.gateway.config import load_gateway_config

    loaded = load_gateway_config(config)
    lines = [f"{config}: valid", f"  routes: {len(loaded.routes)}"]
    lines += [
        f"    {r.name}: {', '.join(r.methods)} {r.path} -> {r.kind} {r.upstream}" for r in loaded.routes
    ]
    lines.append(f"  roles: {', '.join(sorted(loaded.roles.root)) or '(none: every request is denied)'}")
    lines.append(f"  limits: {len(loaded.limits)} on the {loaded.limits_backend.type} backend")
    typer.echo("\n".join(lines))
