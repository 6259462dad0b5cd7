"""Options that several commands take, defined once so that they read the same everywhere."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")

# The agent (`baton chat`, `baton run`).
model_option = click.option("--model", help="The model (default: $BATON_MODEL or the config file).")
yes_option = click.option(
    "-y", "--yes", is_flag=True, help="Write files and run commands without asking."
)
sandbox_option = click.option(
    "--sandbox",
    type=click.Choice(["on", "off"]),
    help="Run commands in the sandbox (on, the default) or unconfined (off).",
)
network_option = click.option(
    "--network", is_flag=True, help="Let commands in the sandbox use the network."
)

# Sessions (`baton sessions list`, `baton sessions update`).
status_option = click.option(
    "--status", type=click.Choice(["active", "paused", "done", "archived"])
)
