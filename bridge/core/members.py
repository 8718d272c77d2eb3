"""Compact storage of large groups' member lists (issue 15; being built).

``compact_group`` is the one place a group enters long-lived storage (the contact book, the
simulated world, the adapter's replica); for now it returns the group unchanged.
"""

from __future__ import annotations

from bridge.core.model import Group


def compact_group(group: Group) -> Group:
    """The group as it should be kept in memory for a long time."""
    return group
