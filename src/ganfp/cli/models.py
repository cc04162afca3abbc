"""Command: models list."""

from __future__ import annotations

import typer

from ganfp import ui
from ganfp.cli.app import app

models_app = typer.Typer(
    help="The models --model and --features accept.\n\nganfp's registered models, listed by 'ganfp models list'; any "
    "other timm model name works too.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("list", short_help="List the models, the smallest image each takes, and its ImageNet weights.")
def list_models_command(as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON.")) -> None:
    """List the registered models: the timm architecture behind each, the smallest image it takes (--image-size),
    and whether ImageNet weights exist for it to download (--init imagenet, --features NAME).

    Any other timm model name works too; a size it cannot take is refused before any image is decoded.
    """
    from ganfp.models import imagenet_weights, list_models, min_image_size, model_entry

    rows = [model_entry(name) for name in list_models()]
    if as_json:
        ui.print_json([{"name": e.name, "description": e.description, "timm": e.timm_name,
                        "min_image_size": min_image_size(e.name), "imagenet_weights": imagenet_weights(e.name)}
                       for e in rows])
        return
    ui.print_table(
        "models (--model NAME; any other timm model name is accepted too)",
        ["name", "timm", "min size (px)", "ImageNet weights", "description"],
        [[e.name, e.timm_name or "-", min_image_size(e.name), "yes" if imagenet_weights(e.name) else "no",
          e.description] for e in rows],
    )
