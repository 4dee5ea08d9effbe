"""The Flask app factory."""

from __future__ import annotations

from typing import cast

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from appliance.config import Settings
from content_cache.library import Library
from kiosk_ui import bp as kiosk_ui_bp

from . import context


def create_app(settings: Settings | None = None, library: Library | None = None) -> Flask:
    """Build the device's web app over ``library`` (by default, the configured data folder)."""
    settings = settings or Settings()
    app = Flask(__name__)
    context.install(app, settings, library or Library(settings.device.data_dir))
    cast(DefaultJSONProvider, app.json).ensure_ascii = False

    from . import api, captive, i18n, media, pages, projector, sync_api

    i18n.init_app(app)

    app.register_blueprint(kiosk_ui_bp)
    from . import static_assets  # /ui/… cached by a content hash in the URL
    static_assets.install(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(media.bp)
    from . import pdf_pages  # the tablet's PDF page images (docs/tablet.md)
    app.register_blueprint(pdf_pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(projector.bp)
    app.register_blueprint(sync_api.bp)
    app.register_blueprint(sync_api.software_bp)
    api.install_error_handlers(app)
    from . import admin
    admin.install(app)
    from .admin_charts import bp as charts_bp  # the dashboard's usage charts
    app.register_blueprint(charts_bp)
    from .questionnaires import bp as questionnaires_bp  # answered on the dashboard
    app.register_blueprint(questionnaires_bp)
    from .usage_api import bp as usage_bp  # usage events (docs/usage.md)
    app.register_blueprint(usage_bp)
    from .classes_api import bp as classes_bp  # classes, progress, live answers
    app.register_blueprint(classes_bp)
    from .admin_classes import bp as admin_classes_bp
    app.register_blueprint(admin_classes_bp)
    from .projector_classes import bp as projector_classes_bp  # the class screens
    app.register_blueprint(projector_classes_bp)
    from .projector_questionnaires import bp as projector_questionnaires_bp  # keys only
    app.register_blueprint(projector_questionnaires_bp)
    if settings.captive.enabled:
        captive.install(app, settings.captive.host_names)
    _install_not_found(app)
    return app


def _install_not_found(app: Flask) -> None:
    """An address no route knows gets the 404 of the part it looks like: JSON under
    ``/api/``, the projector's page under ``/projector``, else the tablet's (styled,
    translated, with a way back)."""
    from flask import request
    from werkzeug.exceptions import NotFound

    from . import api, pages, projector

    @app.errorhandler(NotFound)
    def not_found(e: NotFound):  # type: ignore[no-untyped-def]
        path = request.path
        if path == "/api" or path.startswith("/api/"):
            return api.json_error(e)
        if path == "/projector" or path.startswith("/projector/"):
            return projector.not_found(e)
        return pages.not_found(e)
