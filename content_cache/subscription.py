"""Subscriptions: which stages, grades, subjects and editions a school keeps.

A school keeps only what fits and what it teaches. Each list names nodes of one
level by id or by title (any language, case-insensitive), e.g. ``subjects =
["数学", "语文"]`` or ``grades = ["primary-g3"]``. An empty list means every node
of that level. A lesson is subscribed when each of its ancestors on a level with a
non-empty list matches that list.
"""

from __future__ import annotations

from dataclasses import dataclass

from .manifest import Manifest, Node

LEVELS = ("stage", "grade", "subject", "edition")


@dataclass(frozen=True)
class Subscription:
    """What a device keeps. The default keeps everything."""

    stages: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    editions: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        """True when no level is restricted."""
        return not (self.stages or self.grades or self.subjects or self.editions)

    def _wanted(self) -> dict[str, set[str]]:
        lists = dict(zip(LEVELS, (self.stages, self.grades, self.subjects, self.editions),
                         strict=True))
        return {kind: {v.strip().lower() for v in values} for kind, values in lists.items()
                if values}

    def lessons(self, manifest: Manifest) -> set[str]:
        """The ids of the manifest's subscribed lessons."""
        wanted = self._wanted()
        by_id = {n.id: n for n in manifest.nodes}
        ok: dict[str, bool] = {}

        def matches(n: Node) -> bool:
            names = {n.id.lower(), *(t.strip().lower() for t in n.title.values())}
            return bool(names & wanted[n.kind])

        def allowed(node_id: str | None) -> bool:
            if node_id is None:
                return True
            if node_id not in ok:
                n = by_id[node_id]
                ok[node_id] = (n.kind not in wanted or matches(n)) and allowed(n.parent)
            return ok[node_id]

        return {n.id for n in manifest.nodes if n.kind == "lesson" and allowed(n.parent)}

    def blobs(self, manifest: Manifest) -> dict[str, int]:
        """Every blob the subscribed lessons need, with its size."""
        if self.everything:
            return manifest.blobs()
        lessons = self.lessons(manifest)
        return {r.sha256: r.size for r in manifest.resources if r.lesson in lessons}


EVERYTHING = Subscription()
