"""A stand-in for systemd, hostapd's control socket and the kernel's Wi-Fi view (iw), which
cannot run in this container: it records every command provisioning.runtime runs and
answers ``hostapd_cli status`` and ``iw`` with the state a test chooses (what a real
radio would report)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable


class Systemd:
    """Records commands. hostapd runs on ``running`` (wlan0 unless ``ap`` is None: no
    hostapd, no radio) and reports ``ap``; restarting it on an interface moves it there,
    and ``after_restart(n)`` may change the state it reports after the n-th restart."""

    def __init__(self, ap: str | None = "ENABLED",
                 after_restart: Callable[[int], str | None] | None = None,
                 fail: tuple[str, ...] = ()) -> None:
        self.ap = ap
        self.after_restart = after_restart
        self.fail = fail
        self.interfaces = ("wlan0",) if ap is not None else ()
        self.running: str | None = "wlan0" if ap is not None else None
        self.calls: list[list[str]] = []
        self.hostapd_restarts = 0

    def __call__(self, argv: list[str], **_: object) -> subprocess.CompletedProcess:
        if argv[0] == "iw":
            return self._iw(argv)
        if argv[0] == "hostapd_cli":
            interface = argv[argv.index("-i") + 1]
            if self.running != interface:
                return subprocess.CompletedProcess(argv, 255, "", "Failed to connect to "
                                                   "hostapd - wpa_ctrl_open: No such file")
            return subprocess.CompletedProcess(argv, 0, f"state={self.ap}\nssid[0]=x\n", "")
        self.calls.append(list(argv))
        if argv[0] == "systemctl" and argv[2].startswith("ketang-hostapd@"):
            interface = argv[2].removeprefix("ketang-hostapd@").removesuffix(".service")
            if argv[1] == "stop" and self.running == interface:
                self.running = None
            elif argv[1] == "restart" and interface in self.interfaces:
                self.running = interface
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
        interface = argv[2]
        if interface not in self.interfaces:
            return subprocess.CompletedProcess(argv, 237, "", "command failed: No such "
                                               "device (-19)\n")
        if argv[-1] == "dump":
            return subprocess.CompletedProcess(argv, 0, "", "")
        up = self.running == interface and self.ap == "ENABLED"
        kind = "type AP\n\tssid x" if up else "type managed"
        return subprocess.CompletedProcess(argv, 0, f"Interface {interface}\n\tifindex 3\n"
                                           f"\t{kind}\n\twiphy 0\n", "")
