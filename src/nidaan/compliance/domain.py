"""DPDP rules as data: the notice per purpose and language, the retention policy per record
class, and the clocks (grievance 90 days, Board 72 hours, CERT-In 6 hours). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

from nidaan.compliance.enums import DataClass, Purpose

#: Bumped whenever the notice text changes; every consent row names the version it was
#: given under (s.6(10): the lab must prove notice and consent).
NOTICE_VERSION = "2026-12-v1"

#: Rule 14(3): grievances are answered within a period not exceeding ninety days. We hold
#: every rights request to the same clock and escalate to the administrators at 60 days.
RESPONSE_DAYS = 90
ESCALATE_AFTER_DAYS = 60

#: s.8(6) and Rule 7(2): the detailed report to the Data Protection Board within 72 hours of
#: becoming aware; CERT-In Directions 20(3)/2022: cyber incidents within 6 hours.
BOARD_REPORT_HOURS = 72
CERT_IN_HOURS = 6

#: Purposes the lab may not assume: no row means "not given".
OFF_BY_DEFAULT = frozenset(
    {Purpose.ABDM_SHARING, Purpose.RESEARCH, Purpose.MARKETING}
    | {Purpose.REPORTS_WHATSAPP, Purpose.REPORTS_SMS, Purpose.REPORTS_EMAIL}
)

#: The messaging purposes are the notifications module's per-channel consent: one record,
#: read by both (the dispatcher checks it again right before every send).
CHANNEL_OF: dict[Purpose, str] = {
    Purpose.REPORTS_WHATSAPP: "whatsapp",
    Purpose.REPORTS_SMS: "sms",
    Purpose.REPORTS_EMAIL: "email",
}
PURPOSE_OF_CHANNEL = {channel: purpose for purpose, channel in CHANNEL_OF.items()}


@dataclass(frozen=True)
class PurposeNotice:
    title: str
    description: str
    data: tuple[DataClass, ...]


# The notice (s.5, Rule 3): stand-alone, itemised, per purpose, in English or a language
# of the Eighth Schedule. Languages without a translation fall back to English (said so).
NOTICES: dict[str, dict[Purpose, PurposeNotice]] = {
    "en": {
        Purpose.CARE: PurposeNotice(
            "Testing and your report",
            "We use your name, age, sex, contact details and samples to run the tests your "
            "doctor or you asked for and to issue a signed report.",
            (DataClass.IDENTITY, DataClass.CONTACT, DataClass.CLINICAL, DataClass.REPORTS),
        ),
        Purpose.REPORTS_WHATSAPP: PurposeNotice(
            "Reports on WhatsApp",
            "We send 'report ready' messages and your report PDF to your mobile number on "
            "WhatsApp (Meta Platforms processes the message).",
            (DataClass.CONTACT, DataClass.REPORTS, DataClass.MESSAGES),
        ),
        Purpose.REPORTS_SMS: PurposeNotice(
            "Reports by SMS",
            "We send 'report ready' messages to your mobile number by SMS.",
            (DataClass.CONTACT, DataClass.MESSAGES),
        ),
        Purpose.REPORTS_EMAIL: PurposeNotice(
            "Reports by e-mail",
            "We send 'report ready' messages and your report to your e-mail address.",
            (DataClass.CONTACT, DataClass.REPORTS, DataClass.MESSAGES),
        ),
        Purpose.ABDM_SHARING: PurposeNotice(
            "Sharing with your ABHA (ABDM)",
            "We link your reports to your ABHA so you can see them in your health locker and "
            "share them through the National Health Authority's network.",
            (DataClass.IDENTITY, DataClass.HEALTH_IDS, DataClass.REPORTS),
        ),
        Purpose.RESEARCH: PurposeNotice(
            "Research",
            "We may use your results, without your name or contact details, in medical research.",
            (DataClass.CLINICAL,),
        ),
        Purpose.MARKETING: PurposeNotice(
            "Offers and health camps",
            "We may tell you about health packages and camps.",
            (DataClass.CONTACT,),
        ),
    },
    "hi": {
        Purpose.CARE: PurposeNotice(
            "जाँच और आपकी रिपोर्ट",
            "आपके या आपके डॉक्टर द्वारा माँगी गई जाँच करने और हस्ताक्षरित रिपोर्ट देने के लिए हम "
            "आपका नाम, आयु, लिंग, संपर्क विवरण और नमूने उपयोग करते हैं।",
            (DataClass.IDENTITY, DataClass.CONTACT, DataClass.CLINICAL, DataClass.REPORTS),
        ),
        Purpose.REPORTS_WHATSAPP: PurposeNotice(
            "व्हाट्सऐप पर रिपोर्ट",
            "हम 'रिपोर्ट तैयार है' संदेश और आपकी रिपोर्ट की PDF आपके मोबाइल नंबर पर व्हाट्सऐप से "
            "भेजते हैं (संदेश Meta Platforms द्वारा संसाधित होता है)।",
            (DataClass.CONTACT, DataClass.REPORTS, DataClass.MESSAGES),
        ),
        Purpose.REPORTS_SMS: PurposeNotice(
            "एसएमएस से रिपोर्ट",
            "हम 'रिपोर्ट तैयार है' संदेश आपके मोबाइल नंबर पर एसएमएस से भेजते हैं।",
            (DataClass.CONTACT, DataClass.MESSAGES),
        ),
        Purpose.REPORTS_EMAIL: PurposeNotice(
            "ई-मेल से रिपोर्ट",
            "हम 'रिपोर्ट तैयार है' संदेश और आपकी रिपोर्ट आपके ई-मेल पते पर भेजते हैं।",
            (DataClass.CONTACT, DataClass.REPORTS, DataClass.MESSAGES),
        ),
        Purpose.ABDM_SHARING: PurposeNotice(
            "आपके ABHA (ABDM) से साझा करना",
            "हम आपकी रिपोर्ट आपके ABHA से जोड़ते हैं ताकि आप उन्हें अपने हेल्थ लॉकर में देख सकें "
            "और राष्ट्रीय स्वास्थ्य प्राधिकरण के नेटवर्क से साझा कर सकें।",
            (DataClass.IDENTITY, DataClass.HEALTH_IDS, DataClass.REPORTS),
        ),
        Purpose.RESEARCH: PurposeNotice(
            "अनुसंधान",
            "हम आपके परिणाम, आपके नाम या संपर्क विवरण के बिना, चिकित्सा अनुसंधान में उपयोग कर सकते हैं।",
            (DataClass.CLINICAL,),
        ),
        Purpose.MARKETING: PurposeNotice(
            "ऑफ़र और स्वास्थ्य शिविर",
            "हम आपको स्वास्थ्य पैकेज और शिविरों के बारे में बता सकते हैं।",
            (DataClass.CONTACT,),
        ),
    },
}

RIGHTS_TEXT = {
    "en": (
        "You may withdraw any consent at any time, as easily as you gave it; ask for a summary "
        "of your data, its correction or erasure (medical records are kept as the law requires); "
        "name a nominee; and complain to us (answered within 90 days) or to the Data Protection "
        "Board of India."
    ),
    "hi": (
        "आप कोई भी सहमति कभी भी उतनी ही आसानी से वापस ले सकते हैं जितनी आसानी से दी थी; अपने डेटा का "
        "सारांश, उसका सुधार या मिटाना माँग सकते हैं (चिकित्सा रिकॉर्ड कानून के अनुसार रखे जाते हैं); "
        "नामिती नियुक्त कर सकते हैं; और हमसे (90 दिनों में उत्तर) या भारतीय डेटा संरक्षण बोर्ड से "
        "शिकायत कर सकते हैं।"
    ),
}


def notice_language(preferred: str | None) -> str:
    """The language the notice is shown in: the patient's own if translated, else English."""
    return preferred if preferred in NOTICES else "en"


# ---- retention -------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRule:
    """How long one class of records is kept, why, and what happens after."""

    record_class: str
    description: str
    years: int
    basis: str
    #: "purge": the retention job deletes rows past the period (legal holds excepted);
    #: "keep": never deleted by Nidaan; listed in the dry run once past the period so a
    #: person can decide (clinical and tax records, the audit chain).
    action: str
    #: May a data principal's erasure request remove it before the period ends?
    erasable_on_request: bool


RETENTION: tuple[RetentionRule, ...] = (
    RetentionRule(
        "clinical_records",
        "Patient identity, orders, samples, results and reports",
        10,
        "MCI Regulations 2002 reg. 1.3.1 (3 years), Clinical Establishments Rules 2012 (3-5 "
        "years), NABL 112A (up to 10 years for genetic and molecular records); the longest applies",
        "keep",
        False,
    ),
    RetentionRule(
        "contact_details",
        "Mobile number, e-mail, postal address and ABHA of a patient",
        0,
        "DPDP Act s.8(7): erased when consent is withdrawn or the purpose is served",
        "keep",
        True,
    ),
    RetentionRule(
        "billing_records",
        "Invoices, receipts and payments",
        8,
        "CGST Act s.36 and Income-tax Act s.44AA (books of account)",
        "keep",
        False,
    ),
    RetentionRule(
        "consent_records",
        "Notice and consent given or withdrawn, rights requests and their answers",
        7,
        "DPDP Act s.6(10) (the lab proves notice and consent); Rules 2025 First Schedule (7 years)",
        "keep",
        False,
    ),
    RetentionRule(
        "access_log",
        "Who opened which patient's record or report",
        1,
        "DPDP Rules 2025 r.6(1)(e) and r.8(3): logs kept one year",
        "purge",
        False,
    ),
    RetentionRule(
        "message_log",
        "Messages sent to patients and doctors with their addresses and delivery history",
        1,
        "DPDP Rules 2025 r.8(3): processing logs kept one year, then erased",
        "purge",
        False,
    ),
    RetentionRule(
        "audit_log",
        "The hash-chained audit trail of every change",
        10,
        "NABL 112A (audit trail of LIS changes), kept with the clinical records it covers",
        "keep",
        False,
    ),
)
RETENTION_BY_CLASS = {rule.record_class: rule for rule in RETENTION}


def retention_cutoff(rule: RetentionRule, now: datetime) -> datetime:
    """Rows older than this are past the period. A year is an anniversary, not 365 days."""
    return now - relativedelta(years=rule.years)


def retained_until(rule: RetentionRule, last_activity: datetime) -> datetime:
    return last_activity + relativedelta(years=rule.years)


# ---- clocks ----------------------------------------------------------------------------


def response_due(received_at: datetime) -> datetime:
    return received_at + timedelta(days=RESPONSE_DAYS)


def escalation_due(received_at: datetime) -> datetime:
    return received_at + timedelta(days=ESCALATE_AFTER_DAYS)


def board_report_due(aware_at: datetime) -> datetime:
    return aware_at + timedelta(hours=BOARD_REPORT_HOURS)


def cert_in_due(aware_at: datetime) -> datetime:
    return aware_at + timedelta(hours=CERT_IN_HOURS)
