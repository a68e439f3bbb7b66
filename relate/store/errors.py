"""Store errors. Each protocol maps these to its wire format in one place."""

from __future__ import annotations


class StoreError(Exception):
    """Base class; str() is a message fit for a client."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """The name or address is already taken."""


class InvalidInput(StoreError):
    pass


class Forbidden(StoreError):
    """The caller may not do this (ownership, pending address, protected mailbox)."""


class OverQuota(StoreError):
    pass


class TemporaryFailure(StoreError):
    """The database is unreachable or overloaded: retry later (SMTP 451, IMAP NO [UNAVAILABLE])."""


class RetryableConflict(TemporaryFailure):
    """A deadlock or serialisation failure: the whole transaction may simply be run again."""
