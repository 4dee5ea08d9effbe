"""The ``ketang`` command line (click, like Flask's own CLI).

Owns: the click group (:data:`main`), turning a :class:`KetangError` into one line and
exit status 1, and one module per command group (serve and demo, content, drives,
status, sync, usage, admin). Commands parse options and print words; the work is
done by ``content_cache``, :mod:`appliance.device` and the service packages.

Rules: must not import Flask (``ketang serve`` reaches the web app only through
:mod:`appliance.device`); nothing else imports this package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.config import Settings, load_settings
from content_cache.errors import KetangError


class KetangGroup(click.Group):
    """Turns KetangError into a one-line message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KetangError as e:
            click.secho(f"错误 Error: {e}", fg="red", err=True)
            sys.exit(1)


def settings_from(ctx: click.Context) -> Settings:
    """The settings loaded by the group's ``--config``."""
    return ctx.find_root().obj


@click.group(cls=KetangGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML configuration file (default: $KETANG_CONFIG, then "
                   "/etc/ketang/ketang.toml, then built-in defaults).")
@click.version_option(package_name="ketang")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Ketang 课堂: an offline classroom appliance that serves cached lessons."""
    try:
        ctx.obj = load_settings(config_path)
    except KetangError as e:
        raise click.UsageError(str(e)) from e


def _register() -> None:
    from . import admin as cli_admin
    from . import content as cli_content
    from . import drives as cli_drives
    from . import recommend as cli_recommend
    from . import serve as cli_serve
    from . import status as cli_status
    from . import sync as cli_sync
    from . import update as cli_update
    from . import usage as cli_usage

    for module in (cli_serve, cli_content, cli_drives, cli_status, cli_sync, cli_admin,
                   cli_usage, cli_recommend, cli_update):
        for command in module.COMMANDS:
            main.add_command(command)
    from provisioning.cli import provision  # ketang provision (docs/provisioning.md)
    main.add_command(provision)


_register()
