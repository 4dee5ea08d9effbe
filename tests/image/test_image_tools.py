"""The image tests need QEMU, OVMF, mmdebstrap and friends: without them they skip saying
what is missing, and with CI=true (make test in CI) they fail instead. Fast: no image."""

from __future__ import annotations

from pathlib import Path

import pytest

from .vm import require_image_tools


@pytest.fixture
def empty_path(monkeypatch, tmp_path: Path) -> None:
    """A PATH with nothing on it: every build and boot tool is missing."""
    monkeypatch.setenv("PATH", str(tmp_path))


def test_in_ci_missing_qemu_and_mmdebstrap_fail_the_image_tests(monkeypatch, empty_path):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_image_tools()
    for tool in ("mmdebstrap", "qemu-system-x86_64", "qemu-img", "mksquashfs"):
        assert tool in str(failed.value)
    assert "make image-deps" in str(failed.value)


def test_outside_ci_missing_tools_skip_saying_what(monkeypatch, empty_path):
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="image tools missing: mmdebstrap"):
        require_image_tools()
