"""Build the Ketang disk image and boot it in QEMU (TCG) for tests.

The guest can reach nothing outside: user-mode networking with ``restrict=on``, and one
host forward on 127.0.0.1 to its port 80. Commands run in the guest through a virtio
serial port named ``ketang.selftest`` (the image starts a shell there only in a virtual
machine that has that port; see image-build/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..support.needs import require

REPO = Path(__file__).resolve().parents[2]
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BUILD_TOOLS = ("mmdebstrap", "mksquashfs", "mcopy", "sfdisk", "bmaptool", "zstd",
               "qemu-system-x86_64", "qemu-img")


def version() -> str:
    """Ketang's version, as setup.cfg says (the image's file names carry it)."""
    for line in (REPO / "setup.cfg").read_text().splitlines():
        if line.replace(" ", "").startswith("version="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no version in setup.cfg")


def missing_image_tools() -> str | None:
    """What this machine lacks to build and boot the amd64 image, or None."""
    missing = [t for t in BUILD_TOOLS if shutil.which(t) is None]
    missing += [str(p) for p in (OVMF_CODE, OVMF_VARS) if not p.exists()]
    if missing:
        return (f"image tools missing: {', '.join(missing)} "
                "(make image-deps installs them: tests/image-packages.txt)")
    if os.geteuid() != 0:
        return "building the image needs root (mmdebstrap, chroot): run make test as root"
    return None


def require_image_tools() -> None:
    """Skip (or, with CI=true, fail) when the image cannot be built or booted here."""
    require(missing_image_tools())


@dataclass(frozen=True)
class BuiltImage:
    """The files of one built image (in the build cache, shared: never write to them)."""

    cache: Path
    dist: Path
    name: str

    @property
    def raw(self) -> Path:
        return self.cache / f"{self.name}.img"

    def dist_file(self, suffix: str) -> Path:
        return self.dist / f"{self.name}{suffix}"


def build_image(arch: str, dist: Path, log: Path) -> BuiltImage:
    """Run ``image-build/build.sh`` (which reuses the cached image when inputs are unchanged)."""
    env = dict(os.environ, KETANG_IMAGE_DIST=str(dist))
    with log.open("w") as out:
        proc = subprocess.run(["bash", str(REPO / "image-build" / "build.sh"), arch], cwd=REPO,
                              env=env, stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"make image failed (exit {proc.returncode}); log {log}:\n{tail}")
    name = f"ketang-{version()}-{arch}"
    cache = Path((dist / f"{name}.cache-path").read_text().strip())
    return BuiltImage(cache=cache, dist=dist, name=name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GuestVM:
    """One QEMU guest booted from a copy-on-write overlay of a built image."""

    def __init__(self, image: Path, workdir: Path, disk_gib: int = 8, memory_mib: int = 2048,
                 direct_boot: tuple[Path, Path, str] | None = None,
                 extra_drives: tuple[Path, ...] = ()):
        """Boot ``image`` as amd64 (OVMF, the image's own boot loader) or, given
        ``direct_boot`` (kernel, initramfs, command line), as arm64 on ``-M virt``;
        ``extra_drives``: further disks a test attaches (its own files)."""
        self.workdir = workdir
        self.port = free_port()
        self.serial_log = workdir / "serial.log"
        self.socket_path = workdir / "selftest.sock"
        self.image = image
        self.disk = disk = workdir / "disk.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "raw",
                        str(disk), f"{disk_gib}G"], check=True)
        if direct_boot is None:
            vars_fd = workdir / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_fd)
            machine = ["qemu-system-x86_64", "-machine", "q35",
                       "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                       "-drive", f"if=pflash,format=raw,file={vars_fd}", "-vga", "none",
                       # OVMF's debug port (its log, when built to write one); x86 only.
                       "-debugcon", f"file:{workdir / 'debugcon.log'}",
                       "-global", "isa-debugcon.iobase=0x402"]
        else:
            kernel, initrd, append = direct_boot
            machine = ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a72",
                       "-kernel", str(kernel), "-initrd", str(initrd), "-append", append]
        self.cmd = [
            *machine, "-accel", "tcg,thread=multi", "-smp", "2", "-m", str(memory_mib),
            "-drive", f"if=virtio,format=qcow2,file={disk}",
            # Further disks (/dev/vdb, /dev/vdc, ...): drives a test attaches (its own files).
            *[a for d in extra_drives
              for a in ("-drive", f"if=virtio,format=raw,file={d}")],
            "-nic", f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:80",
            "-display", "none",
            # QEMU's monitor on a socket of the test's own (diagnosis: where the CPU is).
            "-monitor", f"unix:{workdir / 'monitor.sock'},server=on,wait=off",
            "-serial", f"file:{self.serial_log}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=selftest,path={self.socket_path},server=on,wait=off",
            "-device", "virtserialport,chardev=selftest,name=ketang.selftest",
        ]
        self._sock: socket.socket | None = None
        self._launch()

    def _launch(self) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=(self.workdir / "qemu.log").open("a"),
                                     stderr=subprocess.STDOUT)

    def power_cut(self) -> None:
        """SIGKILL QEMU: the guest loses power at once (nothing flushed, nothing shut down)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.proc.kill()
        self.proc.wait()

    def power_on(self) -> None:
        """Start QEMU again on the same disk and firmware variables (after power_cut)."""
        assert self.proc.poll() is not None, "the guest is still running"
        self._launch()

    def monitor(self, command: str, timeout: float = 30) -> str:
        """One command on QEMU's human monitor (``info registers``...); returns its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.workdir / "monitor.sock"))
            buf = b""
            while not buf.endswith(b"(qemu) "):
                buf += s.recv(65536)
            s.sendall(command.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"(qemu) "):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return buf.decode(errors="replace").replace("\r", "")

    def copy_partition(self, label: str, dest: Path) -> Path:
        """Copy partition ``label`` of the guest's disk (QEMU stopped) to ``dest``, raw."""
        assert self.proc.poll() is not None, "stop the guest first"
        table = json.loads(subprocess.run(["sfdisk", "-J", str(self.image)], check=True,
                                          capture_output=True, text=True).stdout)
        part = next(p for p in table["partitiontable"]["partitions"] if p.get("name") == label)
        # (qemu-img dd cannot skip into a qcow2 with a backing file: a raw node with an
        # offset over the qcow2 one can.)
        opts = (f"driver=raw,offset={part['start'] * 512},size={part['size'] * 512},"
                f"file.driver=qcow2,file.file.filename={self.disk}")
        subprocess.run(["qemu-img", "convert", "--image-opts", opts, "-O", "raw", str(dest)],
                       check=True, capture_output=True)
        return dest

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serial_tail(self, lines: int = 40) -> str:
        """The end of the guest's serial console, for failure messages."""
        if not self.serial_log.exists():
            return "(no serial output)"
        return "\n".join(self.serial_log.read_text(errors="replace").splitlines()[-lines:])

    def qemu_said(self) -> str:
        """What QEMU itself printed (a refused option, a missing firmware file)."""
        log = self.workdir / "qemu.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def wait_for_page(self, path: str = "/", timeout: float = 1200) -> float:
        """Wait until ``path`` answers 200; return seconds since QEMU started."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.proc.returncode}):\n{self.qemu_said()}"
                                     f"{self.serial_tail()}")
            try:
                with urllib.request.urlopen(self.url(path), timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        raise AssertionError(f"{path} not served within {timeout:.0f} s; serial console:\n"
                             f"{self.serial_tail()}")

    def shell(self, command: str, timeout: float = 180) -> str:
        """Run ``command`` in the guest (as root, /bin/sh); return its output. Fails on non-zero."""
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX)
            self._sock.connect(str(self.socket_path))
        mark = uuid.uuid4().hex
        self._sock.settimeout(timeout)
        self._sock.sendall(f"{command}\necho {mark} $?\n".encode())
        buf = b""
        while (end := buf.find(mark.encode())) < 0 or b"\n" not in buf[end:]:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise AssertionError("the guest's test shell closed its port")
            buf += chunk
        out, status = buf[:end].decode(errors="replace"), buf[end:].split()[1].decode()
        if status != "0":
            raise AssertionError(f"guest command failed ({status}): {command}\n{out}")
        return out

    def partition_writes(self, sync: bool = False) -> dict[str, int]:
        """Sectors written so far to the guest's disk (``vda``) and to each partition, by
        ``/sys/block/vda/**/stat`` (field 7), named ``vda`` or ``vda1 (ketang-boot)``."""
        out = self.shell(("sync; sleep 5; " if sync else "")
                         + "for d in /sys/block/vda /sys/block/vda/vda*; do n=${d##*/}; "
                         "l=$(cat /sys/class/block/$n/uevent | sed -n 's/^PARTNAME=//p'); "
                         "echo \"$n${l:+ ($l)}|$(cat $d/stat)\"; done")
        return {line.split("|")[0]: int(line.split("|")[1].split()[6])
                for line in out.splitlines() if "|" in line}

    def idle_writes(self, seconds: float = 60) -> dict[str, int]:
        """Bytes written to the disk and each partition (only those written) during
        ``seconds`` of doing nothing, once what is in the page cache is on disk (sync)."""
        before = self.partition_writes(sync=True)
        time.sleep(seconds)
        after = self.partition_writes()
        return {name: (after[name] - before.get(name, 0)) * 512 for name in after
                if after[name] != before.get(name, 0)}

    def idle_writes_report(self, written: dict[str, int], boot_dir: str) -> str:
        """What a failed idle check says: which partitions were written, how the boot
        partition (``boot_dir``) is mounted, what mounted or unmounted it lately, and the
        files changed on the data partition."""
        unit = boot_dir.strip("/").replace("/", "-")
        journal = self.shell("journalctl -b --no-pager -o short-monotonic --since '-80 seconds' "
                             f"-u {unit}.automount -u {unit}.mount 2>&1 | tail -30 || true")
        return (f"bytes written in 60 idle seconds: {written}\n"
                f"boot partition now: {self.shell(f'findmnt -n {boot_dir} || true').strip()}\n"
                f"its mounts and unmounts in the last 80 s (systemd logs who triggered the "
                f"automount):\n{journal}\n"
                "files changed on the data partition:\n"
                + self.shell("find /var/lib/ketang -xdev -newermt '-70 seconds' 2>&1 | head -20"))

    def failed_units(self) -> str:
        """'' when ``systemctl --failed`` lists nothing; else the list and, for each failed
        unit, its ``systemctl status`` and this boot's journal (what a failure message
        needs to explain itself)."""
        failed = self.shell("systemctl --failed --no-legend --plain").strip()
        if not failed:
            return ""
        report = [f"failed units:\n{failed}"]
        for unit in (line.split()[0] for line in failed.splitlines() if line.split()):
            report.append(f"--- systemctl status {unit}\n" + self.shell(
                f"systemctl status --no-pager -l -n 0 {unit} 2>&1 || true"))
            report.append(f"--- journalctl -u {unit} -b\n"
                          + self.shell(f"journalctl -u {unit} -b --no-pager -o short-monotonic "
                                       "2>&1 | tail -60 || true"))
        return "\n".join(report)

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
