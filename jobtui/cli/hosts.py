"""Which hosts a command opens, and what to call them: -c, --group and hosts.toml."""

from __future__ import annotations

import argparse

from jobtui.cli.args import default_uris
from jobtui.cli.errors import USAGE, CliError
from jobtui.inventory import InventoryError, host_names, load_inventory, resolve_hosts


def apply_inventory(args: argparse.Namespace) -> None:
    """Set `args.uris` (what to open) and `args.host_names` (URI → name for people).

    Done before any connection opens: a bad file or an unknown name is a usage error.
    """
    try:
        inventory = load_inventory()
        uris = resolve_hosts(inventory, args.uris, args.group, default_uris())
    except InventoryError as err:
        raise CliError(USAGE, str(err)) from None
    args.uris = uris
    args.host_names = host_names(inventory, uris)
