"""Drives: USB sticks plugged into the device.

Owns: mounting (:mod:`.mount`, read-only and Ketang's own mount root), the udev
watcher that imports a drive's bundle (:mod:`.watcher`), the drive status file
the dashboard and banners read (:mod:`.status`), and the outbox written on the
drive for the trip back (:mod:`.outbox`).

Rules: must not import Flask or ``appliance.web``; it may hand a release to the
sync service through ``appliance.sync.feed`` and takes usage files through the
outbox's provider registry, never by importing ``appliance.usage``. A drive's
``KETANG/setup/ketang-setup.toml`` and ``KETANG/updates/`` are handed to ``provisioning``
(its runtime apply, given to the watcher by ``ketang drives watch --provision-root``,
and its update installer).
"""
