import enum

from nidaan.catalog.enums import Sex

__all__ = ["DuplicateFlagStatus", "Sex"]


class DuplicateFlagStatus(enum.StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"  # a person decided they are different people
    MERGED = "merged"  # resolved by merging the two records
