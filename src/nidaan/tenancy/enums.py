import enum


class BranchKind(enum.StrEnum):
    CENTRAL_LAB = "central_lab"
    COLLECTION_CENTRE = "collection_centre"
