"""The one place that starts and stops the device's services, in order.

``ketang serve`` and ``ketang demo`` build a :class:`Device` and call :meth:`Device.run`.
The order is fixed and readable here (Syncthing's ``lib/syncthing`` is the model):

1. settings (given) and the content library;
2. the sync service (one libtorrent session for the device's life), if ``sync.enabled``;
3. the usage uploader (to the LRS on its schedule), if usage and an LRS are set;
4. the web apps (lesson pages, and the lesson apps' origin) with the media fast path,
   and on a device set up as a classroom access point the dashboard's Wi-Fi probe
   (provisioning's own ``ap_status``, the one ``ketang status`` prints);
5. the HTTP servers; once both sockets listen, zeroconf discovery on the interfaces
   the server listens on.

Stopping runs in reverse: discovery, the HTTP servers, the uploader, then the sync
service (which saves every transfer's resume data).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from content_cache.library import Library

from .config import Settings

if TYPE_CHECKING:
    from flask import Flask

    from .discovery import Discovery
    from .sync.service import SyncService
    from .usage.schedule import UsageUploader


def register_outbox_providers(settings: Settings) -> None:
    """Tell the drive outbox which parts write files on a drive's trip back (usage)."""
    from .usage import outbox as usage_outbox

    usage_outbox.register()  # it writes nothing while usage is off


WIFI_STATUS_TTL_S = 5.0   # the dashboard polls every 2 s; the probe runs a subprocess


def wifi_probe(settings: Settings, ttl: float = WIFI_STATUS_TTL_S,
               ) -> Callable[[], dict[str, Any]] | None:
    """The access point's state for the dashboard (``provisioning.status.ap_status``,
    remembered for ``ttl`` seconds), or None when this device is not set up as a
    classroom access point."""
    from provisioning.status import ap_status, is_access_point

    if not is_access_point(settings.device.data_dir):
        return None
    lock = threading.Lock()
    last: list[Any] = [0.0, None]

    def probe() -> dict[str, Any]:
        with lock:
            if last[1] is None or time.monotonic() - last[0] > ttl:
                last[:] = [time.monotonic(), ap_status()]
            return dict(last[1])
    return probe


class Device:
    """The device's services over one data folder, started by :meth:`run`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.library = Library(settings.device.data_dir)
        self.sync: SyncService | None = None
        self.uploader: UsageUploader | None = None
        self.discovery: Discovery | None = None
        self.app: Flask | None = None

    def start_services(self) -> None:
        """Steps 2–3: the sync service and the usage uploader."""
        s = self.settings
        register_outbox_providers(s)
        if s.sync.enabled:
            from .sync.service import SyncService

            self.sync = SyncService(s, self.library)
            self.sync.start()
        from .usage.schedule import start_uploader

        self.uploader = start_uploader(s)

    def build_apps(self) -> tuple[Flask, Flask]:
        """Step 4: the lesson pages' app (with the media fast path) and the apps' origin."""
        from .web.app import create_app
        from .web.apps import create_apps_app
        from .web.context import state
        from .web.media_fast import install as install_fast_media

        app = create_app(self.settings, self.library)
        state(app).sync = self.sync
        state(app).wifi_status = wifi_probe(self.settings)
        self.app = app
        return install_fast_media(app), create_apps_app(self.library)

    def start_discovery(self, port: int, apps_port: int | None) -> None:
        """Step 5's tail: announce and browse once the sockets listen."""
        s = self.settings
        if not s.zeroconf.enabled:
            return
        from .discovery import Discovery
        from .identity import device_id
        from .web.context import state

        disco = Discovery(name=s.device.name, dev_id=device_id(s.device.id),
                          library=self.library, port=port, apps_port=apps_port,
                          interfaces=s.zeroconf.interfaces, host=s.server.host,
                          extra_txt={"bt": str(self.sync.listen_port)} if self.sync else None,
                          txt_source=self.sync.txt_fields if self.sync else None)
        if self.sync is not None:
            # A neighbour that starts fetching is heard of at once, both ways.
            disco.on_change = self.sync.neighbour_changed
            self.sync.on_announce = disco.refresh_now
        disco.start()
        self.discovery = disco
        if self.app is not None:
            state(self.app).discovery = disco
        if self.sync is not None:
            self.sync.peer_source = disco.peers

    def stop(self) -> None:
        """Stop everything started, in reverse order. Safe to call twice."""
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        if self.uploader is not None:
            self.uploader.close()
            self.uploader = None
        if self.sync is not None:
            self.sync.close()  # saves every transfer's resume data
            self.sync = None

    def run(self, announce: Callable[[str], None] = print) -> None:
        """Start every service, serve until SIGTERM or Ctrl-C, then stop them all."""
        from .server import serve

        s = self.settings
        try:
            self.start_services()
            app, apps_app = self.build_apps()

            def on_listening(port: int, apps_port: int | None) -> Callable[[], None]:
                self.start_discovery(port, apps_port)
                return self._stop_discovery

            serve(app, s.server.host, s.server.port, s.server.threads, announce=announce,
                  apps_app=apps_app, apps_port=s.server.apps_port, on_listening=on_listening,
                  connection_limit=s.server.connection_limit,
                  connections_per_client=s.server.connections_per_client,
                  request_timeout=s.server.request_timeout,
                  channel_timeout=s.server.channel_timeout, send_buffer=s.server.send_buffer)
        finally:
            self.stop()

    def _stop_discovery(self) -> None:
        # zeroconf says goodbye while the server still listens, as before
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
