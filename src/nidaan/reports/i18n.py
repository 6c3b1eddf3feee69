"""Printed labels of the report in each supported language (test names stay as catalogued)."""

from __future__ import annotations

from typing import Final

LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "LABORATORY TEST REPORT",
        "patient": "Patient",
        "age_sex": "Age / Sex",
        "mrn": "MRN",
        "abha": "ABHA",
        "accession": "Accession",
        "referred_by": "Referred by",
        "order": "Order no.",
        "priority": "Priority",
        "collected": "Collected",
        "received": "Received",
        "reported": "Reported",
        "report_no": "Report no.",
        "version": "Version",
        "samples": "Samples",
        "specimen": "Specimen",
        "test": "Test",
        "result": "Result",
        "flag": "Flag",
        "unit": "Unit",
        "reference": "Reference interval",
        "method": "Method",
        "comment": "Comment",
        "critical": "CRITICAL",
        "verified_by": "Verified and authorised by",
        "signed_electronically": "Electronically signed",
        "page": "Page {page} of {pages}",
        "end_of_report": "*** End of report ***",
        "amended_banner": "AMENDED REPORT",
        "amended_mark": "AMENDED",
        "amended_replaces": (
            "This report replaces report {number} (version {version}) issued {issued}."
        ),
        "amended_reason": "Reason for amendment",
        "scan_to_verify": "Scan to verify this report",
        "legend": (
            "H = above, L = below the reference interval; HH / LL = critical value, "
            "notified to the referring clinician. Abnormal results are printed in bold."
        ),
        "not_accredited": (
            "The tests on this page are not within the laboratory's scope of accreditation."
        ),
        "sex_male": "Male",
        "sex_female": "Female",
        "sex_other": "Other",
        "sex_unknown": "—",
        "priority_routine": "Routine",
        "priority_urgent": "Urgent",
        "priority_stat": "STAT",
        "phone": "Phone",
        "email": "E-mail",
        "ist": "IST",
    },
    "hi": {
        "title": "प्रयोगशाला परीक्षण रिपोर्ट",
        "patient": "रोगी",
        "age_sex": "आयु / लिंग",
        "mrn": "रोगी पंजीकरण सं. (MRN)",
        "abha": "आभा (ABHA)",
        "accession": "नमूना सं.",
        "referred_by": "संदर्भित चिकित्सक",
        "order": "ऑर्डर सं.",
        "priority": "प्राथमिकता",
        "collected": "नमूना संग्रह",
        "received": "नमूना प्राप्त",
        "reported": "रिपोर्ट जारी",
        "report_no": "रिपोर्ट सं.",
        "version": "संस्करण",
        "samples": "नमूने",
        "specimen": "नमूना प्रकार",
        "test": "परीक्षण",
        "result": "परिणाम",
        "flag": "संकेत",
        "unit": "इकाई",
        "reference": "संदर्भ सीमा",
        "method": "विधि",
        "comment": "टिप्पणी",
        "critical": "गंभीर",
        "verified_by": "सत्यापित एवं अधिकृत हस्ताक्षरकर्ता",
        "signed_electronically": "इलेक्ट्रॉनिक हस्ताक्षरित",
        "page": "पृष्ठ {page} / {pages}",
        "end_of_report": "*** रिपोर्ट समाप्त ***",
        "amended_banner": "संशोधित रिपोर्ट (AMENDED REPORT)",
        "amended_mark": "संशोधित",
        "amended_replaces": (
            "यह रिपोर्ट {issued} को जारी रिपोर्ट {number} (संस्करण {version}) का स्थान लेती है।"
        ),
        "amended_reason": "संशोधन का कारण",
        "scan_to_verify": "रिपोर्ट की प्रामाणिकता जाँचने के लिए स्कैन करें",
        "legend": (
            "H = संदर्भ सीमा से अधिक, L = कम; HH / LL = गंभीर मान, संदर्भित चिकित्सक को सूचित। "
            "असामान्य परिणाम मोटे अक्षरों में छपे हैं।"
        ),
        "not_accredited": "इस पृष्ठ के परीक्षण प्रयोगशाला के प्रत्यायन (NABL) के दायरे से बाहर हैं।",
        "sex_male": "पुरुष",
        "sex_female": "महिला",
        "sex_other": "अन्य",
        "sex_unknown": "—",
        "priority_routine": "सामान्य",
        "priority_urgent": "अत्यावश्यक",
        "priority_stat": "तत्काल (STAT)",
        "phone": "फ़ोन",
        "email": "ई-मेल",
        "ist": "IST",
    },
}


def labels(language: str) -> dict[str, str]:
    """The label set for ``language`` (English keys fill any gap)."""
    return {**LABELS["en"], **LABELS.get(language, {})}
