"""Configuration: the TOML file and where it is found (its docs: tests/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import Settings, load_settings
from content_cache.errors import KetangError


def test_defaults_when_nothing_is_configured(monkeypatch, tmp_path):
    monkeypatch.delenv("KETANG_CONFIG", raising=False)
    monkeypatch.setattr("appliance.config.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    s = load_settings()
    assert s == Settings()
    assert s.server.port == 8080


def test_the_environment_names_the_file(monkeypatch, tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text('[server]\nport = 9090\n[device]\ndata_dir = "/srv/k"\n')
    monkeypatch.setenv("KETANG_CONFIG", str(cfg))
    s = load_settings()
    assert s.server.port == 9090 and s.device.data_dir == Path("/srv/k")
    assert s.server.host == Settings().server.host


@pytest.mark.parametrize("text, message", [
    ("[sever]\nport = 1\n", r"unknown section \[sever\]"),
    ("[server]\nprot = 1\n", "unknown setting server.prot"),
    ('[server]\nport = "80"\n', "server.port should be a whole number"),
    ("[server\n", "not valid TOML"),
])
def test_bad_configuration_is_refused_with_where_and_what(tmp_path, text, message):
    cfg = tmp_path / "k.toml"
    cfg.write_text(text)
    with pytest.raises(KetangError, match=message):
        load_settings(cfg)


def test_a_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(KetangError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
