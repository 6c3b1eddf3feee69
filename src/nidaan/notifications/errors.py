"""Errors of the notifications module."""

from __future__ import annotations

from nidaan.kit.errors import Conflict, InvalidInput, NidaanError, NotFound, Unauthorized


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    title = "No such notification"


class TemplateParameterError(InvalidInput):
    code = "template_parameter_invalid"
    title = "Template parameter not allowed by WhatsApp"


class WebhookSignatureMissing(Unauthorized):
    code = "webhook_signature_missing"
    title = "Webhook signature missing"


class WebhookSignatureInvalid(NidaanError):
    status_code = 403
    code = "webhook_signature_invalid"
    title = "Webhook signature invalid"


class WebhookNotConfigured(NidaanError):
    status_code = 503
    code = "webhook_not_configured"
    title = "Webhook not configured"


class ResendNotAllowed(Conflict):
    """A manual resend the patient's consent or record does not allow."""

    code = "resend_not_allowed"
    title = "The report cannot be sent on this channel"


class ResendAlreadyQueued(Conflict):
    code = "resend_already_queued"
    title = "A resend of this report on this channel is already waiting"
