"""Every contract between the code and its reference docs, checked both ways.

- docs/configuration.md: a row for every setting, with its default; no row for a setting
  that does not exist; its TOML example is a configuration Ketang accepts.
- docs/commands.md: a row for every `ketang` command naming every one of its options; no
  row for a command, nor an option, that does not exist (the group's own options are in
  the text above the table).
- docs/api.md: a row for every route under /api/ with its method; no row for a route
  the app does not have.

Each check is a function returning the problems it finds (one line each, saying what
to fix), so the tests at the end can show that it fails on a doc with a gap.
Datasette's tests/test_docs.py is the model.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest

from appliance.cli import main
from appliance.config import Settings, documented_settings, parse_settings
from appliance.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
COMMANDS = ROOT / "docs" / "commands.md"
API = ROOT / "docs" / "api.md"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# -- docs/configuration.md ------------------------------------------------------------

SETTING_ROW = re.compile(r"^\| `([a-z_]+\.[a-z_]+)` \| `([^`]*)` \|", re.M)


def as_toml(value: Any) -> str:
    """How the docs write a default: as it would be written in ketang.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, ensure_ascii=False)


def actual_settings() -> dict[str, str]:
    """Every setting (``section.key``) and its default as TOML."""
    defaults = Settings()
    out = {}
    for name in documented_settings():
        section, key = name.split(".")
        out[name] = as_toml(getattr(getattr(defaults, section), key))
    return out


def setting_gaps(doc: str, settings: dict[str, str]) -> list[str]:
    """What docs/configuration.md ``doc`` lacks or names wrongly, one line each."""
    rows = dict(SETTING_ROW.findall(doc))
    out = []
    for name, default in settings.items():
        if name not in rows:
            out.append(f"setting {name} (default {default}) has no row in "
                       "docs/configuration.md")
        elif rows[name] != default:
            out.append(f"docs/configuration.md gives {name} the default {rows[name]}; "
                       f"the code's default is {default}")
    out += [f"docs/configuration.md documents {name}, which is no setting: remove its row "
            "or add the setting" for name in rows if name not in settings]
    return out


def toml_example(doc: str) -> str:
    found = re.search(r"^## Example\n.*?^```toml\n(.*?)^```", doc, re.M | re.S)
    assert found, "docs/configuration.md has no ```toml block under '## Example'"
    return found[1]


def test_every_setting_is_documented_with_its_default_and_nothing_else():
    problems = setting_gaps(read(CONFIGURATION), actual_settings())
    assert not problems, "\n".join(problems)


def test_the_configuration_example_is_accepted():
    doc = tomllib.loads(toml_example(read(CONFIGURATION)))
    settings = parse_settings(doc, "docs/configuration.md")
    assert settings.device.name == "Ketang · 红星小学"


# -- docs/commands.md -----------------------------------------------------------------

COMMAND_ROW = re.compile(r"^\| `(ketang(?: [a-z-]+)*)` \| (.*) \|$", re.M)
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def long_options(command: click.Command) -> set[str]:
    return {o for p in command.params if isinstance(p, click.Option)
            for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}


def actual_commands(group: click.Group = main, prefix: str = "ketang") -> dict[str, set[str]]:
    """Every command (the group itself as ``ketang``) and its long options."""
    out = {prefix: long_options(group)} if prefix == "ketang" else {}
    for name, command in group.commands.items():
        out[f"{prefix} {name}"] = long_options(command)
        if isinstance(command, click.Group):
            out.update(actual_commands(command, f"{prefix} {name}"))
    return out


def documented_commands(doc: str) -> dict[str, str]:
    """Each command's row text; the group's is the text above the table."""
    rows = dict(COMMAND_ROW.findall(doc))
    rows["ketang"] = doc.split("\n|", 1)[0]
    return rows


def command_gaps(doc: str, commands: dict[str, set[str]]) -> list[str]:
    """What docs/commands.md ``doc`` lacks or names wrongly, one line each."""
    rows = documented_commands(doc)
    out = []
    for name, options in commands.items():
        if name not in rows:
            out.append(f"`{name}` has no row in docs/commands.md")
            continue
        named = set(OPTION.findall(rows[name]))
        out += [f"`{name} {o}` is not in its row of docs/commands.md"
                for o in sorted(options - named)]
        out += [f"docs/commands.md names `{o}` for `{name}`, which has no such option"
                for o in sorted(named - options - {"--help"})]
    out += [f"docs/commands.md has a row for `{name}`, which is no command"
            for name in rows if name not in commands]
    return out


def test_every_command_and_option_is_documented_and_nothing_else():
    problems = command_gaps(read(COMMANDS), actual_commands())
    assert not problems, "\n".join(problems)


# -- docs/api.md ----------------------------------------------------------------------

ROUTE_ROW = re.compile(r"^\| `([A-Z]+) (/api/[^`?\[ ]*)[^`]*` \|", re.M)


@functools.cache
def actual_routes() -> frozenset[str]:
    """``METHOD /api/…`` for every API route of the app (HEAD and OPTIONS go without saying)."""
    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings().with_overrides("device", data_dir=Path(data)))
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        out |= {f"{m} {path}" for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    return frozenset(out)


def route_gaps(doc: str, routes: frozenset[str]) -> list[str]:
    """What docs/api.md ``doc`` lacks or names wrongly, one line each."""
    rows = {f"{method} {path}" for method, path in ROUTE_ROW.findall(doc)}
    return ([f"`{r}` has no row in docs/api.md" for r in sorted(routes - rows)]
            + [f"docs/api.md documents `{r}`, which the app does not answer"
               for r in sorted(rows - routes)])


def test_every_api_route_is_documented_and_nothing_else():
    routes = actual_routes()
    assert "GET /api/v1/channels/<channel>/lessons/<lesson_id>" in routes
    problems = route_gaps(read(API), routes)
    assert not problems, "\n".join(problems)


# -- each check fails on a doc with a gap ---------------------------------------------

def drop_line(doc: str, start: str) -> str:
    lines = doc.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(start)]
    assert len(kept) == len(lines) - 1, f"no single line starts with {start!r}"
    return "".join(kept)


def check(doc_name: str, doc: str) -> list[str]:
    """The problems the check of ``doc_name`` finds in ``doc``."""
    if doc_name == "configuration":
        return setting_gaps(doc, actual_settings())
    if doc_name == "commands":
        return command_gaps(doc, actual_commands())
    return route_gaps(doc, actual_routes())


DOCS = {"configuration": CONFIGURATION, "commands": COMMANDS, "api": API}


@pytest.mark.parametrize("doc_name, mutate, expected", [
    ("configuration", lambda d: drop_line(d, "| `server.port` |"),
     ["setting server.port (default 8080) has no row in docs/configuration.md"]),
    ("configuration", lambda d: d.replace("| `server.port` | `8080` |", "| `server.port` | `80` |"),
     ["docs/configuration.md gives server.port the default 80; the code's default is 8080"]),
    ("configuration", lambda d: d + "| `server.turbo` | `true` | Faster. |\n",
     ["docs/configuration.md documents server.turbo, which is no setting: remove its row or "
      "add the setting"]),
    ("commands", lambda d: drop_line(d, "| `ketang gc` |"),
     ["`ketang gc` has no row in docs/commands.md"]),
    ("commands", lambda d: d.replace("[--dry-run]", "[--dryrun]"),
     ["`ketang gc --dry-run` is not in its row of docs/commands.md",
      "docs/commands.md names `--dryrun` for `ketang gc`, which has no such option"]),
    ("commands", lambda d: d.replace("`--config FILE`", "a config file"),
     ["`ketang --config` is not in its row of docs/commands.md"]),
    ("commands", lambda d: d + "| `ketang fly` | Flies. |\n",
     ["docs/commands.md has a row for `ketang fly`, which is no command"]),
    ("api", lambda d: drop_line(d, "| `GET /api/v1/peers` |"),
     ["`GET /api/v1/peers` has no row in docs/api.md"]),
    ("api", lambda d: d.replace("| `POST /api/v1/usage` |", "| `GET /api/v1/usage` |"),
     ["`POST /api/v1/usage` has no row in docs/api.md",
      "docs/api.md documents `GET /api/v1/usage`, which the app does not answer"]),
    ("api", lambda d: d + "| `DELETE /api/v1/channels/<channel>` | Removes it. |\n",
     ["docs/api.md documents `DELETE /api/v1/channels/<channel>`, which the app does not "
      "answer"]),
])
def test_each_check_fails_on_a_doc_with_a_gap(doc_name, mutate, expected):
    assert check(doc_name, mutate(read(DOCS[doc_name]))) == expected
