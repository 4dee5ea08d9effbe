"""The rules of ARCHITECTURE.md ("must not") and of each package's docstring, checked.

An ``ast`` walk over every module of Ketang's packages, lazy (function-level) imports
included: who may import Flask, what ``content_cache`` and ``kiosk_ui`` may reach, that
no module takes another's ``_private`` names, and that the packages form no cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("appliance", "content_cache", "kiosk_ui", "provisioning")
FLASK = ("flask", "flask_babel", "flask_wtf")

# (importer prefix, forbidden import prefixes, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("content_cache", ("appliance", "kiosk_ui", "provisioning", *FLASK, "werkzeug"),
     "content_cache is a library with no web in it, shared by publisher and device"),
    ("kiosk_ui", ("appliance", "content_cache", "provisioning", "peewee", "sqlite3"),
     "kiosk_ui gets its data from appliance views, never from a database"),
    ("appliance.usage", ("appliance.web", "appliance.cli", "appliance.sync", *FLASK),
     "usage gives codes and numbers; the web and CLI turn them into words"),
    ("appliance.sync", ("appliance.web", "appliance.cli", "appliance.drives",
                        "appliance.usage", *FLASK), "sync stands on content_cache alone"),
    ("appliance.drives", ("appliance.web", "appliance.cli", "appliance.usage", *FLASK),
     "drives take usage files through the outbox's providers, never by import"),
    ("appliance.classes", ("appliance.web", "appliance.cli", "appliance.sync",
                           "appliance.drives", *FLASK),
     "classes give codes and numbers and reach usage only through its public classes"),
    ("appliance.usage", ("appliance.classes",), "classes build on usage, not the reverse"),
    ("appliance.web", ("appliance.cli", "provisioning"),
     "the server's hot paths do not import the CLI or provisioning"),
    ("provisioning", ("appliance.web", *FLASK),
     "provisioning runs at first boot, not in the server"),
]
# Modules at appliance's top are shared by every part, so they import none of its packages.
SHARED_TOP_EXCEPT = {"appliance.device", "appliance.__main__"}
SUBPACKAGES = ("appliance.cli", "appliance.web", "appliance.usage", "appliance.sync",
               "appliance.drives", "appliance.classes")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str          # the module imported (or the module a name is taken from)
    names: tuple[str, ...]
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[Import]:
    """Every import in ``path``, relative ones resolved to absolute module names."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            out += [Import(mod, a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append(Import(mod, target, tuple(a.name for a in node.names), node.lineno))
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
        node.test.id == "TYPE_CHECKING"


def all_modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[module_name(path)] = path
    return found


MODULES = all_modules()
IMPORTS = [imp for path in MODULES.values() for imp in imports_of(path)]


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_breaks(imports: list[Import]) -> list[str]:
    """Each import a rule forbids, as 'where: what (why)'."""
    out = []
    for imp in imports:
        targets = [imp.target] + [f"{imp.target}.{n}" for n in imp.names]
        for importer, forbidden, why in RULES:
            if not within(imp.importer, importer):
                continue
            for target in targets:
                if any(within(target, f) for f in forbidden):
                    out.append(f"{imp.importer}:{imp.line} imports {target} ({why})")
                    break
        if any(within(t, f) for t in targets for f in FLASK) and not within(
                imp.importer, "appliance.web") and within(imp.importer, "appliance"):
            out.append(f"{imp.importer}:{imp.line} imports {imp.target}: only appliance.web "
                       "imports Flask")
        top = imp.importer.count(".") == 1 and within(imp.importer, "appliance") and \
            imp.importer not in SUBPACKAGES and imp.importer not in SHARED_TOP_EXCEPT
        if top and any(within(t, p) for t in targets for p in SUBPACKAGES):
            out.append(f"{imp.importer}:{imp.line} imports {imp.target}: appliance's shared "
                       "top-level modules import none of its packages (only device.py does)")
    return sorted(set(out))


def private_takes(imports: list[Import]) -> list[str]:
    """Each ``from ours import _name`` that reaches into another module's private names."""
    out = []
    for imp in imports:
        if not imp.target.startswith(PACKAGES):
            continue
        for n in imp.names:
            if n.startswith("_") and not n.startswith("__") and imp.target != imp.importer:
                out.append(f"{imp.importer}:{imp.line} takes {imp.target}.{n}")
    return out


def unit(module: str) -> str:
    """What a cycle is counted between: appliance's subpackages, else the module itself."""
    for sub in SUBPACKAGES:
        if within(module, sub):
            return sub
    return module


def cycles(imports: list[Import]) -> list[list[str]]:
    """Import cycles between appliance's packages and Ketang's top-level modules."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        src = unit(imp.importer)
        for target in [imp.target] + [f"{imp.target}.{n}" for n in imp.names]:
            if target in MODULES and target.startswith(PACKAGES):
                dst = unit(target)
                if dst != src and not within(src, dst) and not within(dst, src):
                    graph.setdefault(src, set()).add(dst)
    found, seen = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cyc = path[path.index(nxt):] + [nxt]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc)
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_every_package_says_what_it_owns_and_must_not_import():
    for pkg in (*PACKAGES, *SUBPACKAGES):
        init = ROOT / pkg.replace(".", "/") / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc) > 80, f"{init} needs a docstring saying what the package owns"


def test_no_import_breaks_a_rule():
    assert rule_breaks(IMPORTS) == []


def test_no_module_takes_another_modules_private_names():
    assert private_takes(IMPORTS) == []


def test_packages_form_no_import_cycle():
    assert cycles(IMPORTS) == []


# The checks themselves must be able to fail: each is shown a breach and must see it.
@pytest.mark.parametrize("imp, expected", [
    (Import("content_cache.catalog", "flask", ("Flask",), 1), "content_cache is a library"),
    (Import("content_cache.catalog", "appliance.config", ("Settings",), 1), "content_cache"),
    (Import("appliance.sync.service", "appliance.drives.status", ("x",), 1), "sync stands"),
    (Import("appliance.usage.db", "flask", ("g",), 1), "only appliance.web imports Flask"),
    (Import("appliance.health", "appliance.web", ("context",), 1), "shared top-level"),
    (Import("kiosk_ui", "peewee", (), 1), "kiosk_ui gets its data"),
    (Import("appliance.classes.store", "appliance.web.context", ("x",), 1), "classes give"),
])
def test_a_breach_is_reported(imp, expected):
    assert any(expected in line for line in rule_breaks([imp]))


def test_a_private_take_and_a_cycle_are_reported():
    assert private_takes([Import("appliance.web.pages", "appliance.drives.mount",
                                 ("_helper",), 3)])
    loop = [Import("appliance.sync.service", "appliance.drives.status", ("x",), 1),
            Import("appliance.drives.watcher", "appliance.sync.feed", ("y",), 1)]
    assert cycles(loop) == [["appliance.drives", "appliance.sync", "appliance.drives"]]
