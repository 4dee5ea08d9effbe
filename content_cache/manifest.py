"""Release manifests: parse, validate and serialise (format ``ketang-release/1``).

A manifest lists a channel's node tree (stage → grade → subject → edition →
volume → unit → lesson) as a flat list with parent ids, and the resources hanging
on lessons, each naming its blob by sha256. See docs/formats.md.
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from .blobstore import SHA256_RE
from .errors import ManifestError
from .ids import CHANNEL_RE, ID_RE
from .questionnaire import Questionnaire, parse_list
from .related import parse_table
from .related import to_doc as related_doc

FORMAT = "ketang-release/1"
NODE_KINDS = ("stage", "grade", "subject", "edition", "volume", "unit", "lesson")
KIND_RANK = {kind: i for i, kind in enumerate(NODE_KINDS)}
RESOURCE_KINDS = ("video", "audio", "pdf", "html5", "exercise", "image")

# Bounds that keep a hostile or broken manifest from exhausting a small device.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_NODES = 500_000
MAX_RESOURCES = 1_000_000
MAX_BLOB_BYTES = 4 * 1024**3
MAX_TEXT = 4000
MAX_DURATION = 1e7  # seconds; also keeps float() from overflowing on a huge integer


@dataclass(slots=True)
class Node:
    """One node of the tree. ``parent`` is None only for stages."""

    id: str
    kind: str
    title: dict[str, str]
    parent: str | None = None
    description: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Resource:
    """A file hanging on a lesson, named by its blob's sha256."""

    id: str
    lesson: str
    kind: str
    title: dict[str, str]
    sha256: str
    size: int
    media_type: str
    duration: float | None = None


@dataclass
class Manifest:
    """A channel at one version: the tree and its resources."""

    channel: str
    version: int
    created: str
    title: dict[str, str]
    nodes: list[Node]
    resources: list[Resource]
    # The national co-usage table (content_cache.related): lesson -> [(other, score)].
    related: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    # Questionnaires (content_cache.questionnaire), signed with the rest.
    questionnaires: list[Questionnaire] = field(default_factory=list)

    def to_json_bytes(self) -> bytes:
        """The canonical bytes that get signed."""
        doc = {
            "format": FORMAT,
            "channel": self.channel,
            "version": self.version,
            "created": self.created,
            "title": self.title,
            "nodes": [_drop_empty(asdict(n)) for n in self.nodes],
            "resources": [_drop_empty(asdict(r)) for r in self.resources],
        }
        if self.related:
            doc["related"] = related_doc(self.related)
        if self.questionnaires:
            doc["questionnaires"] = [q.doc for q in self.questionnaires]
        return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")

    def blobs(self) -> dict[str, int]:
        """Every blob the release names, with its size."""
        return {r.sha256: r.size for r in self.resources}


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, {}, [])}


def decode_manifest_bytes(data: bytes, where: str = "manifest") -> bytes:
    """Un-gzip ``data`` if it is gzip, refusing anything past MAX_MANIFEST_BYTES."""
    if data[:2] != b"\x1f\x8b":
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{where} is larger than {MAX_MANIFEST_BYTES} bytes; refused.")
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
            out = g.read(MAX_MANIFEST_BYTES + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise ManifestError(f"{where} is not valid gzip: {e}") from e
    if len(out) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where} unpacks to more than {MAX_MANIFEST_BYTES} bytes; refused.")
    return out


def parse_manifest(data: bytes, where: str = "manifest") -> Manifest:
    """Parse and validate manifest bytes (JSON, or gzip of JSON).

    Raises ManifestError naming the first rule broken and where. Memory stays bounded
    while parsing: each node and resource becomes a compact object as soon as the parser
    has read it (no document of dicts is ever built), and counting them as they come
    refuses a manifest with too many before it is read to its end (see :class:`_Builder`).
    """
    raw = decode_manifest_bytes(data, where)
    builder = _Builder(where)
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of new objects and no cycles: collections would only cost time
    try:
        doc = json.loads(raw, object_pairs_hook=builder)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{where} is not valid JSON: {e}") from e
    except RecursionError as e:
        raise ManifestError(f"{where} nests too deeply to be a manifest; refused.") from e
    finally:
        if gc_was_on:
            gc.enable()
    del raw
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError(f"{where} is not a {FORMAT} manifest (its 'format' field).")
    channel = doc.get("channel")
    if not isinstance(channel, str) or not CHANNEL_RE.fullmatch(channel):
        raise ManifestError(f"{where}: channel {channel!r} is not a valid channel id.")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**53:
        raise ManifestError(f"{where}: version {version!r} is not a positive integer.")
    nodes_doc, res_doc = doc.get("nodes"), doc.get("resources")
    if not isinstance(nodes_doc, list) or not isinstance(res_doc, list):
        raise ManifestError(f"{where}: 'nodes' and 'resources' must be lists.")
    if len(nodes_doc) > MAX_NODES or len(res_doc) > MAX_RESOURCES:
        raise ManifestError(
            f"{where} lists {len(nodes_doc)} nodes and {len(res_doc)} resources; "
            f"the most a device accepts is {MAX_NODES} and {MAX_RESOURCES}."
        )
    nodes = [n if type(n) is Node else _node(n, i, where) for i, n in enumerate(nodes_doc)]
    kinds: dict[str, str] = {}
    for n in nodes:
        if n.id in kinds:
            raise ManifestError(f"{where}: node id {n.id!r} appears twice.")
        kinds[n.id] = n.kind
    for n in nodes:
        if n.parent is None:
            if n.kind != "stage":
                raise ManifestError(f"{where}: node {n.id!r} ({n.kind}) has no parent.")
        elif n.parent not in kinds:
            raise ManifestError(
                f"{where}: node {n.id!r} names parent {n.parent!r}, which is missing."
            )
        elif KIND_RANK[kinds[n.parent]] >= KIND_RANK[n.kind]:
            # So the tree is at most seven deep and has no cycle: walking up always ends.
            raise ManifestError(
                f"{where}: node {n.id!r} ({n.kind}) sits under {n.parent!r} "
                f"({kinds[n.parent]}); a node must sit under one of an earlier kind "
                f"({' → '.join(NODE_KINDS)})."
            )
    resources = [r if type(r) is Resource else _resource(r, i, where)
                 for i, r in enumerate(res_doc)]
    seen: set[str] = set()
    for r in resources:
        if r.id in seen:
            raise ManifestError(f"{where}: resource id {r.id!r} appears twice.")
        seen.add(r.id)
        if kinds.get(r.lesson) != "lesson":
            raise ManifestError(f"{where}: resource {r.id!r} hangs on {r.lesson!r}, not a lesson.")
    created = doc.get("created", "")
    created = created[:64] if isinstance(created, str) else ""
    related = {}
    if "related" in doc:
        related = parse_table(doc["related"], f"{where} (related)",
                              lambda s: isinstance(s, str) and kinds.get(s) == "lesson")
    questionnaires = []
    if "questionnaires" in doc:
        questionnaires = parse_list(doc["questionnaires"], where)
    return Manifest(channel, version, created, _texts(doc.get("title"), where),
                    nodes, resources, related, questionnaires)


class _Builder:
    """``json.loads``'s object hook: turns each node and resource into its compact object
    the moment it is parsed, shares repeated strings and titles, and counts.

    A JSON object shaped like a resource (it has ``sha256`` or ``lesson``) or a node (``id``
    and ``kind``) that passes its checks becomes a Resource or Node; one that fails stays
    a dict, so :func:`parse_manifest` reports it with its place in the list. Counting
    every such object refuses a manifest with more than MAX_NODES nodes or MAX_RESOURCES
    resources while it is parsed, before the rest of it costs any memory.
    """

    # Kinds, media types and titles remembered for sharing; when full, forgotten all at
    # once, so unique titles (the nodes') never crowd out the ones that repeat (resources').
    MAX_SHARED = 4096

    def __init__(self, where: str) -> None:
        self.where = where
        self.nodes = 0
        self.resources = 0
        self._strings: dict[str, str] = {}
        # Node ids, so each parent and lesson reference is the node's own id string
        # (bounded: at most MAX_NODES ids and MAX_RESOURCES lesson references).
        self._ids: dict[str, str] = {}
        self._titles: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}

    def share(self, value: str) -> str:
        """One string object for equal short strings (kinds, media types, parent ids)."""
        got = self._strings.get(value)
        if got is None:
            if len(self._strings) >= self.MAX_SHARED:
                self._strings.clear()
            got = self._strings[value] = value
        return got

    def __call__(self, pairs: list[tuple[str, Any]]) -> Any:
        d = dict(pairs)
        if "sha256" in d or "lesson" in d:
            self.resources += 1
            if self.resources > MAX_RESOURCES:
                raise ManifestError(
                    f"{self.where} lists {self.resources} resources or more; the most a device "
                    f"accepts is {MAX_NODES} nodes and {MAX_RESOURCES} resources.")
            try:
                r = _resource(d, 0, self.where)
            except ManifestError:
                return d
            r.kind, r.media_type = self.share(r.kind), self.share(r.media_type)
            r.lesson = self._ids.setdefault(r.lesson, r.lesson)
            return r
        if "id" in d and "kind" in d:
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise ManifestError(
                    f"{self.where} lists {self.nodes} nodes or more; the most a device "
                    f"accepts is {MAX_NODES} nodes and {MAX_RESOURCES} resources.")
            try:
                n = _node(d, 0, self.where)
            except ManifestError:
                return d
            n.kind = self.share(n.kind)
            n.id = self._ids.setdefault(n.id, n.id)
            if n.parent is not None:
                n.parent = self._ids.setdefault(n.parent, n.parent)
            if not n.description:
                n.description = _NO_TEXT
            return n
        if len(pairs) <= 4 and all(type(v) is str and len(v) <= 64 for _, v in pairs):
            key = tuple(pairs)  # a short title or description: share equal ones
            got = self._titles.get(key)
            if got is None:
                if len(self._titles) >= self.MAX_SHARED:
                    self._titles.clear()
                got = self._titles[key] = d
            return got
        return d


_NO_TEXT: dict[str, str] = {}  # shared by every node without a description (never mutated)


def _texts(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if type(value) is not dict or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_TEXT for k, v in value.items()
    ):
        raise ManifestError(f"{where}: a title or description must map languages to short text.")
    return value


def _id(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ManifestError(f"{where}: {what} {value!r} is not a valid id "
                            "(lowercase letters, digits, '.', '_' and '-').")
    return value


def _node(d: Any, i: int, where: str) -> Node:
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: nodes[{i}] is not an object.")
    nid = _id(d.get("id"), f"nodes[{i}].id", where)
    kind = d.get("kind")
    if kind not in NODE_KINDS:
        raise ManifestError(f"{where}: node {nid!r} has unknown kind {kind!r}.")
    parent = d.get("parent")
    if parent is not None:
        _id(parent, f"parent of node {nid!r}", where)
    title = _texts(d.get("title"), where)
    if not title:
        raise ManifestError(f"{where}: node {nid!r} has no title.")
    return Node(nid, kind, title, parent, _texts(d.get("description"), where))


def _resource(d: Any, i: int, where: str) -> Resource:
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: resources[{i}] is not an object.")
    rid = _id(d.get("id"), f"resources[{i}].id", where)
    kind = d.get("kind")
    if kind not in RESOURCE_KINDS:
        raise ManifestError(f"{where}: resource {rid!r} has unknown kind {kind!r}.")
    sha = d.get("sha256")
    if not isinstance(sha, str) or not SHA256_RE.match(sha):
        raise ManifestError(f"{where}: resource {rid!r} has no valid sha256.")
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB_BYTES:
        raise ManifestError(
            f"{where}: resource {rid!r} claims size {size!r}; sizes must be whole bytes "
            f"up to {MAX_BLOB_BYTES}."
        )
    media_type = d.get("media_type")
    if not isinstance(media_type, str) or "/" not in media_type or len(media_type) > 100:
        raise ManifestError(f"{where}: resource {rid!r} has no valid media_type.")
    duration = d.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)
                                 or not 0 <= duration <= MAX_DURATION):
        raise ManifestError(f"{where}: resource {rid!r} has an invalid duration.")
    lesson = _id(d.get("lesson"), f"lesson of resource {rid!r}", where)
    return Resource(rid, lesson, kind, _texts(d.get("title"), where), sha, size, media_type,
                    float(duration) if duration is not None else None)
