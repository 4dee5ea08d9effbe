"""A stand-in for systemd and hostapd's control socket, which cannot run in this container:
it records every command provisioning.runtime runs and answers ``hostapd_cli status``
with the state a test chooses (what a real radio would report)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable


class Systemd:
    """Records commands; ``hostapd_cli status`` reports ``ap`` (a state, or None: no
    hostapd running), which ``after_restart`` may change once hostapd is restarted."""

    def __init__(self, ap: str | None = "ENABLED",
                 after_restart: Callable[[int], str | None] | None = None,
                 fail: tuple[str, ...] = ()) -> None:
        self.ap = ap
        self.after_restart = after_restart
        self.fail = fail
        self.calls: list[list[str]] = []
        self.hostapd_restarts = 0

    def __call__(self, argv: list[str], **_: object) -> subprocess.CompletedProcess:
        if argv[0] == "iw":
            return self._iw(argv)
        if argv[0] == "hostapd_cli":
            if self.ap is None:
                return subprocess.CompletedProcess(argv, 255, "", "Failed to connect to "
                                                   "hostapd - wpa_ctrl_open: No such file")
            return subprocess.CompletedProcess(argv, 0, f"state={self.ap}\nssid[0]=x\n", "")
        self.calls.append(list(argv))
        if argv[:2] == ["systemctl", "restart"] and argv[2].startswith("ketang-hostapd@"):
            self.hostapd_restarts += 1
            if self.after_restart is not None:
                self.ap = self.after_restart(self.hostapd_restarts)
        if any(word in argv for word in self.fail):
            return subprocess.CompletedProcess(argv, 1, "", "Job failed. See journalctl.")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def _iw(self, argv: list[str]) -> subprocess.CompletedProcess:
        """iw's own output format (iw 5.19: interface.c, station.c, reg.c)."""
        if argv[1:] == ["reg", "get"]:
            return subprocess.CompletedProcess(argv, 0, "global\ncountry CN: DFS-FCC\n", "")
        if self.ap is None:
            return subprocess.CompletedProcess(argv, 237, "", "command failed: No such "
                                               "device (-19)\n")
        if argv[-1] == "dump":
            return subprocess.CompletedProcess(argv, 0, "", "")
        kind = "type AP\n\tssid x" if self.ap == "ENABLED" else "type managed"
        return subprocess.CompletedProcess(argv, 0, f"Interface {argv[2]}\n\tifindex 3\n"
                                           f"\t{kind}\n\twiphy 0\n", "")
