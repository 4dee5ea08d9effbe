"""Content commands: `ketang keys new`, `publish`, `import` and `sample`."""

from __future__ import annotations

from pathlib import Path

import click

from . import settings_from
from .progress import ByteBar


@click.group()
def keys() -> None:
    """Manage Ed25519 publisher keys."""


@keys.command("new")
@click.option("--name", required=True, help="File name for the key pair (NAME.key, NAME.pub).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              show_default=True, help="Folder to write the key pair into.")
def keys_new(name: str, out: Path) -> None:
    """Make a new publisher key pair (keep NAME.key secret; give out NAME.pub)."""
    from content_cache.keys import generate_keypair

    pair = generate_keypair(out, name)
    click.echo(f"Private key: {pair.private_path} (keep it secret; mode 0600)")
    click.echo(f"Public key:  {pair.public_path} (put it in devices' trusted keys folder)")
    click.echo(f"Key id:      {pair.key_id}")


@click.command()
@click.argument("source", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--channel", required=True, help="Channel id, e.g. cn-basic-edu.")
@click.option("--version", "version", type=click.IntRange(min=1), required=True,
              help="Release version: a whole number, higher than the last one published.")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              required=True, help="Publisher private key (from `ketang keys new`).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the KETANG/ bundle into (a drive's root, or a spool folder).")
@click.option("--web-seed", "web_seeds", multiple=True, metavar="URL",
              help="HTTP URL whose root holds KETANG/ (BEP 19 web seed); may be repeated.")
@click.option("--related", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="National co-usage table (ketang-related/1, from `ketang recommend "
                   "build`) to sign into the release.")
def publish(source: Path, channel: str, version: int, key_path: Path, out: Path,
            web_seeds: tuple[str, ...], related: Path | None) -> None:
    """Sign a lesson source tree into a release bundle."""
    from content_cache.publisher import publish as do_publish

    with ByteBar("发布 Publishing") as bar:
        rel = do_publish(source, channel, version, key_path, out, progress=bar,
                         web_seeds=web_seeds, related=related)
    click.echo(f"Published {rel.channel} v{rel.version}: {rel.nodes} nodes, {rel.resources} "
               f"resources, {rel.bytes / 1e6:.1f} MB, signed by key {rel.key_id}"
               + (f", co-usage of {rel.related} lessons" if rel.related else ""))
    for warning in rel.warnings:
        click.secho(f"注意 Warning: {warning}", fg="yellow", err=True)
    click.echo(f"Manifest: {rel.manifest_path}")
    click.echo(f"Torrent:  {rel.manifest_path.with_name('release.torrent')}")


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder to import into (default: device.data_dir).")
@click.option("--force", is_flag=True,
              help="Accept a version older than the one served (a deliberate rollback).")
@click.pass_context
def import_(ctx: click.Context, path: Path, data_dir: Path | None, force: bool) -> None:
    """Verify and import a release bundle (a KETANG/ folder)."""
    from content_cache.importer import import_bundle
    from content_cache.keys import load_trusted_keys
    from content_cache.library import Library

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    def say_plan(p) -> None:
        click.echo(f"{p.channel} v{p.version}: 需要 needs {p.space_bytes / 1e6:.1f} MB "
                   f"({p.files} new files, {p.blob_bytes / 1e6:.1f} MB, plus its catalog); "
                   f"{p.free_bytes / 1e6:.1f} MB free, keeping {p.reserve_bytes / 1e6:.1f} MB "
                   "in reserve.")
    with ByteBar("导入 Importing") as bar:
        results = import_bundle(path, Library(s.device.data_dir),
                                load_trusted_keys(s.trust.keys_dir), force=force, progress=bar,
                                reserve_bytes=s.device.reserve_mb * 1_000_000,
                                subscription=s.subscriptions.subscription(), on_plan=say_plan)
    for r in results:
        if r.status == "up-to-date":
            click.echo(f"{r.channel} v{r.version} is already active; nothing to do.")
        else:
            click.echo(f"Activated {r.channel} v{r.version} (signed by {r.key_id}): copied "
                       f"{r.blobs_copied} files, {r.bytes_copied / 1e6:.1f} MB; "
                       f"{r.blobs_present} already here.")


@click.command()
@click.option("--resources", type=click.IntRange(min=1), required=True,
              help="How many resources (four per lesson); 88000 is the national library's size.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the KETANG/ bundle into.")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Publisher private key (default: the DEMO-ONLY key).")
@click.option("--channel", default="cn-basic-edu-sample", show_default=True, help="Channel id.")
@click.option("--version", "version", type=click.IntRange(min=1), default=1, show_default=True,
              help="Release version.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed: the same seed gives the same release.")
def sample(resources: int, out: Path, key_path: Path | None, channel: str, version: int,
           seed: int) -> None:
    """Write a synthetic signed release (realistic titles, small random blobs) for benchmarks."""
    from content_cache.synthetic import DEMO_KEY, generate_sample

    rel = generate_sample(resources, out, key_path or DEMO_KEY, channel, version, seed)
    click.echo(f"Wrote sample {rel.channel} v{rel.version}: {rel.nodes} nodes, {rel.resources} "
               f"resources, {rel.bytes / 1e6:.1f} MB, signed by key {rel.key_id}"
               + (f", co-usage of {rel.related} lessons" if rel.related else ""))
    click.echo(f"Manifest: {rel.manifest_path}")


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder to clean (default: device.data_dir).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.pass_context
def gc(ctx: click.Context, data_dir: Path | None, dry_run: bool) -> None:
    """Remove blobs and old releases that no active release needs."""
    from content_cache.gc import collect_garbage
    from content_cache.library import Library

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    r = collect_garbage(Library(s.device.data_dir), dry_run=dry_run)
    verb = "Would remove" if r.dry_run else "Removed"
    click.echo(f"{verb} {r.blobs_removed} files ({r.bytes_freed / 1e6:.1f} MB) and "
               f"{len(r.releases_removed)} old releases"
               + (f" ({', '.join(r.releases_removed)})" if r.releases_removed else "")
               + f"; kept {r.blobs_kept} files the active releases need.")


COMMANDS = [keys, publish, import_, sample, gc]
