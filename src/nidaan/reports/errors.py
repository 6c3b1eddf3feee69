"""Errors of the reports module."""

from nidaan.kit.errors import NidaanError, NotFound


class ReportNotReady(NotFound):
    code = "report_not_ready"
    title = "Report not ready"


class ReportNotFound(NotFound):
    code = "report_not_found"
    title = "No such report"


class ReportIntegrityError(NidaanError):
    """The stored PDF no longer matches the SHA-256 recorded when it was issued."""

    status_code = 500
    code = "report_integrity_failed"
    title = "Stored report does not match its checksum"


class NothingPending(NidaanError):
    """Every test of the order is verified: the final report is issued on its own."""

    status_code = 409
    code = "report_nothing_pending"
    title = "No test is pending"


class ReportPdfDeleted(NidaanError):
    """An administrator deleted this version's PDF (files API); it is kept until purged."""

    status_code = 410
    code = "report_pdf_deleted"
    title = "Report PDF deleted"
