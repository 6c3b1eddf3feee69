import enum


class Purpose(enum.StrEnum):
    """What a patient's data is used for; each is consented to (or withdrawn) on its own."""

    CARE = "care"  # testing the samples and issuing the report
    REPORTS_WHATSAPP = "reports_whatsapp"  # reports and alerts on WhatsApp
    REPORTS_SMS = "reports_sms"
    REPORTS_EMAIL = "reports_email"
    ABDM_SHARING = "abdm_sharing"  # linking reports to the patient's ABHA
    RESEARCH = "research"  # de-identified research, off by default
    MARKETING = "marketing"  # offers and health camps, off by default


class RequestKind(enum.StrEnum):
    ACCESS = "access"  # s.11: a summary of what we hold, why, with whom shared
    CORRECTION = "correction"  # s.12
    ERASURE = "erasure"  # s.12(3), within the legal retention of medical records
    GRIEVANCE = "grievance"  # s.13
    EXPORT = "export"  # a copy of the reports (FHIR bundle and PDFs)


class RequestStatus(enum.StrEnum):
    OPEN = "open"
    ESCALATED = "escalated"  # unanswered past the escalation point
    COMPLETED = "completed"
    REFUSED = "refused"  # with the reason (e.g. retained under law, legal hold)


class ConsentSource(enum.StrEnum):
    DESK = "desk"
    PATIENT_LINK = "patient_link"


class BreachStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DataClass(enum.StrEnum):
    """Classes of personal data, for breach scoping and the access summary."""

    IDENTITY = "identity"  # name, sex, date of birth, MRN
    CONTACT = "contact"  # mobile, e-mail, address
    HEALTH_IDS = "health_ids"  # ABHA number and address
    CLINICAL = "clinical"  # orders, samples, results
    REPORTS = "reports"  # report PDFs
    BILLING = "billing"  # invoices and payments
    MESSAGES = "messages"  # notifications sent
