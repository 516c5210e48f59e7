"""Commits sliced by bytes (issue 9): order kept, nothing dropped, each slice bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rotate_stats.database import DateCommit
from rotate_stats.invariants import DayCounts
from rotate_stats.walk import _slices_by_bytes, commit_bytes

keys = st.text(min_size=1, max_size=40).map(lambda t: "sync:" + t)
days = st.dictionaries(keys, st.integers(0, 2**63 - 1), max_size=30).map(
    lambda bd: DayCounts({"failed": sum(bd.values())}, {"failed": bd} if bd else {})
)


@given(st.lists(days, max_size=20), st.integers(1, 5000))
def test_slices_keep_order_and_bound_their_size(day_list: list[DayCounts], limit: int) -> None:
    items = [DateCommit(20000 + i, f"c{i}", day) for i, day in enumerate(day_list)]
    slices = _slices_by_bytes(items, limit)
    assert [i for s in slices for i in s] == items  # every date once, in order
    for s in slices:
        assert s  # no empty transaction
        assert len(s) == 1 or sum(commit_bytes(i) for i in s) <= limit


def test_the_estimate_bounds_the_real_json() -> None:
    """The estimate is at least the breakdown JSON as it travels (JSON inside JSON)."""
    import json

    from rotate_stats.database import breakdown_json

    bd = {'sync:é"\\ü' + str(i): 2**63 - 1 for i in range(100)}
    item = DateCommit(20000, "c", DayCounts({"failed": 0}, {"failed": bd}))
    assert commit_bytes(item) >= len(json.dumps(breakdown_json(bd)).encode())
