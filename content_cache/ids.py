"""The id rules every Ketang format shares (manifests, co-usage tables)."""

from __future__ import annotations

import re

ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
