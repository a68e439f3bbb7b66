"""The administration command line: `relate COMMAND` or `python -m relate COMMAND` (DESIGN.md §3).

Exit status 0 on success, 1 on a user error with a one-line message on stderr. Commands that
create a secret print it alone on their last line, so scripts can take `tail -n 1`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from relate.config import ConfigError, Settings, load_settings


class UserError(Exception):
    """A mistake of the operator's: printed as one line, exit status 1."""


def _settings(all_in_one: bool = False) -> Settings:
    return load_settings(all_in_one=all_in_one)


def _open(settings: Settings) -> None:
    from relate import store

    store.open_store(settings)


# -- commands ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from relate.serve import serve

    return serve(_settings(all_in_one=True))


def cmd_migrate(args: argparse.Namespace) -> int:
    from relate import db
    from relate.db import migrate

    settings = _settings()
    engine = db.configure(settings.database_url)
    applied = migrate.upgrade(engine)
    print(f"database schema {'migrated to' if applied else 'already at'} {migrate.head_revision()}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(all_in_one=args.all_in_one)
    from relate.protocol import tls

    for proto in ("smtp", "pop3", "imap"):
        if getattr(settings, proto).enabled and settings.tls_for(proto).configured:
            tls.server_context(settings, proto)  # raises ConfigError on unreadable certificates
    from relate.store import postgres_dsn

    print("configuration is valid")
    print(f"  database: {'PostgreSQL' if postgres_dsn(settings.database_url) else 'SQLite'}")
    print(f"  mode: {'development (no OIDC)' if settings.development else 'OIDC at ' + settings.oidc.authority}")
    return 0


def cmd_domains(args: argparse.Namespace) -> int:
    from relate.store import accounts

    _open(_settings())
    if args.action == "add":
        print(accounts.add_domain(args.name))
    elif args.action == "remove":
        accounts.remove_domain(args.name)
        print(f"removed {args.name}")
    else:
        for name in accounts.list_domains():
            print(name)
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from relate.store import accounts, keys

    _open(_settings())
    if args.action == "add":
        user = accounts.create_user(args.email, args.name or "", is_admin=args.admin)
        print(f"created user {user.primary_address}{' (administrator)' if user.is_admin else ''}")
        if args.password:
            _, key = keys.create_key(user.id, "mail clients", "smtp pop3 imap")
            print("password for SMTP, POP3 and IMAP (shown once):")
            print(key)
    elif args.action == "remove":
        accounts.remove_user(args.email)
        print(f"removed {args.email}")
    else:
        for user in accounts.list_users():
            extra = [a.address + ("" if a.confirmed else " (pending)") for a in accounts.list_addresses(user.id)
                     if a.address != user.primary_address]
            admin = " admin" if user.is_admin else ""
            print(f"{user.primary_address}\t{user.display_name}{admin}\t{' '.join(extra)}".rstrip())
    return 0


def cmd_addresses(args: argparse.Namespace) -> int:
    from relate.store import accounts

    _open(_settings())
    if args.action == "add":
        user = accounts.find_user(args.email)
        if user is None:
            raise UserError(f"no user with address {args.email}")
        info = accounts.add_address(user.id, args.alias, confirmed=True)
        print(f"added {info.address} to {user.primary_address}")
    else:
        accounts.remove_address(args.alias)
        print(f"removed {args.alias}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from relate.store import keys

    _open(_settings())
    if args.action == "create":
        user = _user(args.email)
        info, key = keys.create_key(user.id, args.name, args.scopes)
        if args.json:
            print(json.dumps({"id": info.id, "name": info.name, "prefix": info.prefix,
                              "scopes": sorted(info.scopes), "key": key}))
        else:
            print(f"created key {info.id} ({info.prefix}) for {user.primary_address} with {' '.join(sorted(info.scopes))}")
            print(key)
    elif args.action == "list":
        user = _user(args.email)
        for k in keys.list_keys(user.id, include_revoked=True):
            state = "revoked" if k.revoked_at else "active"
            used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
            print(f"{k.id}\t{k.prefix}\t{k.name}\t{','.join(sorted(k.scopes))}\t{state}\tlast used {used}")
    else:
        try:
            key_id = int(args.key_id)
        except ValueError:
            raise UserError(f"not a key id: {args.key_id}") from None
        info = keys.revoke_key(key_id)
        print(f"revoked key {info.id} ({info.prefix})")
    return 0


def _user(email: str) -> Any:
    from relate.store import accounts

    user = accounts.find_user(email)
    if user is None:
        raise UserError(f"no user with address {email}")
    return user


def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg", file=sys.stderr, disable=None, dynamic_ncols=True)


def cmd_import(args: argparse.Namespace) -> int:
    from relate import mailfile
    from relate.store import mailboxes, messages, searchindex

    settings = _settings()
    path = Path(args.path)
    if not path.exists():
        raise UserError(f"no such file or directory: {path}")
    _open(settings)
    user = _user(args.email)
    try:
        box = mailboxes.get_mailbox(user.id, args.mailbox)
    except Exception:
        box = mailboxes.create_mailbox(user.id, args.mailbox)
    items: Iterator[mailfile.MailItem]
    if mailfile.is_maildir(path):
        files = mailfile.maildir_files(path)
        total: int | None = len(files)
        items = (mailfile.read_maildir_item(f) for f in files)
        fh = None
    elif path.is_file():
        fh = open(path, "rb")  # noqa: SIM115 - closed in the finally below
        total = None
        items = mailfile.read_mbox(fh)
    else:
        raise UserError(f"{path} is neither an mbox file nor a Maildir (cur/ and new/)")
    count = 0
    try:
        with _progress(total, f"importing into {box.name}") as bar:
            for item in items:
                messages.append(user.id, box.id, item.raw, item.flags, item.date,
                                envelope_from=item.sender, origin="import")
                count += 1
                bar.update(1)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    finally:
        if fh is not None:
            fh.close()
    # The appended bodies wait for the search indexer (relate.store.searchindex): leave them
    # indexed rather than rely on a daemon running.
    searchindex.index_all()
    print(f"imported {count} messages into {user.primary_address} {box.name}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from relate import mailfile
    from relate.store import mailboxes, messages

    settings = _settings()
    _open(settings)
    user = _user(args.email)
    box = mailboxes.get_mailbox(user.id, args.mailbox)
    entries = messages.list_entries(user.id, box.id)
    path = Path(args.path)
    fmt = args.format or ("maildir" if path.is_dir() or str(args.path).endswith("/") else "mbox")

    def items() -> Iterator[mailfile.MailItem]:
        for e in entries:
            flags = sorted(f for f in e.flags if f.startswith("\\"))
            yield mailfile.MailItem(messages.raw_message(e.body_id), e.envelope_from, e.internal_date, flags)
            bar.update(1)

    with _progress(len(entries), f"exporting {box.name}") as bar:
        if fmt == "maildir":
            writer = mailfile.MaildirWriter(path)
            for item in items():
                writer.add(item)
        else:
            if path.exists() and path.is_dir():
                raise UserError(f"{path} is a directory: use --format maildir")
            with open(path, "wb") as out:
                mailfile.write_mbox(out, items())
    print(f"exported {len(entries)} messages from {user.primary_address} {box.name} to {path} ({fmt})")
    return 0


# -- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="relate", description="Relate Mail administration")
    sub = p.add_subparsers(dest="command")

    sub.add_parser("serve", help="run every enabled service in one process (the default)").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    cc = sub.add_parser("check-config", help="validate the environment and exit 0 or 1")
    cc.add_argument("--all-in-one", action="store_true", help="check with the all-in-one defaults")
    cc.set_defaults(func=cmd_check_config)

    d = sub.add_parser("domains", help="hosted domains")
    dsub = d.add_subparsers(dest="action", required=True)
    dsub.add_parser("add").add_argument("name")
    dsub.add_parser("list")
    dsub.add_parser("remove").add_argument("name")
    d.set_defaults(func=cmd_domains)

    u = sub.add_parser("users", help="accounts")
    usub = u.add_subparsers(dest="action", required=True)
    ua = usub.add_parser("add")
    ua.add_argument("email")
    ua.add_argument("--name", default="")
    ua.add_argument("--admin", action="store_true", help="give administrator rights")
    ua.add_argument("--password", action="store_true",
                    help="also create an API key for SMTP, POP3 and IMAP and print it (the mail password)")
    usub.add_parser("list")
    usub.add_parser("remove").add_argument("email")
    u.set_defaults(func=cmd_users)

    a = sub.add_parser("addresses", help="extra addresses of a user (confirmed)")
    asub = a.add_subparsers(dest="action", required=True)
    aa = asub.add_parser("add")
    aa.add_argument("email", help="an address of the user")
    aa.add_argument("alias", help="the address to add")
    asub.add_parser("remove").add_argument("alias")
    a.set_defaults(func=cmd_addresses)

    k = sub.add_parser("keys", help="API keys (the password for SMTP, POP3, IMAP and the API)")
    ksub = k.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create")
    kc.add_argument("email")
    kc.add_argument("--name", required=True)
    kc.add_argument("--scopes", required=True, help="comma-separated: smtp,pop3,imap,api:read,api:write,app")
    kc.add_argument("--json", action="store_true")
    ksub.add_parser("list").add_argument("email")
    ksub.add_parser("revoke").add_argument("key_id")
    k.set_defaults(func=cmd_keys)

    i = sub.add_parser("import", help="import an mbox file or a Maildir")
    i.add_argument("email")
    i.add_argument("path")
    i.add_argument("--mailbox", default="INBOX")
    i.set_defaults(func=cmd_import)

    e = sub.add_parser("export", help="export a mailbox as mbox or Maildir")
    e.add_argument("email")
    e.add_argument("path")
    e.add_argument("--mailbox", default="INBOX")
    e.add_argument("--format", choices=["mbox", "maildir"])
    e.set_defaults(func=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from relate.store import StoreError

    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = getattr(args, "func", cmd_serve)
    try:
        return func(args)
    except (ConfigError, UserError, StoreError) as exc:
        print(f"relate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        print(f"relate: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    finally:
        from relate import store

        store.close_store()
