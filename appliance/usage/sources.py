"""Ingested usage at the district, read back: an LRS export file or drive outboxes.

``ketang recommend build`` and ``ketang report`` read statements from either:

- an LRS export: a file of xAPI statements, as a JSON array, a ``{"statements": [...]}``
  page (what ``GET /statements`` answers), or JSON lines; gzip allowed;
- a folder of drive outboxes: a drive's root (or its ``KETANG/``), or a folder holding
  several such copies one level down. Every usage file is checked against its
  signature and the known device keys first (:mod:`.district_ingest`); a file that
  fails is refused whole and named, and the others are read.

A statement seen twice (the same id from two drives, or an export and a drive) counts
once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.drives.outbox import OUTBOX_DIR
from content_cache import keys
from content_cache.bundle import bundle_root
from content_cache.errors import KetangError

from .district_ingest import MAX_FILE, MAX_UNPACKED, read_verified


@dataclass
class Loaded:
    """Statements read (each id once), the files they came from, and files refused."""

    statements: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def _has_outbox(folder: Path) -> bool:
    try:
        return (bundle_root(folder) / OUTBOX_DIR).is_dir()
    except KetangError:
        return False


def _outbox_roots(folder: Path) -> Iterator[Path]:
    if _has_outbox(folder):
        yield folder
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        if _has_outbox(sub):
            yield sub


def read_export(path: Path) -> list[dict[str, Any]]:
    """The statements of an LRS export file; raises KetangError saying what is wrong."""
    if path.stat().st_size > MAX_FILE:
        raise KetangError(f"{path} is larger than {MAX_FILE} bytes; split the export.")
    data = path.read_bytes()
    try:
        if data[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(wbits=31)
            data = d.decompress(data, MAX_UNPACKED)
            if d.unconsumed_tail:
                raise KetangError(f"{path} unpacks to more than {MAX_UNPACKED} bytes.")
        text = data.decode("utf-8").strip()
        try:
            doc = json.loads(text)
        except ValueError:      # not one JSON document: JSON lines
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        if isinstance(doc, dict):   # a page of statements, or JSON lines of one line
            items = doc["statements"] if "statements" in doc else [doc]
        else:
            items = doc
    except (zlib.error, ValueError, UnicodeDecodeError, KeyError) as e:
        raise KetangError(f"{path} is not an LRS export (a JSON array of statements, "
                          f"a {{\"statements\": […]}} page, or JSON lines): {e}") from None
    if not isinstance(items, list):
        raise KetangError(f"{path}: the statements are not a list.")
    for i, st in enumerate(items):
        if not isinstance(st, dict) or not isinstance(st.get("id"), str):
            raise KetangError(f"{path}: statement {i + 1} is not an xAPI statement with an id.")
    return items


def load(source: Path, keys_dir: Path | None) -> Loaded:
    """Read every statement of ``source`` (an export file or a folder of outboxes)."""
    source = Path(source)
    out = Loaded()
    seen: set[str] = set()

    def take(items: list[dict[str, Any]]) -> None:
        for st in items:
            if st["id"] not in seen:
                seen.add(st["id"])
                out.statements.append(st)

    if source.is_file():
        take(read_export(source))
        out.files.append(str(source))
        return out
    if not source.is_dir():
        raise KetangError(f"{source} does not exist: give an LRS export file or a folder of "
                          "drive outboxes.")
    roots = list(_outbox_roots(source))
    if not roots:
        raise KetangError(f"{source} holds no KETANG/{OUTBOX_DIR}/ folder (nor any one level "
                          "down): give a drive's root or a folder of drive copies.")
    trusted = keys.load_trusted_keys(keys_dir) if keys_dir else {}
    if not trusted:
        raise KetangError(f"no device keys in {keys_dir}: put each device's device.pub there "
                          "(`ketang usage key` on the device prints it), or name the folder "
                          "with --keys.")
    for root in roots:
        for path in sorted((bundle_root(root) / OUTBOX_DIR).glob("*/usage-*.jsonl.gz")):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                take(read_verified(path, trusted))
            except KetangError as e:
                out.refused.append((str(path), str(e)))
                continue
            out.files.append(str(path))
    return out
