"""/api/emails: listing, paging, sorting, filters, search, detail, changes, deletion, threads, Sent."""

from __future__ import annotations

import datetime as dt

from relate import store
from relate.store import mailboxes, messages
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, deliver, make_message, with_attachment

# The fixtures these tests use.
alice, api, app, bob, carol = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob, fixtures.carol


def _fill(user: User, count: int) -> list[int]:
    """`count` messages in the user's INBOX, one minute apart, oldest first; their ids."""
    box = user.inbox()
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    ids = []
    for i in range(count):
        raw = make_message(f"Message {i:02d}", body=f"Body number {i}.\r\n")
        _, entry = messages.append(user.id, box, raw, [], start + dt.timedelta(minutes=i))
        ids.append(entry.id)
    return ids


def test_list_defaults_to_inbox_newest_first_with_counts(api: Api, alice: User) -> None:
    ids = _fill(alice, 3)
    messages.store_flags(alice.id, alice.inbox(), [1], "add", ["\\Seen"])
    r = api.get("/api/emails", alice)
    assert r.status == 200, r.json
    body = r.json
    assert [i["id"] for i in body["items"]] == ids[::-1]
    assert body["totalCount"] == 3 and body["unreadCount"] == 2
    assert body["page"] == 1 and body["pageSize"] == 50
    first = body["items"][-1]
    assert first["subject"] == "Message 00"
    assert first["fromAddress"] == "carol@relate.test"
    assert first["fromDisplayName"] == "Carol Sender"
    assert first["isRead"] is True and first["mailbox"] == "INBOX"
    assert first["receivedAt"].endswith("Z") and first["preview"] == "Body number 0."


def test_paging_and_sorting(api: Api, alice: User) -> None:
    ids = _fill(alice, 7)
    r = api.get("/api/emails", alice, query={"page": 2, "pageSize": 3})
    assert [i["id"] for i in r.json["items"]] == ids[::-1][3:6]
    assert r.json["totalCount"] == 7 and r.json["page"] == 2 and r.json["pageSize"] == 3
    r = api.get("/api/emails", alice, query={"page": 3, "pageSize": 3, "sort": "receivedAt-asc"})
    assert [i["id"] for i in r.json["items"]] == ids[6:]
    r = api.get("/api/emails", alice, query={"sort": "subject-desc", "pageSize": 2})
    assert [i["subject"] for i in r.json["items"]] == ["Message 06", "Message 05"]
    r = api.get("/api/emails", alice, query={"page": 9})
    assert r.json["items"] == [] and r.json["totalCount"] == 7


def test_list_other_mailbox_by_name_and_id(api: Api, alice: User) -> None:
    box = mailboxes.create_mailbox(alice.id, "Projects/Relate")
    messages.append(alice.id, box.id, make_message("In a folder"))
    by_name = api.get("/api/emails", alice, query={"mailbox": "Projects/Relate"})
    by_id = api.get("/api/emails", alice, query={"mailboxId": box.id})
    assert [i["subject"] for i in by_name.json["items"]] == ["In a folder"]
    assert by_id.json == by_name.json
    assert api.get("/api/emails", alice, query={"mailbox": "Nope"}).status == 404


def test_filters(api: Api, alice: User) -> None:
    box = alice.inbox()
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    new = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    messages.append(alice.id, box, make_message("Old plain"), ["\\Seen"], old)
    messages.append(alice.id, box, with_attachment("New with file"), ["\\Flagged", "Work"], new)
    got = lambda **q: [i["subject"] for i in api.get("/api/emails", alice, query=q).json["items"]]  # noqa: E731
    assert got(hasAttachments="true") == ["New with file"]
    assert got(hasAttachments="false") == ["Old plain"]
    assert got(isRead="true") == ["Old plain"]
    assert got(isFlagged="true") == ["New with file"]
    assert got(label="work") == ["New with file"]  # keywords compare without case
    assert got(fromDate="2026-03-01T00:00:00Z") == ["New with file"]
    assert got(toDate="2026-03-01T00:00:00Z") == ["Old plain"]
    r = api.get("/api/emails", alice, query={"isRead": "false"})
    assert r.json["totalCount"] == 1 and r.json["unreadCount"] == 1


def test_search_over_subject_addresses_and_body(api: Api, alice: User) -> None:
    box = alice.inbox()
    messages.append(alice.id, box, make_message("Quarterly figures", body="The invoice is attached.\r\n"))
    messages.append(alice.id, box, make_message("Lunch", sender="dave@relate.test", body="Pizza?\r\n"))
    archive = mailboxes.get_mailbox(alice.id, "Archive").id
    messages.append(alice.id, archive, make_message("Old invoice", body="Paid.\r\n"))
    search = lambda **q: sorted(i["subject"] for i in api.get("/api/emails/search", alice, query=q).json["items"])  # noqa: E731
    assert search(q="invoice") == ["Old invoice", "Quarterly figures"]  # every mailbox
    assert search(q="invoice", mailbox="INBOX") == ["Quarterly figures"]
    assert search(q="QUARTERLY") == ["Quarterly figures"]
    assert search(q="dave") == ["Lunch"]
    assert search(q="pizza") == ["Lunch"]
    assert search(q='"invoice is attached"') == ["Quarterly figures"]
    assert search(q='"attached invoice"') == []  # a phrase is matched as written
    assert search(q="invo") == ["Old invoice", "Quarterly figures"]  # the start of a word
    assert search(q="invoice pizza") == []
    r = api.get("/api/emails/search", alice, query={"q": "invoice", "pageSize": 1})
    assert r.json["totalCount"] == 2 and len(r.json["items"]) == 1
    assert api.get("/api/emails", alice, query={"q": "pizza"}).json["totalCount"] == 1


def test_search_never_finds_another_users_mail(api: Api, alice: User, bob: User) -> None:
    deliver(make_message("Secret plans", to="bob@relate.test"), "bob@relate.test")
    assert api.get("/api/emails/search", alice, query={"q": "secret"}).json["totalCount"] == 0
    assert api.get("/api/emails/search", bob, query={"q": "secret"}).json["totalCount"] == 1


def test_detail_with_bodies_recipients_and_attachments(api: Api, alice: User) -> None:
    raw = with_attachment("Report", to="Alice <alice@relate.test>, bob@relate.test")
    _, entry = messages.append(alice.id, alice.inbox(), raw)
    r = api.get(f"/api/emails/{entry.id}", alice)
    assert r.status == 200
    d = r.json
    assert d["textBody"].strip() == "See attached." and d["htmlBody"] is None
    assert d["to"] == [{"address": "alice@relate.test", "displayName": "Alice"},
                       {"address": "bob@relate.test", "displayName": None}]
    assert {"address": "bob@relate.test", "displayName": None, "type": "To"} in d["recipients"]
    assert d["attachmentCount"] == 1 and d["hasAttachments"] is True
    [att] = d["attachments"]
    assert att["fileName"] == "report.pdf" and att["contentType"] == "application/pdf"
    assert att["url"] == f"/api/emails/{entry.id}/attachments/{att['id']}"
    assert att["sizeBytes"] == 12
    listed = api.get("/api/emails", alice).json["items"][0]
    assert listed["attachmentCount"] == 1


HTML = (
    "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
    '<p style="color: blue; position: fixed; background: url(http://t.example/x)" onclick="steal()">Hi'
    '<img src="https://tracker.example/pixel.gif" alt="t"><img src="cid:logo@x"></p>'
    '<a href="javascript:alert(2)">bad</a><a href="https://relate.test/">good</a>'
    '<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input></form>'
    "</body></html>"
)


def _html_message() -> bytes:
    boundary = "rel-1"
    body = (
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{HTML}\r\n"
        f"--{boundary}\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
        f"--{boundary}--\r\n"
    )
    return make_message("Newsletter", body=body, content_type=f'multipart/related; boundary="{boundary}"')


def test_html_is_sanitized_and_remote_images_blocked(api: Api, alice: User) -> None:
    _, entry = messages.append(alice.id, alice.inbox(), _html_message())
    d = api.get(f"/api/emails/{entry.id}", alice).json
    html = d["htmlBody"]
    for bad in ("<script", "alert(1)", "onclick", "javascript:", "<iframe", "<form", "<style", "position",
                "tracker.example", "url("):
        assert bad not in html, bad
    assert 'style="color:blue"' in html
    assert 'href="https://relate.test/"' in html and 'rel="noopener noreferrer"' in html
    inline = next(a for a in d["attachments"] if a["contentId"] == "logo@x")
    assert inline["inline"] is True
    assert f'src="/api/emails/{entry.id}/attachments/{inline["id"]}"' in html
    assert d["remoteImagesBlocked"] == 1
    shown = api.get(f"/api/emails/{entry.id}", alice, query={"remoteImages": "true"}).json
    assert "https://tracker.example/pixel.gif" in shown["htmlBody"] and shown["remoteImagesBlocked"] == 0
    assert "<script" not in shown["htmlBody"]


def test_remote_images_follow_the_preference(api: Api, alice: User) -> None:
    _, entry = messages.append(alice.id, alice.inbox(), _html_message())
    assert api.patch("/api/preferences", alice, json_body={"loadRemoteImages": True}).status == 200
    assert api.get(f"/api/emails/{entry.id}", alice).json["remoteImagesBlocked"] == 0


def test_patch_read_flag_labels(api: Api, alice: User) -> None:
    [email_id] = _fill(alice, 1)
    r = api.patch(f"/api/emails/{email_id}", alice, json_body={"isRead": True, "isFlagged": True,
                                                                "labels": ["Work", "$Important"]})
    assert r.status == 200, r.json
    assert r.json["isRead"] and r.json["isFlagged"] and r.json["labels"] == ["$Important", "Work"]
    entry = messages.get_entry(alice.id, email_id)
    assert {"\\Seen", "\\Flagged", "Work", "$Important"} <= entry.flags  # IMAP sees the same keywords
    r = api.patch(f"/api/emails/{email_id}", alice, json_body={"isRead": False, "labels": ["todo"]})
    assert not r.json["isRead"] and r.json["isFlagged"] and r.json["labels"] == ["todo"]
    r = api.patch(f"/api/emails/{email_id}", alice, json_body={"labels": ["has space"]})
    assert r.status == 400 and r.json["field"] == "labels.0"


def test_patch_mailbox_moves(api: Api, alice: User) -> None:
    [email_id] = _fill(alice, 1)
    r = api.patch(f"/api/emails/{email_id}", alice, json_body={"mailbox": "Archive", "isRead": True})
    assert r.status == 200
    assert r.json["mailbox"] == "Archive" and r.json["isRead"] and r.json["id"] != email_id
    assert api.get(f"/api/emails/{email_id}", alice).status == 404
    assert api.get("/api/emails", alice).json["totalCount"] == 0
    assert api.get("/api/emails", alice, query={"mailbox": "Archive"}).json["totalCount"] == 1
    r = api.patch(f"/api/emails/{r.json['id']}", alice, json_body={"mailbox": "Nowhere"})
    assert r.status == 404 and r.json["field"] == "mailbox"


def test_delete_goes_to_trash_then_for_good(api: Api, alice: User) -> None:
    [email_id] = _fill(alice, 1)
    assert api.delete(f"/api/emails/{email_id}", alice).status == 204
    trash = api.get("/api/emails", alice, query={"mailbox": "Trash"}).json
    assert trash["totalCount"] == 1 and api.get("/api/emails", alice).json["totalCount"] == 0
    trashed = trash["items"][0]["id"]
    assert api.delete(f"/api/emails/{trashed}", alice).status == 204
    assert api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["totalCount"] == 0
    assert api.get(f"/api/emails/{trashed}", alice).status == 404


def test_delete_touches_only_the_callers_copy(api: Api, alice: User, bob: User) -> None:
    deliver(make_message("For both"), "alice@relate.test", "bob@relate.test")
    alice_id = api.get("/api/emails", alice).json["items"][0]["id"]
    assert api.delete(f"/api/emails/{alice_id}", alice).status == 204
    assert api.get("/api/emails", bob).json["totalCount"] == 1


def test_threads(api: Api, alice: User) -> None:
    box = alice.inbox()
    messages.append(alice.id, box, make_message("Plan", extra_headers="Message-ID: <root@relate.test>\r\n"
                                                ).replace(b"Message-ID: <m", b"X-Old-Id: <m", 1))
    messages.append(alice.id, box, make_message("Re: Plan", extra_headers="In-Reply-To: <root@relate.test>\r\n"
                                                 "References: <root@relate.test>\r\n"))
    messages.append(alice.id, box, make_message("Unrelated"))
    items = api.get("/api/emails", alice, query={"sort": "subject-asc"}).json["items"]
    thread_id = next(i["threadId"] for i in items if i["subject"] == "Plan")
    r = api.get(f"/api/emails/threads/{thread_id}", alice)
    assert r.status == 200
    assert [m["subject"] for m in r.json] == ["Plan", "Re: Plan"]
    assert "textBody" in r.json[0]
    assert api.get("/api/emails/threads/0123456789abcdef", alice).status == 404


def test_sent_and_sent_addresses(api: Api, alice: User, bob: User) -> None:
    alias = "alice.l@relate.test"
    store.accounts.add_address(alice.id, alias, confirmed=True)
    for sender in ("alice@relate.test", alias, alias):
        messages.deliver(make_message("Out", sender=sender, to="bob@relate.test"),
                         store.Envelope(sender, ("bob@relate.test",), sender_user_id=alice.id))
    r = api.get("/api/emails/sent", alice)
    assert r.json["totalCount"] == 3 and all(i["mailbox"] == "Sent" and i["isRead"] for i in r.json["items"])
    assert api.get("/api/emails/sent", alice, query={"fromAddress": alias.upper()}).json["totalCount"] == 2
    assert api.get("/api/emails/sent/addresses", alice).json == ["alice.l@relate.test", "alice@relate.test"]
    assert api.get("/api/emails/sent/addresses", bob).json == []
    sent_id = r.json["items"][0]["id"]
    assert api.get(f"/api/emails/{sent_id}", alice).status == 200  # the sender opens Sent mail
    assert api.get(f"/api/emails/{sent_id}", bob).status == 404


def test_external_paths_behave_like_the_main_ones(api: Api, alice: User) -> None:
    [email_id] = _fill(alice, 1)
    assert api.get("/api/external/emails", alice, "read").json == api.get("/api/emails", alice).json
    assert api.get(f"/api/external/emails/{email_id}", alice, "read").status == 200
    assert api.get("/api/external/emails/search", alice, "read", query={"q": "body"}).json["totalCount"] == 1
    assert api.get("/api/external/emails/sent", alice, "read").status == 200
    assert api.patch(f"/api/external/emails/{email_id}", alice, "read", json_body={"isRead": True}).status == 403
    r = api.patch(f"/api/external/emails/{email_id}", alice, "write", json_body={"isRead": True})
    assert r.status == 200 and r.json["isRead"]
    assert api.delete(f"/api/external/emails/{email_id}", alice, "write").status == 204
