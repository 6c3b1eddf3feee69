import enum


class FilePurpose(enum.StrEnum):
    """Why a file is kept; each purpose has its own size, type, role and retention rules."""

    REPORT = "report"
    LABEL = "label"
    INVOICE = "invoice"
    RECEIPT = "receipt"
    QR = "qr"
    PRESCRIPTION = "prescription"
    CONSENT_FORM = "consent_form"
    ATTACHMENT = "attachment"
