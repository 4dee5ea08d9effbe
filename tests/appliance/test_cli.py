"""The `ketang` command line: help for every command, errors (its docs: tests/test_docs.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from appliance.cli import main

from ..helpers import KETANG, make_source


def all_commands(group: click.Group = main, prefix: str = "ketang") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        out.append(f"{prefix} {name}")
        if isinstance(cmd, click.Group):
            out += all_commands(cmd, f"{prefix} {name}")
    return out


def test_the_issue_commands_exist():
    cmds = set(all_commands())
    assert {"ketang serve", "ketang demo", "ketang keys new", "ketang publish",
            "ketang import"} <= cmds


def test_top_level_help_lists_every_command_with_a_description():
    result = subprocess.run([*KETANG, "--help"], capture_output=True, text=True, check=True)
    for name, cmd in main.commands.items():
        assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.M), name
        assert cmd.get_short_help_str(), name


@pytest.mark.parametrize("command", all_commands())
def test_every_command_has_help(command):
    args = command.split()[1:] + ["--help"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_import_refuses_an_untrusted_bundle_with_a_clear_message(tmp_path):
    runner = CliRunner()
    keys = tmp_path / "keys"
    r = runner.invoke(main, ["keys", "new", "--name", "pub", "--out", str(keys)])
    assert r.exit_code == 0, r.output
    src = make_source(tmp_path / "src")
    r = runner.invoke(main, ["publish", str(src), "--channel", "c1", "--version", "1",
                             "--key", str(keys / "pub.key"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "Published c1 v1" in r.output
    empty_trust = tmp_path / "trust"
    empty_trust.mkdir()
    (tmp_path / "k.toml").write_text(f'[trust]\nkeys_dir = "{empty_trust}"\n')
    r = runner.invoke(main, ["--config", str(tmp_path / "k.toml"), "import", str(tmp_path / "b"),
                             "--data-dir", str(tmp_path / "data")])
    assert r.exit_code == 1
    assert "trusts no publisher key" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "data").exists()


def test_import_names_a_folder_without_a_bundle(tmp_path):
    r = CliRunner().invoke(main, ["import", str(tmp_path), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 1
    assert "holds no KETANG/ folder" in r.output


def test_keys_new_refuses_to_overwrite_a_key(tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "new", "--name", "k", "--out", str(tmp_path)])
    assert first.exit_code == 0
    before = (tmp_path / "k.key").read_bytes()
    r = runner.invoke(main, ["keys", "new", "--name", "k", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "already exists" in r.output
    assert (tmp_path / "k.key").read_bytes() == before
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600


def _published(tmp_path: Path, key_name: str) -> tuple[Path, Path]:
    runner = CliRunner()
    keys = tmp_path / key_name
    made = runner.invoke(main, ["keys", "new", "--name", key_name, "--out", str(keys)])
    assert made.exit_code == 0, made.output
    bundle = tmp_path / f"bundle-{key_name}"
    r = runner.invoke(main, ["publish", str(make_source(tmp_path / f"src-{key_name}")),
                             "--channel", "c1", "--version", "1",
                             "--key", str(keys / f"{key_name}.key"), "--out", str(bundle)])
    assert r.exit_code == 0, r.output
    return bundle, keys / f"{key_name}.pub"


def _device_config(tmp_path: Path, pub: Path) -> Path:
    trust = tmp_path / "device-trust"
    trust.mkdir(exist_ok=True)
    (trust / pub.name).write_bytes(pub.read_bytes())
    cfg = tmp_path / "device.toml"
    cfg.write_text(f'[device]\ndata_dir = "{tmp_path / "data"}"\n[trust]\nkeys_dir = "{trust}"\n')
    return cfg


def test_import_refuses_a_manifest_altered_after_signing(tmp_path):
    bundle, pub = _published(tmp_path, "pub")
    manifest = next((bundle / "KETANG" / "releases").rglob("manifest.json"))
    manifest.write_bytes(manifest.read_bytes().replace("分数".encode(), "小数".encode()))
    r = CliRunner().invoke(main, ["--config", str(_device_config(tmp_path, pub)), "import",
                                  str(bundle)])
    assert r.exit_code == 1
    assert "altered after signing" in r.output and "Nothing was imported" in r.output
    assert not (tmp_path / "data").exists()


def test_import_refuses_a_release_signed_by_an_untrusted_key(tmp_path):
    bundle, _ = _published(tmp_path, "stranger")
    _, trusted_pub = _published(tmp_path, "district")
    r = CliRunner().invoke(main, ["--config", str(_device_config(tmp_path, trusted_pub)),
                                  "import", str(bundle)])
    assert r.exit_code == 1
    assert "which this device does not trust" in r.output
    assert not (tmp_path / "data").exists()


def test_import_then_reimport_through_the_command(tmp_path):
    bundle, pub = _published(tmp_path, "pub")
    cfg = str(_device_config(tmp_path, pub))
    r = CliRunner().invoke(main, ["--config", cfg, "import", str(bundle)])
    assert r.exit_code == 0, r.output
    assert "Activated c1 v1" in r.output and "copied 4 files" in r.output
    r = CliRunner().invoke(main, ["--config", cfg, "import", str(bundle)])
    assert "already active; nothing to do" in r.output


def test_the_progress_bar_starts_afresh_for_each_channel(capsys):
    from appliance.cli.progress import ByteBar

    bar = ByteBar("导入 Importing")
    bar(50, 100)
    bar(100, 100)
    bar(10, 40)  # a second channel starts from zero: a new bar, never a negative step
    assert bar.shown == 10 and bar.bar is not None and bar.bar.length == 40
    bar.close()
    assert bar.bar is None


def test_drives_status_says_each_state_in_both_languages_and_reads_old_files(tmp_path):
    import json as json_module

    from appliance.drives.status import DriveStatus

    status_file = tmp_path / "drives.json"
    cfg = tmp_path / "device.toml"
    cfg.write_text(f'[device]\ndata_dir = "{tmp_path / "data"}"\n'
                   f'[drives]\nstatus_file = "{status_file}"\n')
    DriveStatus(status_file).set("sdb1", "error", error="sdb1: No space left on device",
                                 error_code="space")
    doc = json_module.loads(status_file.read_text(encoding="utf-8"))
    doc["drives"]["sdc1"] = {"message": "旧版本的话 / words of an older version"}
    status_file.write_text(json_module.dumps(doc, ensure_ascii=False), encoding="utf-8")
    r = CliRunner().invoke(main, ["--config", str(cfg), "drives", "status"])
    assert r.exit_code == 0, r.output
    assert ("sdb1: U盘导入失败：本机剩余空间不足 / The USB drive could not be imported: there "
            "is not enough free space on this device (sdb1: No space left on device)") in r.output
    assert "sdc1: 旧版本的话 / words of an older version" in r.output


def test_publish_warns_about_a_pdf_whose_fonts_are_not_embedded(tmp_path):
    """Issue 18: a task sheet with a non-embedded Chinese font shows its Chinese as
    nothing on a device without poppler-data; the publisher says so (and still signs)."""
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject

    def name(s: str) -> NameObject:
        return NameObject(s)

    src = make_source(tmp_path / "src")
    sheet = PdfWriter()   # a page using STSong-Light the way ReportLab does, not embedded
    page = sheet.add_blank_page(595, 842)
    descriptor = DictionaryObject({name("/Type"): name("/FontDescriptor"),
                                   name("/FontName"): name("/STSong-Light")})
    cid = DictionaryObject({name("/Type"): name("/Font"), name("/Subtype"): name("/CIDFontType0"),
                            name("/BaseFont"): name("/STSong-Light"),
                            name("/FontDescriptor"): sheet._add_object(descriptor)})
    font = DictionaryObject({name("/Type"): name("/Font"), name("/Subtype"): name("/Type0"),
                             name("/BaseFont"): name("/STSong-Light"),
                             name("/DescendantFonts"): ArrayObject([sheet._add_object(cid)])})
    page[name("/Resources")] = DictionaryObject({name("/Font"): DictionaryObject(
        {name("/F1"): sheet._add_object(font)})})
    with open(src / "media" / "l0.pdf", "wb") as f:
        sheet.write(f)
    blank = PdfWriter()
    blank.add_blank_page(595, 842)  # no fonts at all: nothing to warn about
    with open(src / "media" / "l1.pdf", "wb") as f:
        blank.write(f)
    keys = tmp_path / "keys"
    runner = CliRunner()
    assert runner.invoke(main, ["keys", "new", "--name", "pub", "--out", str(keys)]).exit_code == 0
    r = runner.invoke(main, ["publish", str(src), "--channel", "c1", "--version", "1",
                             "--key", str(keys / "pub.key"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.output.splitlines() if line.startswith("注意 Warning")]
    assert len(warnings) == 1, r.output
    assert "l0.pdf" in warnings[0] and "does not embed" in warnings[0]
    assert "STSong-Light" in warnings[0]
    assert not (tmp_path / "b" / "KETANG" / "blobs" / "tmp").exists()   # no empty tmp left
