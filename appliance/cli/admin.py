"""``ketang admin password``: set the technician dashboard's password."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.auth import MIN_PASSWORD_LENGTH, check_new_password, set_password

from . import settings_from


@click.group()
def admin() -> None:
    """The technician dashboard (/admin)."""


@admin.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder (default: device.data_dir).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
@click.pass_context
def password(ctx: click.Context, data_dir: Path | None, password_stdin: bool) -> None:
    """Set the dashboard's admin password (asked twice; stored as a slow hash)."""
    data_dir = data_dir or settings_from(ctx).device.data_dir
    if password_stdin:
        new = sys.stdin.readline().rstrip("\r\n")
    else:
        click.echo(f"新密码至少 {MIN_PASSWORD_LENGTH} 个字符。The new password needs at least "
                   f"{MIN_PASSWORD_LENGTH} characters.")
        new = click.prompt("新密码 New password", hide_input=True,
                           confirmation_prompt="再输入一次 Repeat it", value_proc=_checked)
    check_new_password(new)
    path = set_password(data_dir, new)
    click.echo(f"已设置管理密码（{path}）；所有已登录的会话已退出。The admin password is set "
               f"({path}); every logged-in session has ended.")


def _checked(value: str) -> str:
    """Ask again, saying why, when a typed password is refused."""
    from content_cache.errors import KetangError

    try:
        check_new_password(value)
    except KetangError as e:
        raise click.UsageError(str(e)) from e
    return value


COMMANDS = [admin]
