"""Usage: what the projector and tablets report, kept on the device and sent out.

Owns: event validation (:mod:`.events`), the usage database (:mod:`.db`, SQLite WAL),
xAPI statements (:mod:`.xapi`), the LRS upload and its schedule, the device's
usage key, the usage files written to a drive's outbox, and the district-side
ingest of those files (:mod:`.district_ingest`, which runs at the district, not on
a device).

Rules: must not import Flask or ``appliance.web``; words people see are left to
the views and the CLI (this package gives state codes and numbers).
"""
