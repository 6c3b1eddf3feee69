"""E-invoice errors, each with a stable code."""

from nidaan.kit.errors import Conflict, InvalidInput, NidaanError, NotFound


class EInvoiceNotFound(NotFound):
    code = "einvoice_not_found"
    title = "The invoice has no e-invoice"


class NotEligible(Conflict):
    code = "einvoice_not_applicable"
    title = "This document gets no IRN"


class EInvoiceInvalid(InvalidInput):
    """The schema-1.1 JSON breaks a rule; ``violations`` name each field and rule. Nothing
    was sent to the IRP."""

    code = "einvoice_invalid"
    title = "The e-invoice breaks a schema rule"


class EInvoiceNotConfigured(Conflict):
    code = "einvoice_not_configured"
    title = "E-invoicing is not set up"


class InvalidEInvoiceSettings(InvalidInput):
    code = "invalid_einvoice_settings"
    title = "Invalid e-invoice settings"


class CancelWindowClosed(Conflict):
    code = "einvoice_cancel_window_closed"
    title = "The IRN can no longer be cancelled"


class NotCancellable(Conflict):
    code = "einvoice_not_cancellable"
    title = "The e-invoice cannot be cancelled"


class IrpRefused(NidaanError):
    status_code = 502
    code = "irp_refused"
    title = "The IRP refused the request"


class IrpUnavailableError(NidaanError):
    status_code = 503
    code = "irp_unavailable"
    title = "The IRP did not answer"
