"""The setup file as text: parsed with tomlkit, so errors can name lines and the file can
be written back with the applied settings removed and every comment kept (like
offspot.yaml).

tomlkit keeps the document's exact text (comments, blank lines, order), which is what
lets :func:`line_of` find where a setting is written and :func:`without` rewrite the
file a technician edited without reformatting it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

SETUP_NAME = "ketang-setup.toml"
RESULT_NAME = "ketang-setup-result.txt"
DRIVE_SETUP = ("KETANG", "setup", SETUP_NAME)
MAX_SETUP_BYTES = 256 * 1024     # a setup file is a page or two; refuse anything huge

_MARK = "ketang-line-marker-7f3a"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a setup file: the setting, its line, what is wrong, the fix."""

    setting: str          # "wifi.country", or "" for the file as a whole
    line: int | None
    message: str          # what is wrong and what to write instead (Chinese, then English)

    def __str__(self) -> str:
        where = f"第 {self.line} 行 line {self.line}" if self.line else ""
        name = self.setting or "ketang-setup.toml"
        return f"{name}{' (' + where + ')' if where else ''}: {self.message}"


class SetupFileError(ValueError):
    """The setup file could not be read or has problems; nothing was applied."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def decode(data: bytes) -> str:
    """The file's text: UTF-8, with a byte-order mark (Windows Notepad) tolerated."""
    if len(data) > MAX_SETUP_BYTES:
        raise SetupFileError([Problem("", None, f"文件太大（{len(data)} 字节）。The file is "
                                      f"{len(data)} bytes; a setup file is at most "
                                      f"{MAX_SETUP_BYTES} bytes. Start again from "
                                      "ketang-setup.example.toml.")])
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):     # Notepad's "Unicode"
            text = data.decode("utf-16")
        else:
            text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SetupFileError([Problem("", line, "不是 UTF-8 编码。The file is not UTF-8: save "
                                      "it as UTF-8 (in Notepad: Save as, Encoding UTF-8).")]
                             ) from None
    if "\x00" in text:
        raise SetupFileError([Problem("", text[:text.index("\x00")].count("\n") + 1,
                                      "文件里有空字符。The file holds a NUL byte: it is not "
                                      "a text file. Start again from the example.")])
    return text


def parse(text: str) -> tomlkit.TOMLDocument:
    """Parse the setup file, turning a TOML syntax error into a :class:`Problem`."""
    try:
        return tomlkit.parse(text)
    except TOMLKitError as e:
        line = getattr(e, "line", None)
        raise SetupFileError([Problem("", line, f"TOML 语法错误。The file is not valid TOML: "
                                      f"{e}. Write settings as key = value, text in "
                                      'double quotes ("..."), lists in [ ].')]) from None
    except (ValueError, RecursionError, OverflowError) as e:   # tomlkit's own edge cases
        raise SetupFileError([Problem("", None, f"TOML 语法错误。The file is not valid TOML "
                                      f"({type(e).__name__}: {e}).")]) from None


def line_of(text: str, path: tuple[str, ...]) -> int | None:
    """The line where the setting ``path`` (e.g. ``("wifi", "ssid")``) starts, if found.

    Works on a fresh parse: marks the item with a comment, renders, finds the marker.
    """
    try:
        doc = tomlkit.parse(text)
        item: Any = doc
        for part in path:
            item = item.item(part) if hasattr(item, "item") else item[part]
        item.comment(_MARK)
        rendered = doc.as_string()
    except Exception:   # noqa: BLE001 - a line number is a nicety, never a crash
        return None
    at = rendered.find(_MARK)
    if at < 0:
        return None
    end_line = rendered[:at].count("\n") + 1
    if isinstance(item, (tomlkit.items.Table, tomlkit.items.AoT)):
        return end_line
    return end_line - item.as_string().count("\n")


def without(text: str, paths: Iterable[tuple[str, ...]]) -> str:
    """The file's text with the settings ``paths`` removed; comments and order are kept.

    A table that loses its last setting keeps its header (and comments), ready for the
    next edit.
    """
    doc = tomlkit.parse(text)
    for path in paths:
        container: Any = doc
        for part in path[:-1]:
            container = container.get(part) if hasattr(container, "get") else None
            if container is None:
                break
        if container is not None and path[-1] in container:
            del container[path[-1]]
    return doc.as_string()
