"""Attachments, .eml and mbox downloads: exact bytes, safe headers, only the caller's mail."""

from __future__ import annotations

import base64
import datetime as dt
import io

from relate import mailfile
from relate.store import messages
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message, with_attachment

# The fixtures these tests use.
alice, api, app, bob = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob

PDF = b"%PDF-1.4\n%\xc7\xec"


def _attachment_id(api: Api, user: User, email_id: int) -> str:
    return str(api.get(f"/api/emails/{email_id}", user).json["attachments"][0]["id"])


def test_attachment_download(api: Api, alice: User) -> None:
    raw = with_attachment(data=base64.b64encode(PDF).decode(), filename="Q3 report (final).pdf")
    _, entry = messages.append(alice.id, alice.inbox(), raw)
    part = _attachment_id(api, alice, entry.id)
    r = api.get(f"/api/emails/{entry.id}/attachments/{part}", alice)
    assert r.status == 200 and r.data == PDF
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Q3%20report%20%28final%29.pdf" in disposition
    assert "sandbox" in r.headers["Content-Security-Policy"]


def test_active_content_is_served_as_octet_stream(api: Api, alice: User) -> None:
    for content_type, name in (("text/html", "page.html"), ("image/svg+xml", "x.svg"),
                               ("application/javascript", "a.js")):
        payload = base64.b64encode(b"<script>alert(1)</script>").decode()
        raw = with_attachment(filename=name, content_type=content_type, data=payload)
        _, entry = messages.append(alice.id, alice.inbox(), raw)
        r = api.get(f"/api/emails/{entry.id}/attachments/{_attachment_id(api, alice, entry.id)}", alice)
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/octet-stream", content_type
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Disposition"].startswith("attachment;")


def test_attachment_not_found_cases(api: Api, alice: User, bob: User) -> None:
    _, entry = messages.append(alice.id, alice.inbox(), with_attachment())
    part = _attachment_id(api, alice, entry.id)
    assert api.get(f"/api/emails/{entry.id}/attachments/1", alice).status == 404  # the body, not an attachment
    assert api.get(f"/api/emails/{entry.id}/attachments/9.9", alice).status == 404
    assert api.get(f"/api/emails/{entry.id}/attachments/..%2F1", alice).status == 404
    assert api.get(f"/api/emails/{entry.id}/attachments/{part}", bob).status == 404


def test_eml_is_the_stored_message(api: Api, alice: User, bob: User) -> None:
    raw = make_message("Säve me / please", body="Exact bytes.\r\n")
    _, entry = messages.append(alice.id, alice.inbox(), raw)
    r = api.get(f"/api/emails/{entry.id}/export/eml", alice)
    assert r.status == 200 and r.data == raw
    assert r.headers["Content-Type"] == "message/rfc822"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="S_ve me _ please.eml"')
    assert api.get(f"/api/emails/{entry.id}/export/eml", bob).status == 404


def test_mbox_export_round_trips(api: Api, alice: User, bob: User) -> None:
    box = alice.inbox()
    when = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
    raws = [make_message(f"M{i}", body=f"From here on\r\nline {i}\r\n") for i in range(5)]
    for raw in raws:
        messages.append(alice.id, box, raw, internal_date=when, envelope_from="carol@relate.test")
    messages.append(alice.id, alice.mailbox("Archive"), make_message("Elsewhere"))
    messages.append(bob.id, bob.inbox(), make_message("Not alice's"))
    r = api.get("/api/emails/export/mbox", alice, query={"mailbox": "INBOX"})
    assert r.status == 200 and r.headers["Content-Type"] == "application/mbox"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="INBOX-')
    items = list(mailfile.read_mbox(io.BytesIO(r.data)))
    assert [i.raw for i in items] == raws
    assert {i.sender for i in items} == {"carol@relate.test"} and {i.date for i in items} == {when}
    everything = list(mailfile.read_mbox(io.BytesIO(api.get("/api/emails/export/mbox", alice).data)))
    assert len(everything) == 6
    later = api.get("/api/emails/export/mbox", alice, query={"fromDate": "2026-06-01T00:00:00Z"}).data
    assert len(list(mailfile.read_mbox(io.BytesIO(later)))) == 1
    assert api.get("/api/emails/export/mbox", alice, query={"mailboxId": bob.inbox()}).status == 404
