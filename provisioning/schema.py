"""Every setting of ``ketang-setup.toml`` and its validation.

:func:`validate` checks a whole file against what the device already has
(:class:`Device`) and returns the settings to apply, or raises
:class:`~provisioning.setupfile.SetupFileError` listing every problem, each naming the
setting, its line and what to write instead. Nothing here writes anything: the same code
runs on a technician's laptop (``ketang provision --check``) and at first boot.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from content_cache.keys import key_id

from . import adminpw, regdomain, updatekeys
from .setupfile import Problem, SetupFileError, decode, line_of, parse


class Invalid(ValueError):
    """A value is wrong; the message says what to write instead."""


@dataclass(frozen=True)
class Setting:
    """One setting of the setup file."""

    name: str                       # "wifi.ssid"
    check: Callable[[Any], Any]     # returns the value to apply, or raises Invalid
    example: str                    # what a good line looks like
    security: bool = False          # first boot or after a factory reset only
    secret: bool = False            # never shown in the result file or logs
    required: bool = False          # on first boot

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


# --- value checks -----------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(max_chars: int, pattern: str | None = None, hint: str = "") -> Callable[[Any], str]:
    rx = re.compile(pattern) if pattern else None

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise Invalid("应为文本。This should be text in double quotes.")
        if not v.strip():
            raise Invalid("不能为空。This must not be empty.")
        if _CONTROL.search(v):
            raise Invalid("含有控制字符（如换行）。It holds a control character such as a "
                          "line break; write it on one line.")
        if len(v) > max_chars:
            raise Invalid(f"太长（最多 {max_chars} 个字符）。It is {len(v)} characters "
                          f"long; at most {max_chars}.")
        if rx and not rx.fullmatch(v):
            raise Invalid(hint)
        return v
    return check


def _int(low: int, high: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid(f"应为整数（不加引号）。This should be a whole number without quotes, "
                          f"from {low} to {high}.")
        if not low <= v <= high:
            raise Invalid(f"应在 {low} 到 {high} 之间。It should be from {low} to {high}, "
                          f"not {v}.")
        return int(v)
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid("应为 true 或 false（不加引号）。Write true or false, without quotes.")
    return bool(v)


def _list(item: Callable[[Any], Any], max_items: int = 64) -> Callable[[Any], list]:
    def check(v: Any) -> list:
        if not isinstance(v, list):
            raise Invalid('应为列表。This should be a list in square brackets, e.g. '
                          '["a", "b"] (or [] for none).')
        if len(v) > max_items:
            raise Invalid(f"最多 {max_items} 项。At most {max_items} items.")
        out = []
        for i, x in enumerate(v, 1):
            try:
                out.append(item(x))
            except Invalid as e:
                raise Invalid(f"第 {i} 项 item {i}: {e}") from None
        return out
    return check


def _url(v: Any) -> str:
    _text(2000)(v)
    u = urllib.parse.urlsplit(v)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise Invalid(f"不是网址。{v!r} is not an address; write a full http:// or "
                      "https:// address, e.g. \"https://lrs.example.edu.cn/xAPI/\".")
    return str(v)


def _ssid(v: Any) -> str:
    _text(32)(v)
    size = len(v.encode("utf-8"))
    if size > 32:
        raise Invalid(f"Wi-Fi 名称最多 32 字节（每个汉字占 3 字节），现在 {size} 字节。The "
                      f"network name is {size} bytes; Wi-Fi allows 32 (a Chinese character "
                      "takes 3): shorten it, e.g. \"课堂-红星小学\".")
    return str(v)


EXAMPLE_PASSPHRASE = "change-me-please"     # the shipped example's: everyone can read it


def _passphrase(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid("应为文本。This should be text in double quotes.")
    if v == EXAMPLE_PASSPHRASE:
        raise Invalid("这是示例文件里的密码，人人都能看到，请换成自己的。This is the example "
                      "file's passphrase, which anyone can read: choose your own.")
    if not 8 <= len(v) <= 63 or not all(" " <= c <= "~" for c in v):
        raise Invalid("Wi-Fi 密码须为 8 到 63 个英文字母、数字或符号（不能有汉字）。The Wi-Fi "
                      "passphrase must be 8 to 63 ASCII letters, digits or signs (no Chinese "
                      f"characters); this one has {len(v)} characters. Or write open = true "
                      "for a network without a password.")
    return v


def _country(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid('应为两个字母的国家代码。Write the two-letter ISO country code in '
                      'quotes, e.g. country = "CN".')
    code = v.strip().upper()
    known = regdomain.countries()
    if code not in known:
        raise Invalid(f"{v!r} 不是国家代码。{v!r} is not an ISO 3166 country code; write "
                      'the two-letter code of the country the device is in, e.g. "CN" '
                      "(China), \"KE\" (Kenya), \"IN\" (India). Without it the radio stays "
                      "off.")
    return code


def _band(v: Any) -> str:
    if v not in regdomain.BANDS:
        raise Invalid('应为 "2.4" 或 "5"。Write band = "2.4" (reaches further, every tablet '
                      'has it) or band = "5" (faster, fewer tablets).')
    return str(v)


_HOST_RX = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"


def _hostname(v: Any) -> str:
    return _text(63, _HOST_RX, "主机名只能用小写字母、数字和连字符。A host name is 1 to 63 "
                 'lower-case letters, digits and hyphens, not starting or ending with a '
                 'hyphen, e.g. "ketang-hongxing".')(v)


@functools.cache
def _zones() -> frozenset[str]:
    try:
        return frozenset(zoneinfo.available_timezones())
    except Exception:   # noqa: BLE001 - no tz database at all: accept the name's shape
        return frozenset()


def _timezone(v: Any) -> str:
    _text(64)(v)
    zones = _zones()
    if (zones and v not in zones) or not re.fullmatch(r"[A-Za-z0-9_+/-]+", v) or ".." in v:
        close = difflib.get_close_matches(v, sorted(zones), n=1)
        hint = f' Did you mean "{close[0]}"?' if close else ""
        raise Invalid(f"{v!r} 不是时区名。{v!r} is not a time zone name; write one such as "
                      f'"Asia/Shanghai" or "Africa/Nairobi".{hint}')
    return str(v)


def _window(v: Any) -> str:
    _text(11)(v)
    m = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", v)
    if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59 \
            or m.group(1, 2) == m.group(3, 4):
        raise Invalid(f'{v!r} 不是时间段。{v!r} is not a time window; write "HH:MM-HH:MM" '
                      'in local time, e.g. "01:00-06:00" (it may run past midnight).')
    return str(v)


def _school_id(v: Any) -> str:
    return _text(64, r"[A-Za-z0-9][A-Za-z0-9._-]*", "学校编号只能用字母、数字和 . _ -。The "
                 'school id is letters, digits, ".", "_" and "-", starting with a letter or '
                 'digit, e.g. "cn-gz-0042".')(v)


def _public_key(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid("应为公钥文本。This should be a public key's text (PEM).")
    try:
        key = serialization.load_pem_public_key(v.strip().encode("ascii") + b"\n")
    except (ValueError, TypeError, UnicodeEncodeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise Invalid("不是 Ed25519 公钥。This is not an Ed25519 public key: paste the whole "
                      "text of the .pub file (from -----BEGIN PUBLIC KEY----- to -----END "
                      "PUBLIC KEY-----) between triple quotes ''' '''.")
    return v.strip() + "\n"


def _update_certificate(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid("应为证书文本。This should be a certificate's text (PEM).")
    try:
        updatekeys.load_certificate(v)
    except updatekeys.NotACertificate as e:
        raise Invalid(str(e)) from None
    return v.strip() + "\n"


def _password(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid("应为文本。This should be text in double quotes.")
    try:
        adminpw.check(v)
    except ValueError as e:
        raise Invalid(str(e)) from None
    return v


def _address(v: Any) -> str:
    _text(18)(v)
    try:
        iface = ipaddress.IPv4Interface(v)
    except ValueError:
        iface = None
    if iface is None or "/" not in v or not 16 <= iface.network.prefixlen <= 28 \
            or not iface.ip.is_private or iface.ip in (iface.network.network_address,
                                                       iface.network.broadcast_address):
        raise Invalid(f'{v!r} 不是合适的地址。{v!r} is not a usable address for the classroom '
                      'network; write a private IPv4 address with its prefix (/16 to /28), '
                      'e.g. "192.168.4.1/24".')
    return str(iface)


_IFACE_RX = r"[A-Za-z0-9_.-]{1,15}"


def _iface(v: Any) -> str:
    return _text(15, _IFACE_RX, 'Write a network interface name, e.g. "wlan0" or "eth0".')(v)


_NODE = _text(200)

SETTINGS: tuple[Setting, ...] = (
    Setting("school.name", _text(64), 'name = "红星小学"', required=True),
    Setting("school.id", _school_id, 'id = "cn-gz-0042"'),
    Setting("school.homepage", _url, 'homepage = "https://hongxing.example.edu.cn/"'),
    Setting("wifi.ssid", _ssid, 'ssid = "课堂-红星小学"', required=True),
    Setting("wifi.passphrase", _passphrase, 'passphrase = "eight-or-more"', secret=True),
    Setting("wifi.open", _bool, "open = true"),
    Setting("wifi.country", _country, 'country = "CN"', required=True),
    Setting("wifi.band", _band, 'band = "2.4"'),
    Setting("wifi.channel", _int(1, 196), "channel = 6"),
    Setting("wifi.interface", _iface, 'interface = "wlan0"'),
    Setting("network.address", _address, 'address = "192.168.4.1/24"'),
    Setting("network.uplink", _iface, 'uplink = "eth0"'),
    Setting("admin.password", _password, 'password = "a few words make a good one"',
            security=True, secret=True),
    Setting("trust.publisher_keys", _list(_public_key, 16),
            "publisher_keys = ['''-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----''']",
            security=True),
    Setting("trust.update_keys", _list(_update_certificate, 16),
            "update_keys = ['''-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----''']",
            security=True),
    Setting("subscriptions.stages", _list(_NODE), 'stages = ["小学"]'),
    Setting("subscriptions.grades", _list(_NODE), 'grades = ["三年级", "四年级"]'),
    Setting("subscriptions.subjects", _list(_NODE), 'subjects = ["数学", "语文"]'),
    Setting("subscriptions.editions", _list(_NODE), 'editions = ["人教版"]'),
    Setting("sync.feeds", _list(_url, 16), 'feeds = ["https://mirror.example.edu.cn/ketang/"]'),
    Setting("sync.channels", _list(_text(100), 32), 'channels = ["cn-basic-edu"]'),
    Setting("sync.windows", _list(_window, 16), 'windows = ["01:00-06:00"]'),
    Setting("sync.daily_quota_mb", _int(0, 10_000_000), "daily_quota_mb = 2000"),
    Setting("lrs.url", _url, 'url = "https://lrs.example.edu.cn/xAPI/"'),
    Setting("lrs.username", _text(200), 'username = "school-0042"'),
    Setting("lrs.password", _text(1000), 'password = "..."', secret=True),
    Setting("system.timezone", _timezone, 'timezone = "Asia/Shanghai"'),
    Setting("system.hostname", _hostname, 'hostname = "ketang-hongxing"'),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.path[0] for s in SETTINGS))


@dataclass(frozen=True)
class Device:
    """What the device already has, against which a file is checked.

    ``values`` holds the settings applied before (flat names, secrets included); empty on
    first boot and on a laptop. ``sealed`` is True once first boot applied security
    settings (until a factory reset).
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    sealed: bool = False
    password_matches: Callable[[str], bool] = lambda _p: False


@dataclass(frozen=True)
class Checked:
    """A valid setup file: what to apply, and what the file already said."""

    changes: dict[str, Any]          # settings whose value is new (flat names)
    unchanged: dict[str, Any]        # settings the file repeats (already applied)
    text: str                        # the file's text, for the rewrite

    @property
    def given(self) -> dict[str, Any]:
        return {**self.unchanged, **self.changes}


def validate(data: bytes, device: Device = Device()) -> Checked:
    """Check a setup file's bytes; return what to apply or raise SetupFileError.

    Every problem is collected before raising, so the technician fixes them in one trip.
    """
    text = decode(data)
    doc = parse(text).unwrap()
    problems: list[Problem] = []

    def problem(name: str, message: str, path: tuple[str, ...] | None = None) -> None:
        problems.append(Problem(name, line_of(text, path or tuple(name.split("."))), message))

    given: dict[str, Any] = {}
    present: set[str] = set()       # written in the file, valid or not
    for section, body in doc.items():
        homes = [s.path[0] for s in SETTINGS if s.path[1] == section]
        if not isinstance(body, dict) and homes:
            problem(section, f"{section} 应写在 [{homes[0]}] 下面。{section} belongs in "
                    f"[{homes[0]}]: write it below a line [{homes[0]}], e.g. "
                    f"[{homes[0]}] then {BY_NAME[homes[0] + '.' + section].example}.",
                    (section,))
            present.add(f"{homes[0]}.{section}")    # written, in the wrong place
            continue
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, SECTIONS, n=1)
            hint = f" Did you mean [{close[0]}]?" if close else ""
            problem(section, f"未知的部分 [{section}]。Unknown section [{section}]; the "
                    f"sections are {', '.join('[' + s + ']' for s in SECTIONS)}.{hint}",
                    (section,))
            continue
        if not isinstance(body, dict):
            problem(section, f"[{section}] 应为一个部分。Write [{section}] on a line of its "
                    "own and its settings below it (key = value).", (section,))
            continue
        for key, value in body.items():
            name = f"{section}.{key}"
            setting = BY_NAME.get(name)
            if setting is None:
                names = [s.path[1] for s in SETTINGS if s.path[0] == section]
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f' Did you mean "{close[0]}"?' if close else ""
                problem(name, f"未知的设置。Unknown setting {name}; [{section}] has "
                        f"{', '.join(names)}.{hint}", (section, key))
                continue
            present.add(name)
            try:
                given[name] = setting.check(value)
            except Invalid as e:
                problem(name, f"{e} 例 Example: {setting.example}")
    _cross_checks(given, present, device, problem)
    if problems:
        raise SetupFileError(problems)
    changes: dict[str, Any] = {}
    unchanged: dict[str, Any] = {}
    for name, value in given.items():
        same = (device.password_matches(value) if name == "admin.password"
                else device.values.get(name) == value)
        (unchanged if same else changes)[name] = value
    return Checked(changes, unchanged, text)


def _cross_checks(given: dict[str, Any], present: set[str], device: Device,
                  problem: Callable[..., None]) -> None:
    merged = {**device.values, **given}
    first = not device.values
    if first:
        for s in SETTINGS:
            if s.required and s.name not in present:
                problem(s.name, f"首次启动必须设置。{s.name} is required on first boot: add "
                        f"[{s.path[0]}] with {s.example}.", (s.path[0],))
        if not {"wifi.passphrase", "wifi.open"} & present:
            problem("wifi.passphrase", "首次启动须设 Wi-Fi 密码或 open = true。Set a Wi-Fi "
                    'passphrase (passphrase = "eight-or-more") or, for a network anyone may '
                    "join, open = true.", ("wifi",))
    if given.get("wifi.open") and "wifi.passphrase" in given:
        problem("wifi.open", "open = true 与密码不能同时设置。A network cannot be open and "
                "have a passphrase: remove one of the two.")
    if given.get("wifi.open") is False and not merged.get("wifi.passphrase"):
        problem("wifi.open", "open = false 需要密码。open = false needs a passphrase: add "
                'passphrase = "eight-or-more".')
    country = merged.get("wifi.country")
    band = merged.get("wifi.band", "2.4")
    if "wifi.channel" in given or "wifi.band" in given or "wifi.country" in given:
        channel = merged.get("wifi.channel", regdomain.DEFAULT_CHANNEL[band])
        allowed = regdomain.channels(country, band) if country else ()
        if country and channel not in allowed:
            name = "wifi.channel" if "wifi.channel" in given else (
                "wifi.band" if "wifi.band" in given else "wifi.country")
            problem(name, f"信道 {channel} 在 {country} 的 {band} GHz 频段不可用。Channel "
                    f"{channel} cannot be used on {band} GHz in {country}; write one of "
                    f"{', '.join(map(str, allowed))} (or remove channel to use "
                    f"{regdomain.DEFAULT_CHANNEL[band]}).")
    if device.sealed:
        for s in SETTINGS:
            if not s.security or s.name not in given:
                continue
            same = (device.password_matches(given[s.name]) if s.name == "admin.password"
                    else _key_ids(given[s.name]) == _key_ids(device.values.get(s.name, [])))
            if not same:
                problem(s.name, f"安全设置只能在首次启动或恢复出厂设置后更改。{s.name} is a "
                        "security setting: it is taken only on first boot or after a factory "
                        "reset (docs/provisioning.md), never from a later edit of the card. "
                        f"Remove it from the file; change the admin password with `ketang "
                        "admin password` on the device.")


def _key_ids(pems: Any) -> set[str]:
    out = set()
    for pem in pems or []:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
        assert isinstance(key, Ed25519PublicKey)
        out.add(key_id(key))
    return out
