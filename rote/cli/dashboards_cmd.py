"""`rote dashboards build|check|push`: the Grafana dashboards as code, from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from rote.errors import ConfigError, RoteError

TOKEN_ENV = "GRAFANA_TOKEN"
FOLDER_UID = "rote"
FOLDER_TITLE = "rote"

dashboards_app = typer.Typer(
    help="Build, check and publish rote's Grafana dashboards (dashboards/ is the source of truth).",
    no_args_is_help=True,
)
_err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object to stdout.")]


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        typer.echo(json.dumps(payload, sort_keys=True))
    else:
        typer.echo(text)


@dashboards_app.command("build")
def build_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for the JSON files (default: dashboards/json in the package)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Regenerate the dashboard JSON (and the rules ConfigMap in a checkout) from the code."""
    from rote.dashboards import build

    written = build(out) if out is not None else build()
    _emit(
        as_json,
        {"written": [str(p) for p in written]},
        "\n".join(f"wrote {p}" for p in written),
    )


@dashboards_app.command("check")
def check_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="Directory holding the committed JSON.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fail (exit 1) unless the committed JSON is exactly what the code builds. CI runs this."""
    from rote.dashboards import stale

    problems = stale(out) if out is not None else stale()
    _emit(
        as_json,
        {"fresh": not problems, "problems": problems},
        "dashboards are fresh" if not problems else "stale:\n" + "\n".join(f"  {p}" for p in problems),
    )
    if problems:
        if not as_json:
            _err.print("run `rote dashboards build` and commit the result")
        raise typer.Exit(1)


def push(url: str, token: str, dashboards_by_uid: dict[str, dict[str, Any]], *, message: str) -> list[str]:
    """Create the rote folder if needed and upsert each dashboard into it; returns the dashboard URLs.

    Upsert by UID with overwrite: the code is the source of truth, edits made in the UI are replaced
    (they should be made in dashboards/definitions.py instead).
    """
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    api = GrafanaApi.from_url(url, credential=token)
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        urls: list[str] = []
        with Progress(console=_err, transient=True) as progress:
            task = progress.add_task("pushing dashboards", total=len(dashboards_by_uid))
            for uid, dash in dashboards_by_uid.items():
                body = {k: v for k, v in dash.items() if k not in ("id", "version")}
                result = api.dashboard.update_dashboard(
                    {"dashboard": body, "folderUid": FOLDER_UID, "overwrite": True, "message": message}
                )
                urls.append(str(result.get("url", uid)) if isinstance(result, dict) else uid)
                progress.advance(task)
    except GrafanaException as exc:
        raise RoteError(f"Grafana at {url} refused the push: {exc}") from exc
    except OSError as exc:
        raise RoteError(f"cannot reach Grafana at {url}: {exc}") from exc
    return urls


@dashboards_app.command("push")
def push_cmd(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. http://localhost:3000")],
    message: Annotated[
        str, typer.Option("--message", help="Version message recorded in Grafana.")
    ] = "rote dashboards push",
    as_json: JsonFlag = False,
) -> None:
    """Upload the committed dashboards to Grafana (token from the GRAFANA_TOKEN environment variable)."""
    from rote.dashboards import load, stale

    try:
        token = os.environ.get(TOKEN_ENV, "")
        if not token:
            raise ConfigError(
                f"set {TOKEN_ENV} to a Grafana service-account token with dashboard write access"
            )
        problems = stale()
        if problems:
            raise RoteError("refusing to push stale dashboards: " + "; ".join(problems))
        urls = push(url, token, load(), message=message)
    except RoteError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _emit(as_json, {"pushed": urls, "grafana": url}, "\n".join(f"pushed {u}" for u in urls))


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(dashboards_app, name="dashboards")
