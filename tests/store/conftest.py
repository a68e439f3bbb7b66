"""Fixtures of the store tests: the migration tests' empty databases (tests.store.migrations)."""

from tests.store.migrations import fresh_pg, fresh_url  # noqa: F401 (fixtures, found here by pytest)
