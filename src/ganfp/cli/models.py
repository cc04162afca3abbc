"""Command: models list."""

from __future__ import annotations

import typer

from ganfp import ui
from ganfp.cli.app import app

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models_command(as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON.")) -> None:
    """The registered models, what each is, and the timm architecture behind it (any other timm name works too)."""
    from ganfp.models import list_models, model_entry

    rows = [model_entry(name) for name in list_models()]
    if as_json:
        ui.print_json([{"name": e.name, "description": e.description, "timm": e.timm_name} for e in rows])
        return
    ui.print_table(
        "models (--model NAME; any other timm model name is accepted too)",
        ["name", "timm", "description"],
        [[e.name, e.timm_name or "-", e.description] for e in rows],
    )
