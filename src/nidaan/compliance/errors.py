"""Errors of the compliance (DPDP) module."""

from __future__ import annotations

from nidaan.kit.errors import Conflict, InvalidInput, NotFound


class RequestNotFound(NotFound):
    code = "dpdp_request_not_found"
    title = "No such rights request"


class RequestClosed(Conflict):
    code = "dpdp_request_closed"
    title = "The request is already closed"


class BreachNotFound(NotFound):
    code = "breach_not_found"
    title = "No such breach"


class LegalHoldNotFound(NotFound):
    code = "legal_hold_not_found"
    title = "No such legal hold"


class PrivacyLinkInvalid(NotFound):
    code = "privacy_link_invalid"
    title = "This privacy link is unknown or has expired"


class InvalidCorrection(InvalidInput):
    code = "dpdp_correction_invalid"
    title = "The correction cannot be applied"
