"""Billing errors, each with a stable code."""

from nidaan.kit.errors import Conflict, InvalidInput, NotFound


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"
    title = "Invoice not found"


class OrderAlreadyInvoiced(Conflict):
    code = "order_already_invoiced"
    title = "The order already has an invoice"


class OrderOnClientAccount(Conflict):
    code = "order_on_client_account"
    title = "The order is billed to a client's monthly account"


class InvoiceNotPayable(Conflict):
    code = "invoice_not_payable"
    title = "The invoice does not accept payments"


class Overpayment(Conflict):
    code = "overpayment"
    title = "More than the balance due"


class OverRefund(Conflict):
    code = "over_refund"
    title = "More than what was paid"


class InvoiceHasPayments(Conflict):
    code = "invoice_has_payments"
    title = "Refund the payments first"


class InvoiceNotPending(Conflict):
    code = "invoice_not_pending_approval"
    title = "The invoice is not waiting for a discount approval"


class InvoiceCancelled(Conflict):
    code = "invoice_cancelled"
    title = "The invoice is cancelled"


class CreditLimitExceeded(Conflict):
    code = "credit_limit_exceeded"
    title = "The client's credit limit would be exceeded"


class NothingToInvoice(Conflict):
    code = "nothing_to_invoice"
    title = "No orders to invoice"


class UtrAlreadyUsed(Conflict):
    code = "utr_already_used"
    title = "This UPI transaction is already recorded"


class BillingNotConfigured(Conflict):
    code = "billing_not_configured"
    title = "Billing settings are incomplete"


class CodeTaken(Conflict):
    code = "code_taken"
    title = "Code already used"


class InvalidBillingInput(InvalidInput):
    code = "invalid_billing_input"
