"""Sync: fetching releases over BitTorrent, from web seeds and LAN peers.

Owns: the sync service (one libtorrent session for the device's life,
:mod:`.service`), feeds (:mod:`.feed`), transfer windows and the daily quota
(:mod:`.schedule`), and the status it reports (:mod:`.status`).

Rules: must not import Flask, ``appliance.web`` or ``appliance.drives``; the
transfer mechanics themselves live in ``content_cache.transfer``.
"""
