"""Validation of ketang-setup.toml: every bad value named with its line and a fix."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from content_cache.keys import generate_keypair
from provisioning.schema import BY_NAME, SECTIONS, SETTINGS, Device, validate
from provisioning.setupfile import SetupFileError, line_of, without

EXAMPLE = Path(__file__).parents[2] / "provisioning" / "ketang-setup.example.toml"

GOOD = """\
[school]
name = "红星小学"
[wifi]
ssid = "课堂-红星小学"
passphrase = "our-own-wifi-key"
country = "CN"
"""


def problems(text: str, device: Device | None = None) -> list:
    with pytest.raises(SetupFileError) as e:
        validate(text.encode(), device or Device())
    return e.value.problems


def test_the_shipped_example_is_valid_once_its_passphrase_is_changed():
    [p] = problems(EXAMPLE.read_text(encoding="utf-8"))
    assert p.setting == "wifi.passphrase" and "choose your own" in p.message
    text = EXAMPLE.read_text(encoding="utf-8").replace("change-me-please", "our-own-wifi-key")
    checked = validate(text.encode())
    assert checked.changes["wifi.country"] == "CN"
    assert checked.changes["wifi.ssid"] == "课堂-红星小学"


def test_minimal_first_boot_file():
    checked = validate(GOOD.encode())
    assert set(checked.changes) == {"school.name", "wifi.ssid", "wifi.passphrase",
                                    "wifi.country"}


@pytest.mark.parametrize("line, setting, words", [
    ('country = "XX"', "wifi.country", "ISO 3166"),
    ('country = "cn"', None, None),                    # lower case is accepted (as CN)
    ("channel = 14", "wifi.channel", "1, 2, 3"),
    ("channel = 13", None, None),
    ('channel = "6"', "wifi.channel", "without quotes"),
    ('band = "5"', "wifi.channel", "36, 40"),            # with channel = 6 (added below)
    ('ssid = "课堂课堂课堂课堂课堂课堂"', "wifi.ssid", "36 bytes"),
    ('passphrase = "short"', "wifi.passphrase", "8 to 63"),
    ('passphrase = "密码密码密码密码"', "wifi.passphrase", "ASCII"),
    ("open = true", "wifi.open", "cannot be open and have a passphrase"),
    ('chanel = 6', "wifi.chanel", 'Did you mean "channel"'),
])
def test_bad_wifi_values(line, setting, words):
    text = GOOD.replace('country = "CN"\n', 'country = "CN"\n' + line + "\n")
    if line.startswith(("country", "ssid", "passphrase")):
        key = line.split(" ")[0]
        text = "\n".join(x for x in GOOD.splitlines() if not x.startswith(key + " ")) \
            + "\n" + line + "\n"
    if line == 'band = "5"':
        text += "channel = 6\n"
    if setting is None:
        validate(text.encode())
        return
    found = [p for p in problems(text) if p.setting == setting]
    assert found, problems(text)
    assert words in found[0].message
    lines = text.splitlines()
    assert lines[found[0].line - 1].startswith(setting.split(".")[1])


def test_us_has_eleven_channels_and_no_dfs_on_5ghz():
    text = GOOD.replace('"CN"', '"US"') + "channel = 12\n"
    assert "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 (or" in problems(text)[0].message
    text = GOOD.replace('"CN"', '"DE"') + 'band = "5"\nchannel = 149\n'
    assert "36, 40, 44, 48 (or" in problems(text)[0].message
    validate((GOOD + 'band = "5"\nchannel = 149\n').encode())   # China has 149


def test_first_boot_requirements_name_what_to_add():
    found = {p.setting: p for p in problems('[school]\nname = "x"\n')}
    assert {"wifi.ssid", "wifi.country", "wifi.passphrase"} <= set(found)
    assert 'country = "CN"' in found["wifi.country"].message


def test_every_problem_is_reported_at_once_with_its_line():
    text = ('[school]\nname = "x"\nid = "no spaces allowed"\n[wifi]\nssid = "s"\n'
            'country = "CN"\nopen = true\n[system]\ntimezone = "Asia/Shangai"\n'
            'hostname = "Bad_Name"\n[sync]\nwindows = ["1:00-6:00"]\n'
            'feeds = ["ftp://x"]\n[lrs]\nurl = "not a url"\n[nonsense]\n')
    found = {p.setting: p for p in problems(text)}
    assert set(found) == {"school.id", "system.timezone", "system.hostname", "sync.windows",
                          "sync.feeds", "lrs.url", "nonsense"}
    assert found["school.id"].line == 3
    assert 'Did you mean "Asia/Shanghai"' in found["system.timezone"].message
    assert found["sync.windows"].line == 12
    assert "HH:MM-HH:MM" in found["sync.windows"].message
    assert found["nonsense"].line == 16
    for p in found.values():
        assert "Example" in p.message or "Did you mean" in p.message or "sections" in p.message


def test_a_setting_above_every_section_says_where_it_belongs():
    [p] = problems('country = "CN"\n' + GOOD.replace('country = "CN"\n', ""))
    assert p.setting == "country" and p.line == 1 and "belongs in [wifi]" in p.message


def test_syntax_error_names_the_line():
    [p] = problems('[wifi]\nssid = "unterminated\ncountry = "CN"\n')
    assert p.line == 2 and "not valid TOML" in p.message


def test_not_utf8_and_nul_and_huge():
    for data, words in [(b'[school]\nname = "\xc0"\n', "not UTF-8"),
                        (b"[school]\x00", "NUL"), (b"#" * 300_000, "bytes")]:
        with pytest.raises(SetupFileError) as e:
            validate(data)
        assert words in str(e.value)


def test_windows_notepad_encodings_and_line_ends_are_accepted():
    validate(b"\xef\xbb\xbf" + GOOD.encode())
    validate(GOOD.replace("\n", "\r\n").encode("utf-16"))
    [p] = problems(GOOD.replace('"CN"', '"XX"').replace("\n", "\r\n"))
    assert p.line == 6


def _pem(tmp_path: Path, name: str) -> str:
    return generate_keypair(tmp_path, name).public_path.read_text()


def test_keys_must_be_ed25519_pem(tmp_path):
    pem = _pem(tmp_path, "pub")
    validate((GOOD + f"[trust]\npublisher_keys = ['''{pem}''']\n").encode())
    [p] = problems(GOOD + "[trust]\nupdate_keys = ['''not a key''']\n")
    assert p.setting == "trust.update_keys" and "item 1" in p.message and p.line == 8


def test_security_settings_are_refused_once_sealed_unless_unchanged(tmp_path):
    pem, other = _pem(tmp_path, "a"), _pem(tmp_path, "b")
    device = Device(values={"trust.publisher_keys": [pem], "wifi.country": "CN",
                            "wifi.passphrase": "x" * 8},
                    sealed=True, password_matches=lambda p: p == "the old password")
    text = (f"[trust]\npublisher_keys = ['''{other}''']\n"
            '[admin]\npassword = "a brand new password"\n')
    found = {p.setting: p for p in problems(text, device)}
    assert set(found) == {"trust.publisher_keys", "admin.password"}
    assert "factory reset" in found["admin.password"].message
    same = f"[trust]\npublisher_keys = ['''{pem}''']\n[admin]\npassword = \"the old password\"\n"
    checked = validate(same.encode(), device)
    assert checked.changes == {} and set(checked.unchanged) == {"trust.publisher_keys",
                                                                "admin.password"}


def test_a_later_file_may_change_only_the_ssid():
    device = Device(values={"wifi.ssid": "old", "wifi.country": "CN", "wifi.channel": 6,
                            "wifi.passphrase": "x" * 8}, sealed=True)
    checked = validate(b'[wifi]\nssid = "new"\nchannel = 6\n', device)
    assert checked.changes == {"wifi.ssid": "new"}
    assert checked.unchanged == {"wifi.channel": 6}
    # A band change is checked against the stored channel.
    [p] = problems('[wifi]\nband = "5"\n', device)
    assert p.setting == "wifi.band" and "36" in p.message


def test_rewrite_keeps_comments_and_drops_applied_keys():
    text = EXAMPLE.read_text(encoding="utf-8")
    out = without(text, [("wifi", "ssid"), ("wifi", "passphrase"), ("school", "name")])
    assert "ssid =" not in out and "change-me-please" not in out
    assert "# the network tablets join" not in out      # the inline comment goes with it
    assert "# Copy this file to ketang-setup.toml" in out
    assert 'country = "CN"' in out and "[wifi]" in out
    assert line_of(text, ("wifi", "country")) == text.splitlines().index(
        next(x for x in text.splitlines() if x.startswith("country"))) + 1


def test_every_setting_is_documented():
    doc = (Path(__file__).parents[2] / "docs" / "provisioning.md").read_text(encoding="utf-8")
    for s in SETTINGS:
        assert f"`{s.name}`" in doc, s.name


# --- property tests: no input raises anything but SetupFileError -----------------------

_scalars = st.one_of(st.text(max_size=40), st.integers(-2**63, 2**63 - 1), st.booleans(),
                     st.floats(allow_nan=False), st.just(""), st.sampled_from(["CN", "2.4", "5"]),
                     st.dates(), st.times().map(lambda t: t.replace(microsecond=0)),
                     st.datetimes(timezones=st.just(datetime.UTC)))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), inner,
                                                 max_size=3)), max_leaves=8)
_keys = st.one_of(st.sampled_from([s.path[1] for s in SETTINGS]), st.text(min_size=1,
                                                                         max_size=10))
_sections = st.one_of(st.sampled_from(SECTIONS), st.text(min_size=1, max_size=10))
_docs = st.dictionaries(_sections, st.one_of(st.dictionaries(_keys, _values, max_size=6),
                                              _values), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_docs, st.booleans())
def test_any_toml_shape_gives_a_result_or_setup_errors(doc, sealed):
    text = tomlkit.dumps(doc)
    device = Device(values={"wifi.country": "CN", "wifi.ssid": "s"} if sealed else {},
                    sealed=sealed)
    try:
        checked = validate(text.encode(), device)
    except SetupFileError as e:
        assert e.problems and all(p.message for p in e.problems)
        return
    for name, value in checked.changes.items():
        assert name in BY_NAME and BY_NAME[name].check(value) == value


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_bytes_give_a_result_or_setup_errors(data):
    try:
        validate(data)
    except SetupFileError as e:
        assert e.problems


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(
    ['"', "'", "[", "]", "=", "\n", "#", ".", ",", "{", "}", "\\", "x", "7", "课", ""])),
    min_size=1, max_size=4))
def test_a_technicians_typos_in_the_example_give_setup_errors(edits):
    text = EXAMPLE.read_text(encoding="utf-8")
    for at, char in edits:            # replace one character (or delete it)
        at %= len(text)
        text = text[:at] + char + text[at + 1:]
    try:
        validate(text.encode())
    except SetupFileError as e:
        assert e.problems
        for p in e.problems:
            assert p.line is None or 1 <= p.line <= text.count("\n") + 1
