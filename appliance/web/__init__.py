"""The device's web face: the Flask app factory and every blueprint and view.

Owns: the app factory (:mod:`.app`), the lesson pages and projector, follow mode,
the JSON API, the technician dashboard, media and its fast path, the lesson apps'
origin, the captive portal, PDF page images and i18n.

Rules: this is the only package of Ketang that imports Flask. It renders through
``kiosk_ui``'s templates and never builds HTML itself; it reads the services
(sync, usage, drives) only through their public names, and the catalog only
through ``content_cache``.
"""
