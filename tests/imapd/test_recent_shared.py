"""\\Recent across the workers of one daemon (Network__Workers): claims made by one worker's
session are seen by the others' through the shared table (relate.imapd.selected)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relate.imapd import selected
from relate.imapd.selected import RecentClaims, SharedFloors
from relate.store.types import MailboxInfo


def _box(box_id: int, validity: int = 7) -> MailboxInfo:
    return MailboxInfo(id=box_id, user_id=1, name="INBOX", uid_validity=validity, uid_next=100,
                       highest_modseq=1, special_use=None, subscribed=True)


@pytest.fixture
def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RecentClaims, RecentClaims]:
    monkeypatch.setattr(selected, "shared_path", lambda pid: tmp_path / f"relate-recent-{pid}")
    one, two = RecentClaims(), RecentClaims()
    one.share(os.getpid())
    two.share(os.getpid())
    return one, two


def test_a_claim_in_one_worker_is_seen_by_the_other(workers: tuple[RecentClaims, RecentClaims]) -> None:
    one, two = workers
    box = _box(5)
    assert one.recent(box, [1, 2, 3], claim=True) == {1, 2, 3}
    assert two.recent(box, [1, 2, 3], claim=True) == set()
    assert two.recent(box, [1, 2, 3, 4], claim=False) == {4}  # read-only: not claimed
    assert two.recent(box, [1, 2, 3, 4], claim=True) == {4}
    assert one.recent(box, [4, 5], claim=True) == {5}
    assert one.recent(_box(5, validity=8), [1], claim=True) == {1}  # a new UIDVALIDITY starts afresh


def test_a_full_table_keeps_claims_in_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SharedFloors, "SLOTS", 4)
    monkeypatch.setattr(SharedFloors, "PROBES", 4)
    monkeypatch.setattr(selected, "shared_path", lambda pid: tmp_path / f"relate-recent-{pid}")
    claims = RecentClaims()
    claims.share(os.getpid())
    for box_id in range(1, 5):
        assert claims.recent(_box(box_id), [1], claim=True) == {1}
    overflow = _box(99)
    assert claims.recent(overflow, [1, 2], claim=True) == {1, 2}  # kept in this process
    assert claims.recent(overflow, [1, 2, 3], claim=True) == {3}
