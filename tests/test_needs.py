"""tests/support/needs.py: a missing real part skips a test, and with CI=true fails it."""

from __future__ import annotations

import pytest

from .support.needs import require, require_commands


def test_nothing_missing_goes_on(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require(None)


@pytest.mark.parametrize("ci", ["", "0", "false"])
def test_outside_ci_a_missing_part_skips_saying_what(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        require("chromium is not installed")


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_in_ci_a_missing_part_fails_saying_what(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed.*CI=true"):
        require("chromium is not installed")


def test_a_missing_command_is_named(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require_commands("sh")
    with pytest.raises(pytest.fail.Exception, match="needs no-such-tool-ketang "):
        require_commands("sh", "no-such-tool-ketang")
