"""/api/external/emails: the email routes for scripts and integrations holding an API key
(`api:read` to read, `api:write` to change), at the paths such clients already call.

The handlers are those of webapp.api.emails, so both paths behave identically and are
documented alike; only the URL differs.
"""

from __future__ import annotations

from flask import Blueprint

from webapp.api import emails

bp = Blueprint("external", __name__)

_ROUTES = (
    ("/api/external/emails", "list", ["GET"], emails.list_emails),
    ("/api/external/emails/search", "search", ["GET"], emails.search_emails),
    ("/api/external/emails/sent", "sent", ["GET"], emails.sent_emails),
    ("/api/external/emails/<int:email_id>", "get", ["GET"], emails.get_email),
    ("/api/external/emails/<int:email_id>", "update", ["PATCH"], emails.update_email),
    ("/api/external/emails/<int:email_id>", "delete", ["DELETE"], emails.delete_email),
)

for rule, name, methods, view in _ROUTES:
    bp.add_url_rule(rule, endpoint=name, view_func=view, methods=methods)
