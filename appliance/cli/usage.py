"""``ketang usage``: upload statements to the LRS, show where they are, ingest drives."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import settings_from

_DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
                         help="Data folder holding usage.db (default: device.data_dir).")


@click.group()
def usage() -> None:
    """Usage events: upload to the LRS, status, drive ingest (see docs/usage.md)."""


@usage.command("upload")
@_DATA_DIR
@click.option("--now", "force", is_flag=True, help="Upload even outside usage.upload_windows.")
@click.pass_context
def upload_cmd(ctx: click.Context, data_dir: Path | None, force: bool) -> None:
    """Send pending statements to usage.lrs_url; resumes where the last run stopped."""
    from appliance.usage.upload import upload

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    result = upload(s, force=force, progress=lambda r: click.echo(
        f"sent {r.sent} statements in {r.batches} batches"))
    if result.skipped:
        click.echo(f"未上传 Not uploading: {result.skipped}.")
        return
    click.echo(f"上传 Uploaded {result.sent} statements; {result.pending} still pending"
               + (f"; {result.refused} refused by the LRS" if result.refused else ""))
    if result.error:
        click.secho(f"错误 Error: {result.error}. Nothing was lost: the next upload resumes "
                    "from here.", fg="red", err=True)
        sys.exit(1)


@usage.command("status")
@_DATA_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, data_dir: Path | None, as_json: bool) -> None:
    """Events stored, pending, sent, carried by drive, failed, and the last error."""
    from appliance.usage.upload import usage_summary

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    summary = usage_summary(s)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    click.echo(f"事件 Events stored: {summary['events']}\n"
               f"待发送 Pending: {summary['pending']} (not yet at the LRS: "
               f"{summary['pending_lrs']})\n"
               f"已发送 Sent to the LRS: {summary['sent']}\n"
               f"U 盘带走 Carried by drive: {summary['carried']}\n"
               f"失败 Refused by the LRS: {summary['failed']}\n"
               f"丢弃 Dropped before leaving: {summary['dropped']}\n"
               f"LRS: {summary['lrs_url'] or '(none: usage.lrs_url is empty)'}\n"
               f"上次上传 Last upload: {summary['last_upload'] or 'never'}")
    if summary["last_error"]:
        click.echo(f"上次错误 Last error ({summary['last_error_at']}): {summary['last_error']}")


@usage.command("ingest")
@click.argument("drive", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--lrs", "lrs_url", required=True, help="The district LRS's xAPI endpoint.")
@click.option("--keys", "keys_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of device public keys (default: usage.device_keys_dir).")
@click.option("--user", "username", envvar="KETANG_LRS_USER",
              help="LRS user (default: $KETANG_LRS_USER, then usage.lrs_username).")
@click.option("--password", envvar="KETANG_LRS_PASSWORD",
              help="LRS password (default: $KETANG_LRS_PASSWORD, then usage.lrs_password).")
@click.pass_context
def ingest_cmd(ctx: click.Context, drive: Path, lrs_url: str, keys_dir: Path | None,
               username: str | None, password: str | None) -> None:
    """Verify the signed usage files on DRIVE and post their statements to the LRS."""
    from appliance.usage.district_ingest import ingest

    s = settings_from(ctx).usage
    report = ingest(drive, lrs_url, username if username is not None else s.lrs_username,
                    password if password is not None else s.lrs_password,
                    keys_dir or s.device_keys_dir, s.upload_batch, s.upload_timeout,
                    s.upload_retries, echo=click.echo)
    click.echo(f"导入 Ingested {len(report.files)} files, {report.statements} statements "
               "(statements the LRS already held were not added again)")
    if report.refused:
        click.secho(f"错误 Error: {len(report.refused)} files refused (see above); their "
                    "statements were not posted. Ask the school for a new report.",
                    fg="red", err=True)
    if report.refused or report.error:
        sys.exit(1)


@usage.command("key")
@_DATA_DIR
@click.pass_context
def key_cmd(ctx: click.Context, data_dir: Path | None) -> None:
    """Print this device's public key (made now if missing), for the district's keys."""
    from appliance.usage.keys import ensure_device_key, key_paths
    from content_cache.keys import key_id, public_pem

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    key = ensure_device_key(s.device.data_dir)
    click.echo(f"# key id {key_id(key.public_key())}, file {key_paths(s.device.data_dir)[1]}")
    click.echo(public_pem(key.public_key()).decode(), nl=False)


COMMANDS = [usage]
