"""The technician's login: the admin password, the session key, wrong-password limits.

Both secrets live in ``<data_dir>/admin/`` (folder 0700, files 0600, written
atomically):

- ``password.hash``: the admin password hashed with scrypt (werkzeug.security, the
  hash Flask already ships: memory-hard, 32 MiB and ~0.1 s per check on a Pi 4; no
  new compiled dependency for the arm64 image). Set by ``ketang admin password``.
- ``session.key``: this device's random Flask session key, made on first use, so no two
  devices share one and a stolen image of another school's card signs nothing here.

Wrong passwords are limited in memory (:class:`LoginLimiter`), per client address and
for the whole device; a restart forgets them (docs/dashboard.md).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from content_cache.atomic import atomic_writer
from content_cache.errors import KetangError

ADMIN_DIR = "admin"
PASSWORD_FILE = "password.hash"
SESSION_KEY_FILE = "session.key"
DEMO_PASSWORD_FILE = "demo-password.txt"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024      # longer input is refused before hashing (no CPU burnt on it)
HASH_METHOD = "scrypt"          # werkzeug's scrypt: n=2**15, r=8, p=1, 16-byte salt
DEMO_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i to misread


def admin_dir(data_dir: Path) -> Path:
    """Where the admin secrets of a data folder live."""
    return Path(data_dir) / ADMIN_DIR


def _write_secret(path: Path, data: bytes) -> None:
    """Write ``path`` atomically with mode 0600 in a 0700 folder owned like the data folder.

    Run as root (``sudo ketang admin password``), the file is handed to the data folder's
    owner, so the service user can still read it.
    """
    # Never parents=True: a missing data folder (a data partition not mounted) is an
    # error, not something to create on the root filesystem.
    path.parent.mkdir(mode=0o700, exist_ok=True)
    owner = path.parent.parent.stat()
    with atomic_writer(path, mode=0o600) as f:
        f.write(data)
        if os.geteuid() == 0:
            os.fchown(f.fileno(), owner.st_uid, owner.st_gid)
    if os.geteuid() == 0:
        os.chown(path.parent, owner.st_uid, owner.st_gid)


def check_new_password(password: str) -> None:
    """Refuse a password that is too short or too long, saying what to do."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise KetangError(
            f"密码太短：至少 {MIN_PASSWORD_LENGTH} 个字符（现在 {len(password)} 个）。"
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters "
            f"(this one has {len(password)}); a few words make a good one.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise KetangError(f"密码太长。The password is too long: at most "
                          f"{MAX_PASSWORD_LENGTH} characters.")
    if password.strip() != password:
        raise KetangError("密码的开头或结尾有空格。The password starts or ends with a space "
                          "or newline; remove it (it is easy to mistype at the login).")


def set_password(data_dir: Path, password: str) -> Path:
    """Hash ``password`` and store it as this device's admin password; return the file."""
    check_new_password(password)
    if not Path(data_dir).is_dir():
        raise KetangError(f"数据目录 {data_dir} 不存在。The data folder {data_dir} does not "
                          "exist; check device.data_dir or pass --data-dir.")
    path = admin_dir(data_dir) / PASSWORD_FILE
    digest = generate_password_hash(password, method=HASH_METHOD)
    _write_secret(path, (digest + "\n").encode())
    return path


def stored_hash(data_dir: Path) -> str | None:
    """The stored password hash, or None when no admin password is set."""
    try:
        text = (admin_dir(data_dir) / PASSWORD_FILE).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def password_is_set(data_dir: Path) -> bool:
    """Whether an admin password exists for this data folder."""
    return stored_hash(data_dir) is not None


def verify_password(data_dir: Path, password: str) -> bool:
    """Whether ``password`` is the admin password (False when none is set)."""
    digest = stored_hash(data_dir)
    if digest is None or not password or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return check_password_hash(digest, password)
    except ValueError:   # a damaged hash file: nobody gets in until it is set again
        return False


def password_generation(data_dir: Path) -> str:
    """A short fingerprint of the stored hash: sessions carry it, so setting a new
    password logs every session out."""
    digest = stored_hash(data_dir) or ""
    return hashlib.sha256(digest.encode()).hexdigest()[:16]


_key_lock = threading.Lock()


def session_key(data_dir: Path) -> bytes:
    """This device's session key: read it, or make and store one on first use."""
    path = admin_dir(data_dir) / SESSION_KEY_FILE
    with _key_lock:
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
            if len(key) >= 32:
                return key
        except (FileNotFoundError, ValueError):
            pass
        key = secrets.token_bytes(32)
        _write_secret(path, key.hex().encode() + b"\n")
        return key


def new_demo_password() -> str:
    """An easy-to-type random password such as ``k7dq-m3xa-pw9e`` (59 bits)."""
    return "-".join("".join(secrets.choice(DEMO_ALPHABET) for _ in range(4))
                    for _ in range(3))


def demo_password(data_dir: Path) -> str | None:
    """The demo's password: the one kept in the demo data folder if it still matches the
    stored hash; a new one (stored and hashed) when no password is set; else None (a
    technician set their own with ``ketang admin password``)."""
    kept = admin_dir(data_dir) / DEMO_PASSWORD_FILE
    try:
        known = kept.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        known = ""
    if known and verify_password(data_dir, known):
        return known
    if password_is_set(data_dir):
        return None
    password = new_demo_password()
    set_password(data_dir, password)
    _write_secret(kept, (password + "\n").encode())
    return password


# --- wrong-password limits -------------------------------------------------------------

FREE_FAILURES = 3            # wrong passwords per address before any wait
FIRST_LOCK_SECONDS = 2.0     # then 2 s, 4 s, 8 s … per further failure
MAX_LOCK_SECONDS = 900.0     # at most 15 minutes
FORGET_AFTER = 3600.0        # an address with no failure for an hour starts afresh
GLOBAL_WINDOW = 300.0        # the whole device: at most GLOBAL_MAX failures
GLOBAL_MAX = 20              # in any GLOBAL_WINDOW seconds, then everyone waits
MAX_TRACKED = 4096           # addresses remembered (oldest forgotten first)


@dataclass
class _Client:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


def _lock_seconds(failures: int) -> float:
    """How long ``failures`` wrong passwords in a row lock an address out."""
    return min(MAX_LOCK_SECONDS, FIRST_LOCK_SECONDS * 2 ** (failures - FREE_FAILURES - 1))


@dataclass
class LoginLimiter:
    """Counts wrong passwords per client address and for the device, and says how long
    a client must wait before trying again. Thread-safe; ``clock`` is for tests."""

    clock: Callable[[], float] = time.monotonic
    _clients: dict[str, _Client] = field(default_factory=dict)
    _recent: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, address: str) -> float:
        """Seconds ``address`` must still wait (0: it may try now)."""
        with self._lock:
            return self._wait(address, self.clock())

    def _wait(self, address: str, now: float) -> float:
        self._expire(now)
        client = self._clients.get(address)
        own = client.locked_until - now if client else 0.0
        device = 0.0
        if len(self._recent) >= GLOBAL_MAX:
            device = self._recent[-GLOBAL_MAX] + GLOBAL_WINDOW - now
        return max(0.0, own, device)

    def attempt(self, address: str) -> float:
        """Count a login attempt from ``address`` *before* its password is checked.

        Returns the seconds it must still wait (then nothing is counted and the password
        must not be checked), or 0: the attempt is counted as a failure at once, so
        parallel attempts cannot all pass the check before any is counted; a right
        password then takes it back with :meth:`succeeded`.
        """
        with self._lock:
            wait = self._wait(address, self.clock())
            if wait > 0:
                return wait
            self._count_failure(address, self.clock())
            return 0.0

    def wrong(self, address: str) -> float:
        """The password of an :meth:`attempt` was wrong (it is counted already): any lock
        it earned runs from now, when the answer is known; return the wait."""
        now = self.clock()
        with self._lock:
            client = self._clients.get(address)
            if client is not None and client.failures > FREE_FAILURES:
                client.locked_until = max(client.locked_until,
                                          now + _lock_seconds(client.failures))
            return self._wait(address, now)

    def failed(self, address: str) -> float:
        """Record a wrong password from ``address``; return the wait it now faces."""
        with self._lock:
            self._count_failure(address, self.clock())
        return self.wait_seconds(address)

    def _count_failure(self, address: str, now: float) -> None:
        self._expire(now)
        client = self._clients.pop(address, None) or _Client()
        client.failures += 1
        client.last = now
        if client.failures > FREE_FAILURES:
            client.locked_until = now + _lock_seconds(client.failures)
        self._clients[address] = client     # re-inserted: dict order is age order
        while len(self._clients) > MAX_TRACKED:
            self._clients.pop(next(iter(self._clients)))
        self._recent.append(now)

    def succeeded(self, address: str) -> None:
        """Forget ``address``'s failures (the right password was given), including the
        attempt :meth:`attempt` counted for it in the device-wide window."""
        with self._lock:
            if self._clients.pop(address, None) is not None and self._recent:
                self._recent.pop()

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - GLOBAL_WINDOW:
            self._recent.popleft()
        stale = [a for a, c in self._clients.items()
                 if now - c.last > FORGET_AFTER and c.locked_until <= now]
        for a in stale:
            del self._clients[a]


# --- live sessions -----------------------------------------------------------------------

MAX_SESSIONS = 64            # live technician sessions kept (oldest ended first)


@dataclass
class Sessions:
    """The technician sessions this server has started and not ended, in memory.

    The signed cookie carries only a random session id; a request is logged in only
    while that id is here, so logging out, a new password (:meth:`end_all`), the
    session's age limit and a restart of ``ketang serve`` end it on the server: a copy
    of the cookie taken before is worth nothing after. Thread-safe; ``clock`` is for
    tests.
    """

    max_age: float = 8 * 3600.0
    clock: Callable[[], float] = field(default=lambda: time.time())
    _live: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        """A new session's id (43 URL-safe characters, 256 random bits)."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._live[sid] = self.clock()
            while len(self._live) > MAX_SESSIONS:
                self._live.pop(next(iter(self._live)))
        return sid

    def alive(self, sid: object) -> bool:
        """Whether ``sid`` was started here, not ended, and is younger than ``max_age``.

        Expired sessions are ended on the way."""
        with self._lock:
            self._expire()
            return isinstance(sid, str) and sid in self._live

    def _expire(self) -> None:
        now = self.clock()
        for sid in [s for s, t in self._live.items() if not 0 <= now - t < self.max_age]:
            del self._live[sid]

    def end(self, sid: object) -> None:
        """End one session (logout)."""
        with self._lock:
            if isinstance(sid, str):
                self._live.pop(sid, None)

    def end_all(self) -> None:
        """End every session (the password changed)."""
        with self._lock:
            self._live.clear()
