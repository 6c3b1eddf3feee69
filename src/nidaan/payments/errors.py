"""Payment errors, each with a stable code (gateway errors live in ``gateways.base``)."""

from nidaan.kit.errors import Conflict, InvalidInput, NidaanError, NotFound


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "Payment not found"


class WebhookSignatureInvalid(NidaanError):
    status_code = 400
    code = "webhook_signature_invalid"
    title = "Webhook signature does not verify"


class GatewayNotEnabled(Conflict):
    code = "gateway_not_enabled"
    title = "The gateway is not enabled for this lab"


class NothingDue(Conflict):
    code = "nothing_due"
    title = "Nothing is due on this invoice"


class NotRefundable(Conflict):
    code = "not_refundable"
    title = "The payment cannot be refunded"


class NotHeld(Conflict):
    code = "payment_not_held"
    title = "The payment is not held for review"


class NotCapturable(Conflict):
    code = "not_capturable"
    title = "The payment is not waiting for capture"


class InvalidPaymentInput(InvalidInput):
    code = "invalid_payment_input"
