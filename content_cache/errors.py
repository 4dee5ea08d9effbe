"""Errors a person can act on: each says what was wrong, where, and what to do."""


class KetangError(Exception):
    """Base class for every error Ketang reports to a person."""


class SignatureError(KetangError):
    """A release's signature is missing, malformed, wrong, or by an untrusted key."""


class ManifestError(KetangError):
    """A release manifest is malformed or breaks a rule of the format."""


class BlobError(KetangError):
    """A blob is missing, truncated, or its bytes do not match its sha256."""


class ReplayError(KetangError):
    """A release is older than (or the same as) the one the device already serves."""


class SourceError(KetangError):
    """A publisher's source tree is malformed."""


class SpaceError(KetangError):
    """The disk cannot hold what an import needs (keeping the configured reserve)."""


class BundleReadError(KetangError):
    """A bundle (a drive) could not be read: it was removed, unmounted or is damaged."""


class DataDiskError(KetangError):
    """The device's own data disk could not be written (full, read-only, failing)."""
