import enum


class Channel(enum.StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"


class TemplateName(enum.StrEnum):
    """The message templates (WhatsApp template names as approved in the Meta account)."""

    TEST_RESULT_READY = "test_result_ready"
    CRITICAL_VALUE_ALERT = "critical_value_alert"
    APPOINTMENT_REMINDER = "appointment_reminder"
    PAYMENT_CONFIRMATION = "payment_confirmation"
    BOOKING_OTP = "booking_otp"
    PHLEBOTOMIST_ON_THE_WAY = "phlebotomist_on_the_way"


class MessageKind(enum.StrEnum):
    """A template message, or the report PDF as a WhatsApp document message."""

    TEMPLATE = "template"
    DOCUMENT = "document"


class RecipientType(enum.StrEnum):
    PATIENT = "patient"
    DOCTOR = "doctor"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its send job (maybe a retry later)
    SENDING = "sending"  # handed to the provider right now
    SENT = "sent"  # accepted by the provider (WhatsApp: a wamid)
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"  # definitely not delivered (error code kept)
    UNCERTAIN = "uncertain"  # the provider may have it; never re-sent automatically
    SKIPPED = "skipped"  # not sent: no consent, no address, channel not configured
