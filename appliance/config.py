"""Configuration: one TOML file, read with tomllib.

Where it comes from: ``--config FILE``, else ``$KETANG_CONFIG``, else
``/etc/ketang/ketang.toml`` if it exists, else the built-in defaults. Every setting
is documented in docs/configuration.md (a test keeps that honest). Unknown sections
or keys are refused, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from content_cache.errors import KetangError
from content_cache.subscription import Subscription

DEFAULT_CONFIG_PATH = Path("/etc/ketang/ketang.toml")


@dataclass(frozen=True)
class DeviceSettings:
    """[device]: who this device is and where it keeps its data."""

    name: str = "Ketang 课堂"
    id: str = ""
    data_dir: Path = Path("/var/lib/ketang")
    reserve_mb: int = 256


@dataclass(frozen=True)
class ServerSettings:
    """[server]: the HTTP server (waitress)."""

    host: str = "0.0.0.0"
    port: int = 8080
    threads: int = 8
    apps_port: int = 8081
    connection_limit: int = 1000
    connections_per_client: int = 24
    request_timeout: int = 10
    channel_timeout: int = 60
    send_buffer: int = 262144


@dataclass(frozen=True)
class CaptiveSettings:
    """[captive]: the captive portal (answers to OS connectivity probes)."""

    enabled: bool = True
    host_names: list[str] = field(default_factory=lambda: ["ketang.lan", "ketang.local"])


@dataclass(frozen=True)
class ZeroconfSettings:
    """[zeroconf]: advertising the device and finding peers on the LAN (mDNS/DNS-SD)."""

    enabled: bool = True
    interfaces: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrustSettings:
    """[trust]: which publishers this device accepts releases from."""

    keys_dir: Path = Path("/etc/ketang/trusted-keys")


@dataclass(frozen=True)
class SubscriptionsSettings:
    """[subscriptions]: what this school keeps (empty lists keep everything)."""

    stages: list[str] = field(default_factory=list)
    grades: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    editions: list[str] = field(default_factory=list)

    def subscription(self) -> Subscription:
        """The content_cache Subscription these settings name."""
        return Subscription(tuple(self.stages), tuple(self.grades), tuple(self.subjects),
                            tuple(self.editions))

@dataclass(frozen=True)
class DrivesSettings:
    """[drives]: USB drives (mounted read-only, imported, given a status report)."""

    mount_root: Path = Path("/media/ketang")
    status_file: Path = Path("/run/ketang/drives.json")


@dataclass(frozen=True)
class ProjectorSettings:
    """[projector]: the teacher's projector view (docs/projector.md)."""

    join_url: str = ""
    token: str = ""
    recent: int = 6


@dataclass(frozen=True)
class AdminSettings:
    """[admin]: the technician dashboard's login (docs/dashboard.md)."""

    session_minutes: int = 480


@dataclass(frozen=True)
class UsageSettings:
    """[usage]: usage events (their database, limits, and the LRS they go to)."""

    enabled: bool = True
    max_mb: int = 200
    raw_max_mb: int = 150
    raw_max_days: int = 180
    rollup_max_days: int = 1830
    max_batch: int = 100
    max_body_kb: int = 256
    rate_per_minute: int = 600
    device_rate_per_minute: int = 6000
    commit_delay_ms: int = 20
    school_homepage: str = "http://ketang.lan"
    activity_base: str = "http://ketang.lan/resource/"
    lrs_url: str = ""
    lrs_username: str = ""
    lrs_password: str = ""
    upload_batch: int = 100
    upload_timeout: int = 30
    upload_retries: int = 3
    upload_windows: list[str] = field(default_factory=list)
    upload_interval: int = 900
    device_keys_dir: Path = Path("/etc/ketang/device-keys")


@dataclass(frozen=True)
class TabletSettings:
    """[tablet]: the students' tablet pages."""

    pdf_cache_mb: int = 512


#: Address ranges of a school's or township's own network (RFC 1918, link-local, ULA).
LAN_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                "fc00::/7", "fe80::/10")


@dataclass(frozen=True)
class SyncSettings:
    """[sync]: the long-running BitTorrent sync service (docs/sync.md)."""

    enabled: bool = False
    feeds: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    listen_interfaces: str = "0.0.0.0:6881"
    lsd: bool = True
    windows: list[str] = field(default_factory=list)
    daily_quota_mb: int = 0
    uplink_interfaces: list[str] = field(default_factory=list)
    upload_rate_kbps: int = 2000
    download_rate_kbps: int = 0
    resume_interval: int = 2
    poll_interval: int = 3600
    status_file: Path = Path("/run/ketang/sync.json")
    hub: str = "auto"
    hub_timeout: int = 20
    lan_stall_seconds: int = 60
    lan_rate_kbps: int = 200000
    lan_networks: list[str] = field(default_factory=lambda: list(LAN_NETWORKS))


@dataclass(frozen=True)
class Settings:
    """All settings, by section."""

    device: DeviceSettings = field(default_factory=DeviceSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    captive: CaptiveSettings = field(default_factory=CaptiveSettings)
    subscriptions: SubscriptionsSettings = field(default_factory=SubscriptionsSettings)
    zeroconf: ZeroconfSettings = field(default_factory=ZeroconfSettings)
    drives: DrivesSettings = field(default_factory=DrivesSettings)
    projector: ProjectorSettings = field(default_factory=ProjectorSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)
    tablet: TabletSettings = field(default_factory=TabletSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    source: str = "built-in defaults"

    def with_overrides(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section replaced (None values are ignored)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        return replace(self, **{section: replace(getattr(self, section), **values)})


SECTIONS = {f.name: f.type for f in fields(Settings) if f.name != "source"}


def _section_defaults(f: Field[Any]) -> Any:
    """The defaults of one section of Settings (each section has a default factory)."""
    factory = f.default_factory
    assert callable(factory), f"section {f.name} has no default factory"
    return factory()


def documented_settings() -> list[str]:
    """Every setting as ``section.key``, for docs and the test that keeps them honest."""
    out = []
    for f in fields(Settings):
        if f.name == "source":
            continue
        out += [f"{f.name}.{g.name}" for g in fields(_section_defaults(f))]
    return out


TYPE_WORDS = {bool: "true or false", int: "a whole number", str: "a string",
              list: "a list of strings", type(Path()): "a path (a string)"}


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, Path):
        ok = isinstance(value, str) and value != ""
        value = Path(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        kind = TYPE_WORDS.get(type(default), type(default).__name__)
        raise KetangError(f"{where} should be {kind}, not {value!r}.")
    return value


def parse_settings(doc: dict[str, Any], source: str) -> Settings:
    """Build Settings from a parsed TOML document, refusing unknown or mistyped keys."""
    sections: dict[str, Any] = {}
    for name, value in doc.items():
        defaults_obj = next((_section_defaults(f) for f in fields(Settings) if f.name == name
                             and f.name != "source"), None)
        if defaults_obj is None or not isinstance(value, dict):
            raise KetangError(f"{source}: unknown section [{name}]; see docs/configuration.md "
                              f"(sections: {', '.join(SECTIONS)}).")
        known = {f.name: getattr(defaults_obj, f.name) for f in fields(defaults_obj)}
        given = {}
        for key, v in value.items():
            if key not in known:
                raise KetangError(f"{source}: unknown setting {name}.{key}; see "
                                  "docs/configuration.md.")
            given[key] = _coerce(v, known[key], f"{source}: {name}.{key}")
        sections[name] = replace(defaults_obj, **given)
    return Settings(**sections, source=source)


def load_settings(path: Path | None = None) -> Settings:
    """Read the configuration from ``path``, ``$KETANG_CONFIG``, the default path, or defaults."""
    if path is None and os.environ.get("KETANG_CONFIG"):
        path = Path(os.environ["KETANG_CONFIG"])
    if path is None:
        if not DEFAULT_CONFIG_PATH.is_file():
            return Settings()
        path = DEFAULT_CONFIG_PATH
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError as e:
        raise KetangError(f"the configuration file {path} does not exist.") from e
    except tomllib.TOMLDecodeError as e:
        raise KetangError(f"{path} is not valid TOML: {e}") from e
    return parse_settings(doc, str(path))
