"""Send, reply and forward: the SMTP submission path (sender checks, local recipients, Sent copy,
filters at delivery), messages built right."""

from __future__ import annotations

import base64

from relate import store
from relate.message import parse_message
from relate.store import accounts, messages, userfilters
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message, with_attachment

# The fixtures these tests use.
alice, api, app, bob, carol = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob, fixtures.carol


def _raw(user: User, email_id: int) -> bytes:
    return messages.raw_message(messages.get_entry(user.id, email_id).body_id)


def _inbox(api: Api, user: User) -> list[dict]:
    return api.get("/api/emails", user).json["items"]


def test_send_delivers_locally_with_sent_copy(api: Api, alice: User, bob: User, carol: User) -> None:
    body = {
        "fromDisplayName": "Alice L.",
        "recipients": [
            {"address": "Bob@Relate.test", "displayName": "Bob"},
            {"address": "carol@relate.test", "type": "Cc"},
        ],
        "subject": "Lunch on Friday?",
        "textBody": "Shall we?\nA.",
        "htmlBody": "<p>Shall we?</p>",
        "attachments": [{"fileName": "menu.txt", "contentType": "text/plain",
                         "contentBase64": base64.b64encode(b"soup\n").decode()}],
    }
    r = api.post("/api/emails/send", alice, json_body=body)
    assert r.status == 201, r.json
    result = r.json
    assert result["recipients"] == ["bob@relate.test", "carol@relate.test"]
    sent = api.get(f"/api/emails/{result['id']}", alice).json
    assert sent["mailbox"] == "Sent" and sent["isRead"] and sent["messageId"] == result["messageId"]
    [got] = _inbox(api, bob)
    assert got["subject"] == "Lunch on Friday?" and not got["isRead"]
    assert got["fromAddress"] == "alice@relate.test" and got["fromDisplayName"] == "Alice L."
    detail = api.get(f"/api/emails/{got['id']}", bob).json
    assert detail["textBody"].replace("\r\n", "\n").strip() == "Shall we?\nA."
    assert "<p>Shall we?</p>" in detail["htmlBody"]
    assert [a["fileName"] for a in detail["attachments"]] == ["menu.txt"]
    assert detail["cc"] == [{"address": "carol@relate.test", "displayName": None}]
    assert len(_inbox(api, carol)) == 1
    parsed = parse_message(_raw(bob, got["id"]))
    assert parsed.message_id == result["messageId"] and parsed.date is not None


def test_bcc_is_delivered_but_never_shown(api: Api, alice: User, bob: User, carol: User) -> None:
    r = api.post("/api/emails/send", alice, json_body={
        "recipients": [{"address": "bob@relate.test"}, {"address": "carol@relate.test", "type": "Bcc"}],
        "subject": "Quiet", "textBody": "x"})
    assert r.status == 201
    [for_carol] = _inbox(api, carol)
    assert b"carol@relate.test" not in _raw(carol, for_carol["id"])
    assert b"Bcc" not in _raw(carol, for_carol["id"])
    assert len(_inbox(api, bob)) == 1


def test_sender_must_be_a_confirmed_address(api: Api, alice: User, bob: User) -> None:
    send = lambda sender: api.post("/api/emails/send", alice, json_body={  # noqa: E731
        "fromAddress": sender, "recipients": [{"address": "bob@relate.test"}], "subject": "s", "textBody": "t"})
    r = send("bob@relate.test")
    assert r.status == 403 and r.json["field"] == "fromAddress"
    accounts.add_address(alice.id, "alice.pending@relate.test", confirmed=False)
    assert send("alice.pending@relate.test").status == 403
    accounts.add_address(alice.id, "alice.alias@relate.test", confirmed=True)
    assert send("alice.alias@relate.test").status == 201
    assert _inbox(api, bob)[0]["fromAddress"] == "alice.alias@relate.test"


def test_remote_and_unknown_recipients_are_refused_and_nothing_is_stored(api: Api, alice: User, bob: User) -> None:
    for address, words in (("someone@example.org", "remote delivery is not available"),
                           ("nobody@relate.test", "no such user")):
        r = api.post("/api/emails/send", alice, json_body={
            "recipients": [{"address": "bob@relate.test"}, {"address": address}], "subject": "s", "textBody": "t"})
        assert r.status == 422 and r.json["field"] == "recipients"
        assert words in r.json["error"]
    assert _inbox(api, bob) == []
    assert api.get("/api/emails/sent", alice).json["totalCount"] == 0


def test_filters_run_for_api_sends(api: Api, alice: User, bob: User) -> None:
    userfilters.create_filter(bob.id, "Invoices", {"subject": "invoice"}, {"addLabel": "Bills", "moveTo": "Archive",
                                                                          "markRead": True})
    api.post("/api/emails/send", alice, json_body={"recipients": [{"address": "bob@relate.test"}],
                                                   "subject": "Invoice 42", "textBody": "pay"})
    assert _inbox(api, bob) == []
    [filed] = api.get("/api/emails", bob, query={"mailbox": "Archive"}).json["items"]
    assert filed["labels"] == ["Bills"] and filed["isRead"]


def test_reply_threads_and_marks_answered(api: Api, alice: User, bob: User) -> None:
    original = make_message("Plans", sender="bob@relate.test", to="alice@relate.test, carol@relate.test",
                            extra_headers="Cc: dave@relate.test\r\n")
    messages.deliver(original, store.Envelope("bob@relate.test", ("alice@relate.test",)))
    [mail] = _inbox(api, alice)
    r = api.post(f"/api/emails/{mail['id']}/reply", alice, json_body={"textBody": "Agreed."})
    assert r.status == 201, r.json
    assert r.json["recipients"] == ["bob@relate.test"]
    [answer] = _inbox(api, bob)
    assert answer["subject"] == "Re: Plans"
    parsed = parse_message(_raw(bob, answer["id"]))
    original_id = parse_message(original).message_id
    assert parsed.in_reply_to == [original_id] and parsed.references == [original_id]
    assert answer["threadId"] == mail["threadId"]
    assert api.get(f"/api/emails/{mail['id']}", alice).json["isAnswered"] is True
    second = api.post(f"/api/emails/{answer['id']}/reply", bob, json_body={"textBody": "Good"})
    assert second.status == 201
    latest = api.get("/api/emails", alice).json["items"][0]
    assert latest["subject"] == "Re: Plans"  # not "Re: Re: Plans"
    assert parse_message(_raw(alice, latest["id"])).references == [original_id, parsed.message_id]


def test_reply_all_skips_own_addresses(api: Api, alice: User, bob: User, carol: User) -> None:
    messages.deliver(make_message("Team", sender="bob@relate.test", to="alice@relate.test, carol@relate.test"),
                     store.Envelope("bob@relate.test", ("alice@relate.test", "carol@relate.test")))
    [mail] = _inbox(api, alice)
    r = api.post(f"/api/emails/{mail['id']}/reply", alice, json_body={"textBody": "+1", "replyAll": True})
    assert r.status == 201
    assert sorted(r.json["recipients"]) == ["bob@relate.test", "carol@relate.test"]


def test_reply_to_remote_sender_is_refused(api: Api, alice: User) -> None:
    messages.deliver(make_message("Hi", sender="stranger@example.org"),
                     store.Envelope("stranger@example.org", ("alice@relate.test",)))
    [mail] = _inbox(api, alice)
    r = api.post(f"/api/emails/{mail['id']}/reply", alice, json_body={"textBody": "Hello"})
    assert r.status == 422 and "remote delivery is not available" in r.json["error"]


def test_forward_carries_attachments_and_text(api: Api, alice: User, bob: User) -> None:
    messages.deliver(with_attachment("Report", to="alice@relate.test"),
                     store.Envelope("carol@relate.test", ("alice@relate.test",)))
    [mail] = _inbox(api, alice)
    r = api.post(f"/api/emails/{mail['id']}/forward", alice,
                 json_body={"recipients": [{"address": "bob@relate.test"}], "textBody": "FYI"})
    assert r.status == 201, r.json
    [fwd] = _inbox(api, bob)
    assert fwd["subject"] == "Fwd: Report" and fwd["attachmentCount"] == 1
    detail = api.get(f"/api/emails/{fwd['id']}", bob).json
    assert detail["textBody"].startswith("FYI")
    assert "Forwarded message" in detail["textBody"] and "See attached." in detail["textBody"]
    part = detail["attachments"][0]["id"]
    original_part = api.get(f"/api/emails/{mail['id']}", alice).json["attachments"][0]["id"]
    assert (api.get(f"/api/emails/{fwd['id']}/attachments/{part}", bob).data
            == api.get(f"/api/emails/{mail['id']}/attachments/{original_part}", alice).data)
    assert "$Forwarded" in api.get(f"/api/emails/{mail['id']}", alice).json["labels"]


def test_other_users_email_cannot_be_replied_to_or_forwarded(api: Api, alice: User, bob: User) -> None:
    _, entry = messages.append(bob.id, bob.inbox(), make_message("Private", sender="bob@relate.test"))
    assert api.post(f"/api/emails/{entry.id}/reply", alice, json_body={"textBody": "x"}).status == 404
    r = api.post(f"/api/emails/{entry.id}/forward", alice,
                 json_body={"recipients": [{"address": "alice@relate.test"}]})
    assert r.status == 404


def test_header_injection_is_refused(api: Api, alice: User, bob: User) -> None:
    r = api.post("/api/emails/send", alice, json_body={"recipients": [{"address": "bob@relate.test"}],
                                                       "subject": "Hi\r\nBcc: victim@relate.test", "textBody": "x"})
    assert r.status == 400 and r.json["field"] == "subject"
    assert _inbox(api, bob) == []


def test_bad_base64_names_the_field(api: Api, alice: User, bob: User) -> None:
    r = api.post("/api/emails/send", alice, json_body={
        "recipients": [{"address": "bob@relate.test"}], "subject": "s",
        "attachments": [{"fileName": "a.bin", "contentBase64": "!!!"}]})
    assert r.status == 400 and r.json["field"] == "attachments.0.contentBase64"


def test_invalid_recipient_address_is_a_bad_request(api: Api, alice: User) -> None:
    r = api.post("/api/emails/send", alice, json_body={"recipients": [{"address": "no at sign"}], "subject": "s"})
    assert r.status == 400 and r.json["field"] == "recipients"
