"""Wi-Fi regulatory basics: valid country codes and the channels an access point may use.

Country codes are ISO 3166-1 alpha-2, read from the time-zone database's
``iso3166.tab`` (the ``tzdata`` package, or the system's /usr/share/zoneinfo), not a
list of our own. The channel table is deliberately small and conservative: the kernel's
regulatory database (wireless-regdb, chosen by the country code we write into
hostapd.conf) stays the last word, and hostapd refuses at start a channel it forbids.
We only offer channels that need no radar detection (DFS), which a Raspberry Pi's radio
cannot do as an access point.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

BANDS = ("2.4", "5")
DEFAULT_CHANNEL = {"2.4": 6, "5": 36}
_ELEVEN_CHANNELS = frozenset({"US", "CA"})          # 2.4 GHz channels 1-11 only
# Countries where 5.8 GHz (channels 149-165) is open to Wi-Fi without DFS.
_UNII3 = frozenset({"CN", "US", "CA", "AU", "NZ", "IN", "TW", "HK", "SG", "MY", "ID",
                    "PH", "TH", "VN", "MX", "BR"})
_UNII1 = (36, 40, 44, 48)
_UNII3_CHANNELS = (149, 153, 157, 161, 165)


@functools.cache
def countries() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> English country name."""
    text = ""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        for p in (Path("/usr/share/zoneinfo/iso3166.tab"),):
            if p.is_file():
                text = p.read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "\t" in line:
            code, name = line.split("\t", 1)
            out[code.strip()] = name.strip()
    return out


def channels(country: str, band: str) -> tuple[int, ...]:
    """Channels an access point may use in ``country`` on ``band`` ("2.4" or "5")."""
    if band == "2.4":
        return tuple(range(1, 12 if country in _ELEVEN_CHANNELS else 14))
    if band == "5":
        return _UNII1 + (_UNII3_CHANNELS if country in _UNII3 else ())
    return ()
