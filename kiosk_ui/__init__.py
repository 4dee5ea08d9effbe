"""What people see: templates and static assets for the projector, tablet and technician views.

``bp`` carries the templates and serves the static files under ``/ui/``. Views that
fill these templates live in ``appliance``; nothing here reads a database.
"""

from flask import Blueprint

bp = Blueprint(
    "kiosk_ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui",
)
