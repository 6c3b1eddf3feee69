import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    FRONT_DESK = "front_desk"
    PHLEBOTOMIST = "phlebotomist"
    TECHNICIAN = "technician"
    PATHOLOGIST = "pathologist"
    BILLING = "billing"
    AUDITOR = "auditor"


ALL_ROLES: frozenset[str] = frozenset(Role)
