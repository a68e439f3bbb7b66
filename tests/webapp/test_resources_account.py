"""/api/filters, /api/preferences, /api/profile and /api/smtp-credentials."""

from __future__ import annotations

from relate.config import Settings
from relate.store import accounts, keys, profiles
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, deliver, make_message, with_attachment

# The fixtures these tests use.
alice, api, app, bob = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob

# -- filters -------------------------------------------------------------------------------------


def test_filter_crud_in_the_flat_shape(api: Api, alice: User) -> None:
    label = api.post("/api/labels", alice, json_body={"name": "Bills", "color": "#123456"}).json
    r = api.post("/api/filters", alice, json_body={
        "name": "Invoices", "subjectContains": "invoice", "hasAttachments": True, "markAsRead": True,
        "assignLabelId": label["id"], "moveToMailbox": "Archive", "priority": 5})
    assert r.status == 201, r.json
    f = r.json
    assert f["subjectContains"] == "invoice" and f["fromAddressContains"] is None
    assert f["assignLabelName"] == "Bills" and f["assignLabelColor"] == "#123456"
    assert f["moveToMailbox"] == "Archive" and f["markAsRead"] and not f["delete"] and f["matchAll"]
    assert f["isEnabled"] and f["priority"] == 5
    r = api.patch(f"/api/filters/{f['id']}", alice, json_body={"subjectContains": None, "fromAddressContains": "acme",
                                                                "isEnabled": False, "matchAll": False})
    assert r.json["subjectContains"] is None and r.json["fromAddressContains"] == "acme"
    assert not r.json["isEnabled"] and not r.json["matchAll"] and r.json["assignLabelId"] == label["id"]
    assert [x["id"] for x in api.get("/api/filters", alice).json] == [f["id"]]
    assert api.get(f"/api/filters/{f['id']}", alice).json == r.json
    assert api.delete(f"/api/filters/{f['id']}", alice).status == 204
    assert api.get(f"/api/filters/{f['id']}", alice).status == 404


def test_filter_references_are_checked(api: Api, alice: User, bob: User) -> None:
    bobs_label = api.post("/api/labels", bob, json_body={"name": "Bobs"}).json
    r = api.post("/api/filters", alice, json_body={"name": "x", "assignLabelId": bobs_label["id"]})
    assert r.status == 404 and r.json["field"] == "assignLabelId"
    r = api.post("/api/filters", alice, json_body={"name": "x", "moveToMailbox": "Nowhere"})
    assert r.status == 404 and r.json["field"] == "moveToMailbox"


def test_filter_runs_at_smtp_delivery_and_test_matches_recent_mail(api: Api, alice: User) -> None:
    f = api.post("/api/filters", alice, json_body={"name": "Reports", "bodyContains": "See attached",
                                                   "moveToMailbox": "Archive", "flag": True}).json
    deliver(with_attachment("Report"), "alice@relate.test")
    deliver(make_message("Chat"), "alice@relate.test")
    assert [i["subject"] for i in api.get("/api/emails", alice).json["items"]] == ["Chat"]
    [filed] = api.get("/api/emails", alice, query={"mailbox": "Archive"}).json["items"]
    assert filed["subject"] == "Report" and filed["isFlagged"]
    r = api.post(f"/api/filters/{f['id']}/test", alice, query={"limit": 10})
    assert r.status == 200 and r.json == {"matchCount": 1, "matchedEmailIds": [filed["id"]]}


# -- preferences -----------------------------------------------------------------------------------


def test_preferences_defaults_and_changes(api: Api, alice: User, bob: User) -> None:
    r = api.get("/api/preferences", alice)
    assert r.json["theme"] == "system" and r.json["emailsPerPage"] == 50 and r.json["updatedAt"] is None
    r = api.put("/api/preferences", alice, json_body={"theme": "dark", "emailsPerPage": 25, "digestTime": "07:30"})
    assert r.status == 200 and r.json["theme"] == "dark" and r.json["emailsPerPage"] == 25
    assert r.json["updatedAt"] is not None
    r = api.patch("/api/preferences", alice, json_body={"showPreview": False})
    assert r.json["theme"] == "dark" and r.json["showPreview"] is False
    assert api.get("/api/preferences", bob).json["theme"] == "system"


def test_preference_values_are_validated(api: Api, alice: User) -> None:
    for body, field in (({"theme": "neon"}, "theme"), ({"emailsPerPage": 5000}, "emailsPerPage"),
                        ({"digestTime": "25:00"}, "digestTime"), ({"defaultSort": "random"}, "defaultSort"),
                        ({"fontSize": 3}, "fontSize"), ({"showPreview": "yes"}, "showPreview")):
        r = api.put("/api/preferences", alice, json_body=body)
        assert r.status == 400 and r.json["field"] == field, body


# -- profile ---------------------------------------------------------------------------------------


def test_profile_and_pending_addresses(api: Api, alice: User, bob: User) -> None:
    p = api.get("/api/profile", alice).json
    assert p["email"] == "alice@relate.test" and p["displayName"] == "Alice Liddell"
    assert p["additionalAddresses"] == [] and p["createdAt"].endswith("Z")
    r = api.put("/api/profile", alice, json_body={"displayName": "Alice L."})
    assert r.json["displayName"] == "Alice L."
    r = api.post("/api/profile/addresses", alice, json_body={"address": "Alice.Work@relate.test"})
    assert r.status == 201 and r.json["address"] == "alice.work@relate.test" and r.json["isVerified"] is False
    address_id = r.json["id"]
    assert api.post("/api/profile/addresses", bob, json_body={"address": "alice.work@relate.test"}).status == 409
    assert api.post("/api/profile/addresses", bob, json_body={"address": "alice@relate.test"}).status == 409
    r = api.post("/api/profile/addresses", alice, json_body={"address": "not an address"})
    assert r.status == 400 and r.json["field"] == "address"
    # Pending: it receives nothing and cannot be sent from.
    deliver(make_message("To the new address"), "alice.work@relate.test")
    assert api.get("/api/emails", alice).json["totalCount"] == 0
    r = api.post("/api/emails/send", alice, json_body={"fromAddress": "alice.work@relate.test",
                                                       "recipients": [{"address": "bob@relate.test"}]})
    assert r.status == 403
    accounts.confirm_address("alice.work@relate.test")  # the administrator confirms
    assert api.get("/api/profile", alice).json["additionalAddresses"][0]["isVerified"] is True
    assert api.delete(f"/api/profile/addresses/{address_id}", bob).status == 404
    assert api.delete(f"/api/profile/addresses/{address_id}", alice).status == 204
    assert api.get("/api/profile", alice).json["additionalAddresses"] == []


def test_address_requests_are_in_hosted_domains_only(api: Api, alice: User) -> None:
    r = api.post("/api/profile/addresses", alice, json_body={"address": "alice@gmail.com"})
    assert r.status == 400 and r.json["field"] == "address" and "gmail.com is not a domain hosted here" in r.json["error"]
    assert api.get("/api/profile", alice).json["additionalAddresses"] == []
    assert "gmail.com" not in accounts.hosted_domains()


def test_pending_address_requests_are_limited(api: Api, alice: User) -> None:
    for n in range(accounts.MAX_PENDING_ADDRESSES):
        assert api.post("/api/profile/addresses", alice, json_body={"address": f"a{n}@relate.test"}).status == 201
    r = api.post("/api/profile/addresses", alice, json_body={"address": "newguy@relate.test"})
    assert r.status == 409 and "wait for an administrator" in r.json["error"]
    assert len(api.get("/api/profile", alice).json["additionalAddresses"]) == accounts.MAX_PENDING_ADDRESSES
    accounts.confirm_address("a0@relate.test")
    assert api.post("/api/profile/addresses", alice, json_body={"address": "newguy@relate.test"}).status == 201


def test_primary_address_cannot_be_removed(api: Api, alice: User) -> None:
    primary = next(a for a in profiles.get_profile(alice.id).addresses if a.primary)
    assert api.delete(f"/api/profile/addresses/{primary.id}", alice).status == 409


# -- smtp-credentials --------------------------------------------------------------------------------


def test_credentials_show_connection_info_from_settings(api: Api, alice: User, store: Settings) -> None:
    r = api.get("/api/smtp-credentials", alice)
    assert r.status == 200
    info = r.json["connectionInfo"]
    assert info["smtpServer"] == store.smtp.server_name and info["smtpPort"] == store.smtp.port
    assert info["smtpSecurePort"] == store.smtp.secure_port and info["imapSecurePort"] == store.imap.secure_port
    assert info["username"] == "alice@relate.test"
    assert {"protocol": "smtp", "host": store.smtp.server_name, "port": 465, "security": "tls"} in info["endpoints"]
    assert {"protocol": "imap", "host": store.imap.server_name, "port": 143, "security": "starttls"} in info["endpoints"]
    assert info["activeKeyCount"] == len(r.json["keys"]) == len(keys.list_keys(alice.id))
    assert all("apiKey" not in k for k in r.json["keys"])


def test_create_list_and_revoke_key(api: Api, alice: User) -> None:
    r = api.post("/api/smtp-credentials", alice, "app", json_body={"name": "Thunderbird"})
    assert r.status == 201 and r.json["scopes"] == ["imap", "pop3", "smtp"]
    secret = r.json["apiKey"]
    assert secret.startswith(r.json["prefix"] + "_")
    assert keys.authenticate("alice@relate.test", secret, "imap") is not None
    listed = {k["id"]: k for k in api.get("/api/smtp-credentials", alice).json["keys"]}
    assert listed[r.json["id"]]["isActive"] and "apiKey" not in listed[r.json["id"]]
    assert api.delete(f"/api/smtp-credentials/{r.json['id']}", alice).status == 204
    assert keys.authenticate("alice@relate.test", secret, "imap") is None
    assert r.json["id"] not in {k["id"] for k in api.get("/api/smtp-credentials", alice).json["keys"]}


def test_keys_never_get_scopes_their_creator_lacks(api: Api, alice: User) -> None:
    # An api:write key may not create keys at all; an app key only within its own scopes.
    r = api.post("/api/smtp-credentials", alice, "full", json_body={"name": "x", "scopes": ["smtp"]})
    assert r.status == 403
    r = api.post("/api/smtp-credentials", alice, "app", json_body={"name": "x", "scopes": ["smtp", "imap"]})
    assert r.status == 201
    r = api.post("/api/smtp-credentials", alice, "app", json_body={"name": "x", "scopes": ["api:write"]})
    assert r.status == 403
    r = api.post("/api/smtp-credentials/mobile", alice, "app", json_body={"deviceName": "Pixel", "platform": "android"})
    assert r.status == 201 and r.json["scopes"] == ["app"] and "Pixel" in r.json["name"]
    assert api.post("/api/smtp-credentials/mobile", alice, "full",
                    json_body={"deviceName": "Pixel", "platform": "android"}).status == 403


def test_development_user_may_create_any_key(api: Api, store: Settings) -> None:
    r = api.post("/api/smtp-credentials", json_body={"name": "dev", "scopes": ["smtp", "api:read", "app"]})
    assert r.status == 201 and r.json["scopes"] == ["api:read", "app", "smtp"]
    developer = accounts.find_user(accounts.DEVELOPMENT_USER)
    assert developer is not None and r.json["id"] in {k.id for k in keys.list_keys(developer.id)}
