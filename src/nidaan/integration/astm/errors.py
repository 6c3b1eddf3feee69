"""Errors of the ASTM layer."""

from __future__ import annotations

from nidaan.kit.errors import NidaanError


class ASTMError(NidaanError):
    """Base of every ASTM failure."""

    status_code = 422
    code = "astm_error"
    title = "ASTM error"


class RecordSyntaxError(ASTMError):
    """A record or message that cannot be parsed (E1394)."""

    code = "astm_record_syntax"
    title = "Malformed ASTM record"


class ASTMSendError(ASTMError):
    """A transfer that the sender had to give up (E1381): no ACK, too many NAKs, line busy."""

    status_code = 502
    code = "astm_send_failed"
    title = "ASTM transfer failed"


class ASTMNotConnected(ASTMError):
    """No link to send on."""

    status_code = 503
    code = "astm_not_connected"
    title = "ASTM link not connected"
