"""The national side: turn a lesson source tree into a signed release bundle.

A source tree is a folder with ``source.json`` (format ``ketang-source/1``, a nested
tree of nodes whose lessons list resources by file path) and the files it names.
``publish`` writes ``OUT/KETANG/releases/<channel>/<version>/manifest.json`` with its
detached signature, ``release.torrent`` (see ``torrent``), and every blob under
``OUT/KETANG/blobs/``.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from .atomic import atomic_write_bytes
from .blobstore import BlobStore
from .bundle import BUNDLE_DIR, release_dir
from .errors import SourceError
from .keys import key_id, load_private_key, sign
from .manifest import (
    CHANNEL_RE,
    NODE_KINDS,
    RESOURCE_KINDS,
    Manifest,
    Node,
    Resource,
    parse_manifest,
)
from .pdf_fonts import fonts_not_embedded
from .progress import ByteCount, Progress
from .questionnaire import Questionnaire, parse_questionnaire
from .related import load_file as load_related
from .related import restrict
from .torrent import write_release_torrent

SOURCE_FORMAT = "ketang-source/1"
SOURCE_FILE = "source.json"
MEDIA_TYPES = {
    "exercise": "application/vnd.ketang.exercise+json",
    "html5": "application/zip",
    "pdf": "application/pdf",
}


@dataclass(frozen=True)
class PublishedRelease:
    """What ``publish`` (or ``synthetic.generate_sample``) wrote: one signed release."""

    channel: str
    version: int
    manifest_path: Path
    key_id: str
    nodes: int
    resources: int
    bytes: int
    related: int = 0
    # things a person should fix in the source, one line each (the release is made anyway)
    warnings: tuple[str, ...] = ()


def media_type_for(kind: str, path: Path) -> str:
    """The media type a resource is served with."""
    if kind in MEDIA_TYPES:
        return MEDIA_TYPES[kind]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _source_file(source: Path, rel: Any, where: str) -> Path:
    """Resolve a resource's file, refusing paths that leave the source tree or are links."""
    if not isinstance(rel, str) or not rel:
        raise SourceError(f"{where}: 'file' must be a relative path inside {source}.")
    p = source / rel
    if p.is_symlink():
        raise SourceError(f"{where}: {rel} is a symlink; copy the real file into the tree.")
    resolved = p.resolve()
    if not resolved.is_relative_to(source.resolve()):
        raise SourceError(f"{where}: {rel} leaves the source folder {source}.")
    if not resolved.is_file():
        raise SourceError(f"{where}: {rel} does not exist in {source}.")
    return resolved


def _flatten(source: Path, doc: dict[str, Any]) -> tuple[list[Node], list[tuple[dict, Path]]]:
    nodes: list[Node] = []
    resources: list[tuple[dict, Path]] = []

    def walk(items: Any, parent: str | None, depth: int) -> None:
        if not isinstance(items, list):
            raise SourceError(f"{SOURCE_FILE}: 'children' of {parent or 'the root'} is not a list.")
        for item in items:
            if not isinstance(item, dict):
                raise SourceError(
                    f"{SOURCE_FILE}: a node under {parent or 'the root'} is not an object."
                )
            # Any: parse_manifest, run on the result, names a missing or bad id.
            nid: Any = item.get("id")
            kind = item.get("kind")
            if kind not in NODE_KINDS:
                raise SourceError(f"{SOURCE_FILE}: node {nid!r} has unknown kind {kind!r}; "
                                  f"use one of {', '.join(NODE_KINDS)}.")
            nodes.append(Node(nid, kind, item.get("title") or {}, parent,
                              item.get("description") or {}))
            if kind == "lesson":
                for r in item.get("resources", []):
                    if r.get("kind") not in RESOURCE_KINDS:
                        raise SourceError(f"{SOURCE_FILE}: resource {r.get('id')!r} has unknown "
                                          f"kind {r.get('kind')!r}.")
                    path = _source_file(source, r.get("file"), f"resource {r.get('id')!r}")
                    resources.append(({**r, "lesson": nid}, path))
            else:
                walk(item.get("children", []), nid, depth + 1)

    walk(doc.get("nodes"), None, 0)
    return nodes, resources


def _questionnaires(source: Path, files: Any) -> list[Questionnaire]:
    """The questionnaires ``source.json`` lists (paths of ketang-questionnaire/1 files)."""
    if not isinstance(files, list):
        raise SourceError(f"{SOURCE_FILE}: 'questionnaires' must be a list of file paths.")
    out = []
    for rel in files:
        path = _source_file(source, rel, f"questionnaire {rel!r}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise SourceError(f"{path} is not valid JSON: {e}") from None
        out.append(parse_questionnaire(doc, str(path)))
    return out


def publish(
    source: Path,
    channel: str,
    version: int,
    key_path: Path,
    out: Path,
    progress: Progress | None = None,
    web_seeds: Sequence[str] = (),
    related: Path | None = None,
) -> PublishedRelease:
    """Build and sign a release of ``source`` into the bundle folder ``out``.

    ``progress(done_bytes, total_bytes)`` is called as blobs are copied.
    ``web_seeds`` are HTTP URLs (BEP 19) embedded in the release's torrent.
    ``related`` is a ``ketang-related/1`` co-usage file (``ketang recommend build``):
    its pairs between this release's lessons go into the signed manifest.
    """
    source = Path(source)
    if not CHANNEL_RE.match(channel):
        raise SourceError(f"channel {channel!r} must be lowercase letters, digits and '-'.")
    if version < 1:
        raise SourceError("version must be a positive integer.")
    src_file = source / SOURCE_FILE
    try:
        doc = json.loads(src_file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SourceError(f"{src_file} is missing: a source tree needs a {SOURCE_FILE}.") from e
    except ValueError as e:
        raise SourceError(f"{src_file} is not valid JSON: {e}") from e
    if doc.get("format") != SOURCE_FORMAT:
        raise SourceError(f"{src_file}: 'format' must be {SOURCE_FORMAT!r}.")
    private = load_private_key(key_path)
    table = load_related(related) if related is not None else {}

    nodes, files = _flatten(source, doc)
    total = sum(p.stat().st_size for _, p in files)
    root = Path(out) / BUNDLE_DIR
    store = BlobStore(root)
    tick = ByteCount(total, progress)
    resources: list[Resource] = []
    warnings: list[str] = []
    for r, path in files:
        sha = store.add_file(path, on_bytes=tick)
        resources.append(Resource(
            id=cast(str, r.get("id")), lesson=r["lesson"], kind=r["kind"],
            title=r.get("title") or {},
            sha256=sha, size=path.stat().st_size, media_type=media_type_for(r["kind"], path),
            duration=r.get("duration"),
        ))
        if resources[-1].media_type == "application/pdf":
            warnings += _pdf_warnings(path, r.get("id"))
    _remove_if_empty(store.tmp_dir)
    manifest = Manifest(channel, version, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        doc.get("title") or {}, nodes, resources)
    if table:
        manifest.related, _ = restrict(table, {n.id for n in nodes if n.kind == "lesson"})
    manifest.questionnaires = _questionnaires(source, doc.get("questionnaires", []))
    data = manifest.to_json_bytes()
    parse_manifest(data, where=str(src_file))  # the same rules a device applies
    rdir = release_dir(root, channel, version)
    manifest_path = rdir / "manifest.json"
    atomic_write_bytes(manifest_path, data)
    atomic_write_bytes(manifest_path.with_name("manifest.json.sig"), sign(private, data))
    write_release_torrent(root, manifest, rdir, web_seeds)
    return PublishedRelease(channel, version, manifest_path, key_id(private.public_key()),
                            len(nodes), len(resources), total,
                            related=len(manifest.related), warnings=tuple(warnings))


def _pdf_warnings(path: Path, resource_id: Any) -> list[str]:
    """A line for a PDF whose fonts are not embedded (its Chinese may show as nothing)."""
    missing = fonts_not_embedded(path)
    if missing is None:
        return [f"{path}: resource {resource_id!r} could not be read as a PDF; check the "
                "file opens in a PDF reader."]
    if missing:
        return [f"{path}: resource {resource_id!r} uses fonts it does not embed "
                f"({', '.join(missing)}): its text may show as nothing on tablets. "
                "Export the PDF with fonts embedded (e.g. 'embed all fonts' in the "
                "exporting program)."]
    return []


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only an empty folder goes
    except OSError:
        pass
