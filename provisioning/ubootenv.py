"""The Raspberry Pi 4's boot counter: U-Boot's environment, as the health gate sees it.

On the Pi, U-Boot's ``boot.scr`` (image-build/rauc/boot-arm64.cmd) takes one try from
the slot it boots and saves its environment to ``uboot.env`` on the boot partition at
every boot; RAUC's ``uboot`` backend reads and writes it with ``fw_printenv`` /
``fw_setenv`` (libubootenv), which find it through ``/etc/fw_env.config``. This module
only answers the gate's question (docs/updates.md, "The health gate"): is there a
counter at all on this boot (a kernel started some other way, e.g. directly by QEMU, has
none: nothing to mark good, and no try counted). Writing it is RAUC's.
"""

from __future__ import annotations

from pathlib import Path

FW_ENV_CONFIG = Path("/etc/fw_env.config")


def env_file(config: Path = FW_ENV_CONFIG) -> Path | None:
    """The file or device holding U-Boot's environment: the first entry of
    ``fw_env.config`` (None when there is no such file or entry)."""
    try:
        lines = config.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if fields:
            return Path(fields[0])
    return None


def missing_counter(config: Path = FW_ENV_CONFIG) -> str:
    """'' when U-Boot's environment exists; else one line saying why there is no boot
    counter to mark good on this boot."""
    env = env_file(config)
    if env is None:
        return (f"没有启动计数器。No boot counter: {config} names no U-Boot environment "
                "(this image was built without it); nothing was marked good.")
    if not env.exists():
        return (f"没有启动计数器。No boot counter: U-Boot's environment {env} does not exist, "
                "so this boot did not come through the image's U-Boot script (it saves the "
                "environment at every boot; a kernel started directly, as QEMU's -kernel "
                "does, has none); nothing was marked good.")
    return ""

