"""The words people see for the services' state codes: one policy for every view.

Services and their status files carry codes and numbers (a drive's ``state`` with its
byte counts, the sync summary's ``state``, health ``problems``). Views turn them into
words here, through gettext, so each sentence exists once:

- the web views pass Flask-Babel's ``gettext``: the reader's language only;
- the CLI and the ``message`` kept in status files for older readers use :func:`both`:
  ``中文 / English``, from the same catalog (``kiosk_ui/translations``).

Every function takes the gettext to use as ``_`` (``_(msgid)`` → translated text, with
``%(name)s`` left for the caller's ``%``), so ``make translations`` finds the
message ids. A code this version does not know shows the entry's ``message`` (a status
file written by another version), else the code itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations

from .text import human_bytes

Gettext = Callable[[str], str]


def _translations_dir() -> Path:
    """kiosk_ui's catalogs, found without importing kiosk_ui (which imports Flask)."""
    spec = importlib.util.find_spec("kiosk_ui")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "translations"


@lru_cache(maxsize=1)
def _chinese() -> NullTranslations:
    return Translations.load(str(_translations_dir()), ["zh_Hans"])


def chinese(msgid: str) -> str:
    """``msgid`` in Simplified Chinese (the catalog's), for text outside a web request."""
    return _chinese().gettext(msgid)


def english(msgid: str) -> str:
    """``msgid`` as written: the message ids are English."""
    return msgid


def both(render: Callable[[Gettext], str]) -> str:
    """``render``'s words in Chinese, then English: ``中文 / English`` (the CLI's style)."""
    zh, en = render(chinese), render(english)
    return zh if zh == en else f"{zh} / {en}"


# -- drives (appliance/drives/status.py's file) ---------------------------------------

DRIVE_ERRORS = ("mount", "untrusted", "manifest", "blobs", "older", "space", "pulled",
                "report", "bundle", "data-disk", "no-filesystem", "interrupted", "drives-busy",
                "internal", "update", "setup")


def drive_error(code: str, _: Gettext) -> str:
    """What went wrong with a drive, from its ``error_code`` ("" when the code is unknown)."""
    texts = {
        "mount": _("the drive could not be opened (is it FAT32, exFAT or ext4?)"),
        "untrusted": _("its signature is missing, wrong, or by a key this device does not "
                       "trust"),
        "manifest": _("the release's list of files is damaged"),
        "blobs": _("files of the release are missing or damaged on the drive"),
        "older": _("the drive holds an older release than this device's"),
        "space": _("there is not enough free space on this device"),
        "pulled": _("the drive was removed during the import; insert it again to go on"),
        "report": _("the report could not be written to the drive"),
        "bundle": _("the KETANG folder on the drive holds something that is not allowed"),
        "data-disk": _("this device's own disk is full or failing (the drive is fine); free "
                       "space, then insert the drive again"),
        "no-filesystem": _("the drive is blank or damaged; format it FAT32 on a computer and "
                           "copy the KETANG folder onto it again"),
        "interrupted": _("the import was interrupted when Ketang restarted; insert the drive "
                         "again to go on"),
        "drives-busy": _("another drive is being read; wait, then insert this one again"),
        "internal": _("something unexpected went wrong; the drive is unmounted and may be "
                      "removed"),
        "update": _("the software update on the drive was refused"),
        "setup": _("the setup file on the drive was not applied; nothing changed"),
    }
    return texts.get(code, "")


def drive_text(entry: Mapping[str, Any], _: Gettext, banner: bool = False) -> str:
    """One drive's state in words (the dashboard, the CLI; ``banner``: the classroom's
    banner on the projector and tablets, which says what finished)."""
    state = entry.get("state")
    if state == "mounting":
        return _("Reading the drive, don't remove it")
    if state == "importing":
        return _("Importing %(done)s of %(total)s, don't remove the drive") % {
            "done": human_bytes(int(entry.get("done_bytes") or 0)),
            "total": human_bytes(int(entry.get("total_bytes") or 0))}
    if state == "applying-setup":
        return _("Applying the setup file, don't remove the drive")
    if state == "writing-report":
        return _("Writing the reports, don't remove the drive")
    if state == "updating":
        return _("Installing a software update, don't remove the drive")
    if state == "done":
        if entry.get("setup") == "applied":
            return _("Done: the setup file was applied; safe to remove the drive")
        if entry.get("setup") == "unchanged":
            return _("Done: the setup file changed nothing, it is already in place; safe to "
                     "remove the drive")
        if entry.get("note_code") == "reports-only":
            return _("Done: no lessons on this drive, the reports were written; safe to "
                     "remove the drive")
        if banner:
            return _("Import finished, you can safely remove the USB drive")
        return _("Done, safe to remove the drive")
    if state == "error" and entry.get("error_code") == "setup":
        params = entry.get("error_params") or {}
        where = str(params.get("setting") or "ketang-setup.toml")
        if params.get("line"):
            where += f" ({setup_line(params['line'], _)})"
        return _("The setup file on the drive was not applied and nothing changed: check "
                 "%(where)s (KETANG/setup/ketang-setup-result.txt says why)") % {"where": where}
    if state == "error":
        error = drive_error(str(entry.get("error_code") or ""), _) \
            or str(entry.get("error") or "?")
        return _("The USB drive could not be imported: %(error)s") % {"error": error}
    return str(entry.get("message") or state or "")


# -- sync (appliance/sync/status.py's summary) ----------------------------------------

def sync_text(summary: Mapping[str, Any], _: Gettext) -> str:
    """The sync service's state in one line."""
    state = summary.get("state")
    releases = summary.get("releases") or []
    if state == "off":
        if not summary.get("enabled"):
            return _("Sync is off (sync.enabled = false)")
        return _("The sync service is not running (start it with `ketang serve`)")
    if state == "downloading":
        r = next((r for r in releases if r.get("state") in ("downloading", "activating")),
                 None)
        if r is not None:
            return _("Syncing %(channel)s v%(version)s: %(done)s of %(needed)s") % {
                "channel": r.get("channel"), "version": r.get("version"),
                "done": human_bytes(int(r.get("done_bytes") or 0)),
                "needed": human_bytes(int(r.get("needed_bytes") or 0))}
    if state == "waiting-window":
        start = str((summary.get("window") or {}).get("next_start") or "")
        if start:
            return _("Waiting for the sync window (opens at %(time)s)") % {
                "time": start[11:16] or start}
        return _("Waiting for the sync window")
    if state == "waiting-quota":
        return _("Today's uplink quota is used up; sync goes on tomorrow")
    if state == "error":
        errors = [e for r in releases if r.get("state") == "error" for e in r.get("errors", [])]
        return _("Sync failed: %(error)s") % {"error": errors[-1] if errors else "?"}
    if state == "idle":
        return _("Up to date")
    if state == "stopped":
        return _("The sync service has stopped")
    return str(summary.get("message") or state or "")


def hub_text(township: Mapping[str, Any], _: Gettext) -> str:
    """Which device fetches over the uplink for the township (the sync hub)."""
    how = township.get("hub_how")
    if township.get("hub_is_self"):
        if how == "alone":
            return _("No neighbour answers: this device syncs over its own uplink")
        return _("This device is the hub: it fetches over its uplink for its neighbours")
    hub = township.get("hub")
    if not hub:
        return _("No hub: this device syncs over its own uplink")
    return _("Hub: %(name)s (%(id)s); this device takes releases from it and its "
             "neighbours over the LAN") % {"name": township.get("hub_name") or hub, "id": hub}


def sources_text(release: Mapping[str, Any], _: Gettext) -> str:
    """Where a release's bytes came from: LAN neighbours, the mirror (web seeds)."""
    return _("From the LAN %(lan)s, from the mirror %(mirror)s") % {
        "lan": human_bytes(int(release.get("bytes_lan") or 0)),
        "mirror": human_bytes(int(release.get("bytes_mirror") or 0))}


def sync_release_state(state: str, _: Gettext) -> str:
    """A release's sync state (downloading, waiting, activating, seeding, error)."""
    return {"downloading": _("downloading"), "waiting": _("waiting"),
            "activating": _("activating"), "seeding": _("seeding"),
            "error": _("failed")}.get(state, state)


def web_seed_state(state: str, _: Gettext) -> str:
    """A web seed's state (connected, idle, error)."""
    return {"connected": _("connected"), "idle": _("idle"), "held": _("held back for the LAN"),
            "error": _("failed")}.get(state, state)


# -- health (appliance/health.py's problems) ------------------------------------------

def health_problem(problem: Mapping[str, Any], _: Gettext) -> str:
    """One health problem (``{"code": …, …numbers}``) with what to do."""
    code = problem.get("code")
    if code == "no-data-dir":
        return _("The data folder %(path)s does not exist; check device.data_dir and the "
                 "data partition.") % {"path": problem.get("path")}
    if code == "disk-low":
        return _("Only %(mib)s MiB free on the data volume; remove old releases or use a "
                 "larger card.") % {"mib": problem.get("free_mib")}
    if code == "memory-low":
        return _("Only %(mib)s MiB of memory available.") % {"mib": problem.get("available_mib")}
    if code == "cpu-hot":
        return _("The CPU is at %(celsius)s °C; check the fan and ventilation.") % {
            "celsius": problem.get("celsius")}
    if code == "no-release":
        return _("No release is active; import one with `ketang import`.")
    return str(problem.get("message") or code or "")


# -- the setup file (provisioning's last-result.json, appliance/web/setup_result.py) ----

def setup_headline(result: Mapping[str, Any], _: Gettext) -> str:
    """What became of the last ketang-setup.toml, in a few words."""
    if not result.get("ok"):
        return _("Setup file not applied; the device is as it was")
    if result.get("applied"):
        return _("Setup file applied")
    return _("Setup file checked: nothing to change")


def setup_line(line: Any, _: Gettext) -> str:
    """Where in the setup file a problem is."""
    return _("line %(line)s") % {"line": line}


def setup_more(count: int, _: Gettext) -> str:
    """The problems or settings one line has no room for."""
    return _("and %(count)s more") % {"count": count}


def setup_see_result(_: Gettext) -> str:
    """Where the whole outcome is."""
    return _("see ketang-setup-result.txt on the boot partition")


# -- the classroom access point (provisioning.status.ap_status, on the dashboard) -------

def wifi_advice(status: Mapping[str, Any], _: Gettext) -> str:
    """What a technician should do about the access point ("" when all is well)."""
    if status.get("state") != "ENABLED":
        return _("The Wi-Fi access point is not running: read ketang-setup-result.txt on the "
                 "card, and `journalctl -u ketang-hostapd@wlan0` on the device (a missing "
                 "wifi.country keeps the radio off).")
    limit = status.get("client_limit")
    if not limit:
        return ""
    values = {"limit": limit, "firmware": status.get("firmware") or "?"}
    if isinstance(status.get("clients"), int) and status["clients"] >= limit:
        return _("The built-in Wi-Fi is full: it admits about %(limit)s devices at once "
                 "(firmware %(firmware)s). For a larger class add an access point: a USB "
                 "Wi-Fi adapter that serves many devices, named in wifi.interface.") % values
    return _("This board's built-in Wi-Fi admits about %(limit)s devices at once (firmware "
             "%(firmware)s); for a larger class add an access point: a USB Wi-Fi adapter "
             "that serves many devices, named in wifi.interface.") % values
