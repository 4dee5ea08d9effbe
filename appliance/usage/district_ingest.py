"""The drive path, district side: ``ketang usage ingest DRIVE --lrs URL``.

Each ``KETANG/outbox/<device-id>/usage-*.jsonl.gz`` is checked against its ``.sig`` and
the known device keys before anything of it is read; a file that fails is refused
whole (named, with the reason) and the others go on. Statements are posted to the LRS
with their own ids, so a drive carried twice adds nothing.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.drives.outbox import OUTBOX_DIR
from content_cache import keys
from content_cache.bundle import bundle_root
from content_cache.errors import KetangError, SignatureError

from .upload import LrsError, post_with_retries

MAX_FILE = 200 * 1024 * 1024
MAX_UNPACKED = 2 * 1024 * 1024 * 1024


@dataclass
class IngestReport:
    """What one ingest did: files posted, statements posted, files refused (with why)."""

    files: list[str] = field(default_factory=list)
    statements: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""


def usage_files(drive: Path) -> list[Path]:
    """Every usage file on a drive (its root or its ``KETANG/`` folder), in order."""
    root = bundle_root(drive) / OUTBOX_DIR
    if not root.is_dir():
        raise KetangError(f"{root} does not exist: this drive carries no usage reports.")
    return sorted(p for p in root.glob("*/usage-*.jsonl.gz") if p.is_file()
                  and not p.is_symlink())


def read_verified(path: Path, trusted: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of one usage file, after checking its signature; raises
    SignatureError or KetangError saying what is wrong."""
    sig = path.with_name(path.name + ".sig")
    if not sig.is_file():
        raise SignatureError(f"{path.name} has no signature file {sig.name}; refused.")
    if path.stat().st_size > MAX_FILE:
        raise KetangError(f"{path.name} is larger than {MAX_FILE} bytes; refused.")
    data = path.read_bytes()
    keys.verify(data, sig.read_bytes(), trusted, where=str(path))
    try:
        d = zlib.decompressobj(wbits=31)
        raw = d.decompress(data, MAX_UNPACKED)
        if d.unconsumed_tail:
            raise KetangError(f"{path.name} unpacks to more than {MAX_UNPACKED} bytes")
        statements = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except (zlib.error, gzip.BadGzipFile, ValueError) as e:
        raise KetangError(f"{path.name} is signed but not gzip JSON lines ({e})") from None
    for i, st in enumerate(statements):
        if not isinstance(st, dict) or not isinstance(st.get("id"), str):
            raise KetangError(f"{path.name} line {i + 1} is not an xAPI statement with an id")
    return statements


def ingest(drive: Path, lrs_url: str, username: str, password: str, keys_dir: Path,
           batch: int = 100, timeout: float = 30, retries: int = 3, backoff: float = 2.0,
           echo: Callable[[str], None] = lambda s: None) -> IngestReport:
    """Verify and post every usage file on ``drive``; see the module docstring."""
    trusted = keys.load_trusted_keys(keys_dir)
    if not trusted:
        raise KetangError(f"no device keys in {keys_dir}: put each device's device.pub "
                          "there (`ketang usage key` on the device prints it), or name the "
                          "folder with --keys.")
    report = IngestReport()
    for path in usage_files(drive):
        try:
            statements = read_verified(path, trusted)
        except KetangError as e:
            report.refused.append((str(path), str(e)))
            echo(f"拒绝 Refused {path}: {e}")
            continue
        try:
            for i in range(0, len(statements), batch):
                post_with_retries(lrs_url, username, password, statements[i:i + batch],
                                  timeout, retries, backoff)
        except LrsError as e:
            report.error = f"{path}: {e}"
            echo(f"错误 Error: {report.error}; run the same command again to resume.")
            return report
        report.files.append(str(path))
        report.statements += len(statements)
        echo(f"{path.parent.name}/{path.name}: {len(statements)} statements posted")
    return report
