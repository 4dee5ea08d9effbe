"""Provisioning: one small file turns a flashed image into one school's device.

This package owns ``ketang-setup.toml`` (the file a technician edits on the FAT boot
partition, or brings on a drive as ``KETANG/setup/ketang-setup.toml``): its model and
validation (:mod:`provisioning.schema`, with line numbers through tomlkit), and the
first-boot apply (:mod:`provisioning.apply`) that renders the classroom network
(hostapd for the Wi-Fi access point, dnsmasq for DHCP and the catch-all DNS of the
captive portal), the device's own ``ketang.toml``, its hostname and time zone, its
identity (Ed25519 key and id on the data partition), the trusted publisher and update
keys and the admin password. Security settings are taken only on first boot or after a
factory reset (:mod:`provisioning.state`). It also reads the access point's state for
``ketang status`` and the dashboard (:mod:`provisioning.status`).

Rules: nothing here imports Flask, and the running server's hot paths never import this
package (the server reads the files provisioning wrote, nothing more). See
docs/provisioning.md.
"""
