"""The message templates in English and Hindi, WhatsApp's parameter rules, rendering.

The WhatsApp side needs each template approved in the lab's Meta account under the same
name and language code, with the body text below (``{{1}}``... are the parameters, in
order). SMS needs each (template, language) registered on the DLT portal; its DLT template
id comes from ``NIDAAN_SMS_DLT_TEMPLATE_IDS``. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from nidaan.notifications.enums import TemplateName
from nidaan.notifications.errors import TemplateParameterError

#: Languages we have texts for; anything else falls back to English.
LANGUAGES = ("en", "hi")
DEFAULT_LANGUAGE = "en"
#: WhatsApp template language codes (the locale the template was approved in).
WHATSAPP_LANGUAGE_CODES = {"en": "en", "hi": "hi"}

#: Meta's limits: 1,024 characters of body text (after substitution), and a parameter
#: may not contain a newline or tab or more than four consecutive spaces.
MAX_BODY_CHARS = 1024
MAX_PARAMETER_CHARS = 700
MAX_FILENAME_CHARS = 240
_FORBIDDEN = re.compile(r"[\n\r\t]| {5,}")
_PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")


@dataclass(frozen=True)
class TemplateText:
    body: str
    email_subject: str


@dataclass(frozen=True)
class Template:
    name: TemplateName
    #: What each positional parameter is, for people reading the code and the docs.
    parameters: tuple[str, ...]
    texts: dict[str, TemplateText]
    category: str = "UTILITY"


TEMPLATES: dict[TemplateName, Template] = {
    TemplateName.TEST_RESULT_READY: Template(
        TemplateName.TEST_RESULT_READY,
        ("patient name", "test names", "download link"),
        {
            "en": TemplateText(
                "Dear {{1}}, your report for {{2}} is ready. Download it here: {{3}} "
                "(the link works for a limited time).",
                "Your test report is ready",
            ),
            "hi": TemplateText(
                "प्रिय {{1}}, आपकी {{2}} जाँच की रिपोर्ट तैयार है। रिपोर्ट यहाँ डाउनलोड करें: "
                "{{3}} (लिंक सीमित समय तक काम करेगा)।",
                "आपकी जाँच रिपोर्ट तैयार है",
            ),
        },
    ),
    TemplateName.CRITICAL_VALUE_ALERT: Template(
        TemplateName.CRITICAL_VALUE_ALERT,
        ("patient name", "test", "value"),
        {
            "en": TemplateText(
                "URGENT: a critical result for {{1}}: {{2}} = {{3}}. Please contact the "
                "laboratory or your doctor immediately.",
                "Urgent: critical test result",
            ),
            "hi": TemplateText(
                "अत्यावश्यक: {{1}} की जाँच में गंभीर परिणाम: {{2}} = {{3}}। कृपया तुरंत "
                "प्रयोगशाला या अपने डॉक्टर से संपर्क करें।",
                "अत्यावश्यक: गंभीर जाँच परिणाम",
            ),
        },
    ),
    TemplateName.APPOINTMENT_REMINDER: Template(
        TemplateName.APPOINTMENT_REMINDER,
        ("date", "time", "place"),
        {
            "en": TemplateText(
                "Reminder: your sample collection is on {{1}} at {{2}}, at {{3}}. "
                "Please keep your prescription ready.",
                "Reminder: sample collection",
            ),
            "hi": TemplateText(
                "याद दिलाना: आपका नमूना संग्रह {{1}} को {{2}} बजे, {{3}} पर है। कृपया अपना पर्चा तैयार रखें।",
                "याद दिलाना: नमूना संग्रह",
            ),
        },
    ),
    TemplateName.PAYMENT_CONFIRMATION: Template(
        TemplateName.PAYMENT_CONFIRMATION,
        ("amount", "order number", "receipt link"),
        {
            "en": TemplateText(
                "Payment received: {{1}} for order {{2}}. Thank you. Receipt: {{3}}",
                "Payment received",
            ),
            "hi": TemplateText(
                "भुगतान प्राप्त हुआ: ऑर्डर {{2}} के लिए {{1}}। धन्यवाद। रसीद: {{3}}",
                "भुगतान प्राप्त हुआ",
            ),
        },
    ),
    TemplateName.BOOKING_OTP: Template(
        TemplateName.BOOKING_OTP,
        ("code", "minutes valid"),
        {
            "en": TemplateText(
                "{{1}} is your code to book a home sample collection. It is valid for {{2}} "
                "minutes. Do not share it with anyone.",
                "Your booking code",
            ),
            "hi": TemplateText(
                "{{1}} घर से नमूना संग्रह बुक करने के लिए आपका कोड है। यह {{2}} मिनट तक मान्य है। "
                "इसे किसी के साथ साझा न करें।",
                "आपका बुकिंग कोड",
            ),
        },
        category="AUTHENTICATION",
    ),
    TemplateName.PHLEBOTOMIST_ON_THE_WAY: Template(
        TemplateName.PHLEBOTOMIST_ON_THE_WAY,
        ("phlebotomist name", "time window", "reschedule link"),
        {
            "en": TemplateText(
                "{{1}} from the lab is on the way to collect your sample ({{2}}). "
                "Need another time? {{3}}",
                "Your phlebotomist is on the way",
            ),
            "hi": TemplateText(
                "प्रयोगशाला से {{1}} आपका नमूना लेने आ रहे हैं ({{2}})। दूसरा समय चाहिए? {{3}}",
                "नमूना लेने वाले आ रहे हैं",
            ),
        },
    ),
}


def pick_language(preferred: str | None) -> str:
    """The patient's language if we have texts in it, else English."""
    code = (preferred or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def clean_parameter(value: str) -> str:
    """Collapse whitespace runs (newlines, tabs, long spaces) to one space, as WhatsApp
    requires of a parameter; the approved body keeps its own layout."""
    return " ".join(str(value).split())


def check_parameter(value: str, position: int) -> None:
    """Refuse a parameter WhatsApp would refuse (code 132018 / 132005)."""
    if not value:
        raise TemplateParameterError(f"Parameter {position} is empty.", position=position)
    if _FORBIDDEN.search(value):
        raise TemplateParameterError(
            f"Parameter {position} has a newline, tab or more than 4 consecutive spaces.",
            position=position,
        )
    if len(value) > MAX_PARAMETER_CHARS:
        raise TemplateParameterError(
            f"Parameter {position} is longer than {MAX_PARAMETER_CHARS} characters.",
            position=position,
        )


def render(template: Template, language: str, parameters: tuple[str, ...]) -> str:
    """The body text with parameters substituted, after checking them."""
    if len(parameters) != len(template.parameters):
        raise TemplateParameterError(
            f"{template.name} takes {len(template.parameters)} parameters, got {len(parameters)}."
        )
    for position, value in enumerate(parameters, start=1):
        check_parameter(value, position)
    body = template.texts[language].body
    text = _PLACEHOLDER.sub(lambda m: parameters[int(m.group(1)) - 1], body)
    if len(text) > MAX_BODY_CHARS:
        raise TemplateParameterError(
            f"The message would be {len(text)} characters; WhatsApp allows {MAX_BODY_CHARS}."
        )
    return text


def join_names(names: list[str], language: str, limit: int = 200) -> str:
    """Test names for a message: "CBC, KFT and Lipid profile", shortened with "and N more"."""
    cleaned = [clean_parameter(n) for n in names if clean_parameter(n)]
    if not cleaned:
        return "your tests" if language == "en" else "आपकी जाँच"
    conjunction = " and " if language == "en" else " और "
    for shown in range(len(cleaned), 0, -1):
        head, rest = cleaned[:shown], len(cleaned) - shown
        if rest:
            more = f"{rest} more" if language == "en" else f"{rest} अन्य"
            text = ", ".join(head) + conjunction + more
        elif len(head) > 1:
            text = ", ".join(head[:-1]) + conjunction + head[-1]
        else:
            text = head[0]
        if len(text) <= limit:
            return text
    return cleaned[0][: limit - 1] + "…"


def format_inr(amount: Decimal) -> str:
    """₹ with Indian digit grouping: ``₹1,25,000.50``."""
    value = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    rupees, paise = f"{abs(value):.2f}".split(".")
    if len(rupees) > 3:
        head, tail = rupees[:-3], rupees[-3:]
        groups = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        rupees = ",".join([*groups, tail])
    return f"{sign}₹{rupees}.{paise}"


def safe_document_filename(name: str) -> str:
    """A patient-safe document filename that WhatsApp shows (never "null.pdf")."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "Report"
    if not cleaned.lower().endswith(".pdf"):
        cleaned += ".pdf"
    return cleaned[-MAX_FILENAME_CHARS:]
