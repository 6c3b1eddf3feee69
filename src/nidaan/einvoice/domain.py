"""Pure e-invoice rules (fact sheet section 4): who must e-invoice, the schema-1.1 JSON built
from one of our invoices, the schema's validations, the IRN formula, the signed QR's contents
and the 24-hour cancellation window.

Nothing here touches the database or the network. Money stays ``Decimal`` (rupees, two
decimals) up to the wire, where ``to_json`` writes each amount as a JSON number literal.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from nidaan.billing.domain import (
    GSTIN_PATTERN,
    STATE_NAMES,
    financial_year,
    gstin_check_character,
)

SCHEMA_VERSION = "1.1"
ZERO = Decimal("0.00")
PAISA = Decimal("0.01")
#: TotInvVal may differ from the sum of its parts by this much (NIC's reported grace);
#: our own documents match to the paisa, this only bounds what the check accepts.
TOTAL_TOLERANCE = Decimal("2.00")
#: A line's tax may differ from AssAmt x rate by this much (rounding per tax head).
TAX_TOLERANCE = Decimal("1.00")
MAX_ITEMS = 1000
CANCEL_WINDOW = timedelta(hours=24)
#: AATO of 10 crore and above: a document older than 30 days cannot get an IRN (1 Apr 2025).
REPORTING_LIMIT = timedelta(days=30)

DOC_NO_PATTERN = re.compile(r"^([A-Z1-9]{1}[A-Z0-9/-]{0,15})$")
DATE_PATTERN = re.compile(r"^\d{2}/\d{2}/\d{4}$")
HSN_PATTERN = re.compile(r"^\d{4,8}$")
PIN_PATTERN = re.compile(r"^[1-9]\d{5}$")
SUPPLY_TYPES = frozenset({"B2B", "SEZWP", "SEZWOP", "EXPWP", "EXPWOP", "DEXP"})
DOC_TYPES = frozenset({"INV", "CRN", "DBN"})
CANCEL_REASONS = {
    "1": "Duplicate",
    "2": "Data entry mistake",
    "3": "Order cancelled",
    "4": "Others",
}
GST_RATES = frozenset(
    Decimal(r) for r in ("0", "0.1", "0.25", "1", "1.5", "3", "5", "6", "12", "18", "28", "40")
)
#: State codes the IRP accepts for Stcd/Pos (NIC master): ours plus 96 "Other Countries".
STATE_CODES = frozenset(STATE_NAMES) | {"96"}
#: The first digit of a PIN is its postal zone; each state lies in these zones. (A coarser
#: check than NIC's 3-digit table, but it catches a PIN typed for the wrong state.)
PIN_ZONES: dict[str, str] = {
    "01": "1", "02": "1", "03": "1", "04": "1", "06": "1", "07": "1", "38": "1",
    "05": "2", "09": "2",
    "08": "3", "24": "3", "26": "3",
    "22": "4", "23": "4", "27": "4", "30": "4",
    "29": "5", "36": "5", "37": "5",
    "32": "6", "33": "6", "31": "6", "34": "56",
    "11": "7", "12": "7", "13": "7", "14": "7", "15": "7", "16": "7", "17": "7",
    "18": "7", "19": "7", "21": "7", "35": "7",
    "10": "8", "20": "8",
}  # fmt: skip
_TEXT_FORBIDDEN = re.compile(r'["\\]')


class EInvoiceStatus(enum.StrEnum):
    PENDING = "pending"  # the IRP did not answer yet; the retry job completes it
    GENERATED = "generated"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # the IRP refused the document (its error is stored)


# ----------------------------------------------------------------------------- GSTIN


def gstin_problem(gstin: str, *, sandbox: bool = False) -> str | None:
    """Why ``gstin`` is not a valid normal-taxpayer GSTIN (None when it is). ``sandbox``
    skips the mod-36 check digit: NIC's own test GSTINs do not pass it."""
    if not GSTIN_PATTERN.fullmatch(gstin):
        return "A GSTIN is 15 characters: state code, PAN, entity number, Z, check character."
    if gstin[:2] not in STATE_NAMES:
        return f"{gstin[:2]} is not a GST state code."
    if not sandbox and gstin_check_character(gstin[:14]) != gstin[14]:
        return "The GSTIN's check character does not match (a typing mistake?)."
    return None


def _sandbox_gstin_problem(gstin: str) -> str | None:
    # NIC's test GSTINs (02AMBPG7773M002) break the pattern's 14th-character rule too.
    if not re.fullmatch(r"^[0-9]{2}[A-Z0-9]{13}$", gstin):
        return "A GSTIN is 15 characters: a 2-digit state code then 13 letters or digits."
    if gstin[:2] not in STATE_NAMES:
        return f"{gstin[:2]} is not a GST state code."
    return None


def check_gstin(gstin: str, *, sandbox: bool = False) -> str | None:
    return _sandbox_gstin_problem(gstin) if sandbox else gstin_problem(gstin)


# ----------------------------------------------------------------------------- IRN


def irn_for(seller_gstin: str, document_date: date, doc_type: str, doc_no: str) -> str:
    """``sha256(SupplierGSTIN + FY("YYYY-YY") + DocType + DocNo)`` as lowercase hex."""
    text = f"{seller_gstin}{financial_year(document_date)}{doc_type}{doc_no}"
    return hashlib.sha256(text.encode()).hexdigest()


def parse_doc_date(text: str) -> date:
    return datetime.strptime(text, "%d/%m/%Y").date()


def doc_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def cancel_deadline(acknowledged_at: datetime) -> datetime:
    return acknowledged_at + CANCEL_WINDOW


# ----------------------------------------------------------------------------- eligibility


@dataclass(frozen=True)
class EligibilityFacts:
    """What the rule looks at, taken from the invoice and the organisation's settings."""

    enabled: bool
    kind: str  # order | consolidated | credit_note | debit_note
    status: str  # issued | pending_approval | cancelled
    seller_gstin: str | None
    buyer_gstin: str | None
    treatments: tuple[str, ...]
    document_date: date | None
    today: date
    thirty_day_limit: bool = False
    original_status: str | None = None  # credit/debit notes: the invoice it corrects


def ineligibility(facts: EligibilityFacts) -> str | None:
    """Why this document gets no IRN (None when it must get one)."""
    if not facts.enabled:
        return "E-invoicing is not enabled for this organisation (PUT /einvoice/settings)."
    if facts.status != "issued":
        return f"Only issued documents get an IRN; this one is {facts.status}."
    if not facts.seller_gstin:
        return "The invoice was issued without the lab's GSTIN."
    if not facts.buyer_gstin:
        return "The buyer has no GSTIN: B2C documents are not reported to the IRP."
    if not any(t in ("taxable", "zero_rated") for t in facts.treatments):
        return (
            "Every line is exempt or nil-rated (a bill of supply): the IRP needs at least one "
            "taxable or zero-rated line."
        )
    if facts.document_date is None:
        return "The document has no date yet."
    if facts.thirty_day_limit and facts.today - facts.document_date > REPORTING_LIMIT:
        return (
            f"The document is dated {facts.document_date:%d/%m/%Y}: the IRP refuses documents "
            "older than 30 days for organisations with an AATO of 10 crore or more."
        )
    return None


# ----------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Party:
    gstin: str
    legal_name: str
    address: str
    location: str
    pincode: str | None
    state_code: str
    trade_name: str | None = None


@dataclass(frozen=True)
class Item:
    description: str
    sac: str
    quantity: int
    unit_price: Decimal
    gross_amount: Decimal
    discount_amount: Decimal
    taxable_value: Decimal
    gst_rate: Decimal
    cgst_amount: Decimal
    sgst_amount: Decimal
    igst_amount: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class Document:
    """One of our invoices or credit notes as the e-invoice sees it (amounts positive)."""

    doc_type: str  # INV | CRN | DBN
    number: str
    day: date
    seller: Party
    buyer: Party
    place_of_supply: str
    items: tuple[Item, ...]
    round_off: Decimal
    grand_total: Decimal
    preceding: tuple[tuple[str, date], ...] = field(default_factory=tuple)


def split_address(address: str | None) -> tuple[str, str | None]:
    """Addr1 and Addr2 (100 characters each), broken at a comma where possible."""
    text = " ".join((address or "").split())
    if len(text) <= 100:
        return text, None
    cut = text.rfind(",", 0, 100)
    cut = cut if cut > 0 else 100
    first, rest = text[:cut].strip(" ,"), text[cut:].strip(" ,")
    return first, (rest[:100] or None)


def location_of(address: str | None) -> str:
    """The town of an address written ``..., Pune``: its last comma-separated part."""
    parts = [p.strip() for p in (address or "").split(",") if p.strip()]
    return parts[-1] if parts else ""


def _party(party: Party, *, buyer: bool, pos: str | None = None) -> dict[str, Any]:
    addr1, addr2 = split_address(party.address)
    out: dict[str, Any] = {"Gstin": party.gstin, "LglNm": party.legal_name}
    if party.trade_name:
        out["TrdNm"] = party.trade_name
    if buyer:
        out["Pos"] = pos
    out["Addr1"] = addr1
    if addr2:
        out["Addr2"] = addr2
    out["Loc"] = party.location
    out["Pin"] = int(party.pincode) if party.pincode and party.pincode.isdigit() else None
    out["Stcd"] = party.state_code
    return out


def build(document: Document) -> dict[str, Any]:
    """The schema-1.1 JSON for ``document`` (validate it with ``validate`` before sending)."""
    items = []
    for index, item in enumerate(document.items, start=1):
        items.append(
            {
                "SlNo": str(index),
                "PrdDesc": item.description[:300],
                "IsServc": "Y" if item.sac.startswith("99") else "N",
                "HsnCd": item.sac,
                "Qty": Decimal(item.quantity),
                "Unit": "OTH",
                "UnitPrice": item.unit_price,
                "TotAmt": item.gross_amount,
                "Discount": item.discount_amount,
                "AssAmt": item.taxable_value,
                "GstRt": item.gst_rate.normalize() if item.gst_rate else Decimal(0),
                "IgstAmt": item.igst_amount,
                "CgstAmt": item.cgst_amount,
                "SgstAmt": item.sgst_amount,
                "CesRt": Decimal(0),
                "CesAmt": ZERO,
                "TotItemVal": item.line_total,
            }
        )

    def total(key: str) -> Decimal:
        return sum((i[key] for i in items), ZERO)

    payload: dict[str, Any] = {
        "Version": SCHEMA_VERSION,
        "TranDtls": {"TaxSch": "GST", "SupTyp": "B2B", "RegRev": "N", "IgstOnIntra": "N"},
        "DocDtls": {"Typ": document.doc_type, "No": document.number, "Dt": doc_date(document.day)},
        "SellerDtls": _party(document.seller, buyer=False),
        "BuyerDtls": _party(document.buyer, buyer=True, pos=document.place_of_supply),
        "ItemList": items,
        "ValDtls": {
            "AssVal": total("AssAmt"),
            "CgstVal": total("CgstAmt"),
            "SgstVal": total("SgstAmt"),
            "IgstVal": total("IgstAmt"),
            "CesVal": ZERO,
            "StCesVal": ZERO,
            "Discount": ZERO,
            "OthChrg": ZERO,
            "RndOffAmt": document.round_off,
            "TotInvVal": document.grand_total,
        },
    }
    if document.preceding:
        payload["RefDtls"] = {
            "PrecDocDtls": [{"InvNo": no, "InvDt": doc_date(day)} for no, day in document.preceding]
        }
    return payload


def to_json(payload: Any) -> str:
    """Compact JSON with every ``Decimal`` written as the number it is (never via float)."""
    if isinstance(payload, Mapping):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in payload.items()) + "}"
    if isinstance(payload, list | tuple):
        return "[" + ",".join(to_json(v) for v in payload) + "]"
    if isinstance(payload, Decimal):
        return format(payload, "f")
    return json.dumps(payload, ensure_ascii=False)


def from_json(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Violation:
    """A schema rule the document breaks: where, which rule, and in words."""

    field: str
    rule: str
    message: str


class _Checker:
    def __init__(self, *, sandbox: bool) -> None:
        self.sandbox = sandbox
        self.found: list[Violation] = []

    def add(self, path: str, rule: str, message: str) -> None:
        self.found.append(Violation(path, rule, message))

    def required(self, obj: Mapping[str, Any], path: str, keys: Iterable[str]) -> None:
        for key in keys:
            value = obj.get(key)
            if value is None or (isinstance(value, str | list) and not value):
                self.add(f"{path}.{key}", "required", f"{path}.{key} is mandatory.")

    def text(self, obj: Mapping[str, Any], path: str, key: str, low: int, high: int) -> None:
        value = obj.get(key)
        if value is None:
            return
        where = f"{path}.{key}"
        if not isinstance(value, str):
            self.add(where, "type", f"{where} must be a string.")
        elif not low <= len(value) <= high:
            self.add(where, "length", f"{where} must be {low} to {high} characters.")
        elif _TEXT_FORBIDDEN.search(value):
            self.add(where, "characters", f'{where} may not contain " or \\.')

    def money(self, obj: Mapping[str, Any], path: str, key: str, places: int = 2) -> Decimal:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            return ZERO
        if not isinstance(value, Decimal | int) or isinstance(value, bool):
            self.add(where, "number", f"{where} must be a number.")
            return ZERO
        amount = Decimal(value)
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -places:
            self.add(where, "decimals", f"{where} allows at most {places} decimals.")
        if amount < 0:
            self.add(where, "non_negative", f"{where} cannot be negative.")
        return amount

    def gstin(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            return
        problem = check_gstin(value, sandbox=self.sandbox)
        if problem:
            self.add(where, "gstin", problem)

    def pin(self, party: Mapping[str, Any], path: str) -> None:
        pin = party.get("Pin")
        if pin is None:
            return
        text = str(pin)
        if not PIN_PATTERN.fullmatch(text):
            self.add(f"{path}.Pin", "pin_format", "A PIN code is 6 digits, not starting with 0.")
            return
        zones = PIN_ZONES.get(str(party.get("Stcd")))
        if zones and text[0] not in zones:
            self.add(
                f"{path}.Pin",
                "pin_state",
                f"PIN {text} is not in state {party.get('Stcd')} (postal zone {text[0]}).",
            )

    def state(self, value: Any, where: str) -> None:
        if value is not None and value not in STATE_CODES:
            self.add(where, "state_code", f"{value!r} is not a state code of the NIC master.")


def validate(payload: Mapping[str, Any], *, sandbox: bool = False) -> list[Violation]:
    """Every schema-1.1 rule ``payload`` breaks (empty: it may be sent)."""
    check = _Checker(sandbox=sandbox)
    check.required(
        payload,
        "Root",
        ("Version", "TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls"),
    )
    if payload.get("Version") not in (None, SCHEMA_VERSION):
        check.add("Root.Version", "enum", f"Version must be {SCHEMA_VERSION!r}.")
    tran = payload.get("TranDtls") or {}
    check.required(tran, "TranDtls", ("TaxSch", "SupTyp"))
    if tran.get("TaxSch") not in (None, "GST"):
        check.add("TranDtls.TaxSch", "enum", "TaxSch must be GST.")
    if tran.get("SupTyp") is not None and tran["SupTyp"] not in SUPPLY_TYPES:
        check.add("TranDtls.SupTyp", "enum", f"SupTyp must be one of {sorted(SUPPLY_TYPES)}.")
    for flag in ("RegRev", "IgstOnIntra"):
        if tran.get(flag) not in (None, "Y", "N"):
            check.add(f"TranDtls.{flag}", "enum", f"{flag} is Y or N.")

    doc = payload.get("DocDtls") or {}
    check.required(doc, "DocDtls", ("Typ", "No", "Dt"))
    if doc.get("Typ") is not None and doc["Typ"] not in DOC_TYPES:
        check.add("DocDtls.Typ", "enum", "Typ is INV, CRN or DBN.")
    number = doc.get("No")
    if isinstance(number, str) and not DOC_NO_PATTERN.fullmatch(number):
        check.add(
            "DocDtls.No",
            "doc_no_pattern",
            "The document number is 1-16 characters of A-Z, 0-9, / and -, not starting with "
            "0, / or - (no lower case).",
        )
    day = None
    if isinstance(doc.get("Dt"), str):
        try:
            if not DATE_PATTERN.fullmatch(doc["Dt"]):
                raise ValueError
            day = parse_doc_date(doc["Dt"])
        except ValueError:
            check.add("DocDtls.Dt", "date_format", "Dates are dd/mm/yyyy.")

    seller = payload.get("SellerDtls") or {}
    buyer = payload.get("BuyerDtls") or {}
    check.required(seller, "SellerDtls", ("Gstin", "LglNm", "Addr1", "Loc", "Pin", "Stcd"))
    check.required(buyer, "BuyerDtls", ("Gstin", "LglNm", "Pos", "Addr1", "Loc", "Stcd"))
    for path, party in (("SellerDtls", seller), ("BuyerDtls", buyer)):
        check.gstin(party.get("Gstin"), f"{path}.Gstin")
        check.text(party, path, "LglNm", 3, 100)
        check.text(party, path, "TrdNm", 3, 100)
        check.text(party, path, "Addr1", 1, 100)
        check.text(party, path, "Addr2", 3, 100)
        check.text(party, path, "Loc", 3, 50)
        check.state(party.get("Stcd"), f"{path}.Stcd")
        check.pin(party, path)
        gstin, stcd = party.get("Gstin"), party.get("Stcd")
        if isinstance(gstin, str) and stcd is not None and gstin[:2] != stcd:
            check.add(f"{path}.Stcd", "state_matches_gstin", "Stcd must be the GSTIN's state.")
    check.state(buyer.get("Pos"), "BuyerDtls.Pos")
    if seller.get("Gstin") and seller.get("Gstin") == buyer.get("Gstin"):
        check.add("BuyerDtls.Gstin", "distinct_parties", "Seller and buyer GSTIN are the same.")

    items = payload.get("ItemList") or []
    if len(items) > MAX_ITEMS:
        check.add("ItemList", "max_items", f"At most {MAX_ITEMS} items.")
    intra = seller.get("Stcd") is not None and seller.get("Stcd") == buyer.get("Pos")
    sums = dict.fromkeys(("AssAmt", "CgstAmt", "SgstAmt", "IgstAmt", "CesAmt", "TotItemVal"), ZERO)
    serials: set[Any] = set()
    for index, item in enumerate(items):
        _check_item(check, item, f"ItemList[{index}]", intra, serials, sums)

    values = payload.get("ValDtls") or {}
    check.required(values, "ValDtls", ("AssVal", "TotInvVal"))
    for key, item_key in (
        ("AssVal", "AssAmt"),
        ("CgstVal", "CgstAmt"),
        ("SgstVal", "SgstAmt"),
        ("IgstVal", "IgstAmt"),
        ("CesVal", "CesAmt"),
    ):
        stated = check.money(values, "ValDtls", key)
        if stated != sums[item_key]:
            check.add(
                f"ValDtls.{key}",
                "total_matches_items",
                f"ValDtls.{key} {stated} is not the sum of the items' {item_key} "
                f"({sums[item_key]}).",
            )
    round_off = values.get("RndOffAmt") or ZERO
    if isinstance(round_off, Decimal | int) and not Decimal("-99.99") <= round_off <= Decimal(
        "99.99"
    ):
        check.add("ValDtls.RndOffAmt", "round_off_range", "RndOffAmt is between -99.99 and 99.99.")
    parts = (
        sum(sums[k] for k in ("AssAmt", "CgstAmt", "SgstAmt", "IgstAmt", "CesAmt"))
        + check.money(values, "ValDtls", "StCesVal")
        + check.money(values, "ValDtls", "OthChrg")
        - check.money(values, "ValDtls", "Discount")
        + (round_off if isinstance(round_off, Decimal | int) else ZERO)
    )
    grand = check.money(values, "ValDtls", "TotInvVal")
    by_items = (
        sums["TotItemVal"]
        + check.money(values, "ValDtls", "OthChrg")
        - check.money(values, "ValDtls", "Discount")
        + (round_off if isinstance(round_off, Decimal | int) else ZERO)
    )
    if abs(grand - by_items) > TOTAL_TOLERANCE:
        check.add(
            "ValDtls.TotInvVal",
            "invoice_total_items",
            f"TotInvVal {grand} differs from the items' TotItemVal + charges - discount + "
            f"round-off ({by_items}) by more than {TOTAL_TOLERANCE}.",
        )
    if abs(grand - parts) > TOTAL_TOLERANCE:
        check.add(
            "ValDtls.TotInvVal",
            "invoice_total",
            f"TotInvVal {grand} differs from AssVal + taxes + charges - discount + round-off "
            f"({parts}) by more than {TOTAL_TOLERANCE}.",
        )
    if day is not None and doc.get("Typ") in ("CRN", "DBN"):
        preceding = (payload.get("RefDtls") or {}).get("PrecDocDtls") or []
        for index, ref in enumerate(preceding):
            if not isinstance(ref.get("InvNo"), str) or not ref["InvNo"]:
                check.add(f"RefDtls.PrecDocDtls[{index}].InvNo", "required", "InvNo is mandatory.")
    return check.found


def _check_item(
    check: _Checker,
    item: Mapping[str, Any],
    path: str,
    intra: bool,
    serials: set[Any],
    sums: dict[str, Decimal],
) -> None:
    check.required(
        item,
        path,
        ("SlNo", "IsServc", "HsnCd", "UnitPrice", "TotAmt", "AssAmt", "GstRt", "TotItemVal"),
    )
    serial = item.get("SlNo")
    if isinstance(serial, str) and not 1 <= len(serial) <= 6:
        check.add(f"{path}.SlNo", "length", "SlNo is 1 to 6 characters.")
    if serial in serials:
        check.add(f"{path}.SlNo", "unique_serial", f"SlNo {serial} appears twice.")
    serials.add(serial)
    hsn = item.get("HsnCd")
    if isinstance(hsn, str):
        if not HSN_PATTERN.fullmatch(hsn):
            check.add(f"{path}.HsnCd", "hsn_format", "HsnCd is 4 to 8 digits.")
        elif hsn.startswith("99") and item.get("IsServc") != "Y":
            check.add(f"{path}.IsServc", "service_flag", "A service (SAC 99...) needs IsServc=Y.")
    if item.get("IsServc") not in (None, "Y", "N"):
        check.add(f"{path}.IsServc", "enum", "IsServc is Y or N.")
    check.text(item, path, "PrdDesc", 3, 300)
    check.money(item, path, "Qty", 3)
    check.money(item, path, "UnitPrice", 3)
    total = check.money(item, path, "TotAmt")
    discount = check.money(item, path, "Discount")
    assessable = check.money(item, path, "AssAmt")
    rate = item.get("GstRt")
    if rate is not None and (
        not isinstance(rate, Decimal | int) or Decimal(rate).normalize() not in GST_RATES
    ):
        check.add(f"{path}.GstRt", "gst_rate", f"GstRt {rate} is not a GST rate (percent).")
        rate = None
    if assessable != total - discount:
        check.add(
            f"{path}.AssAmt",
            "assessable_value",
            f"AssAmt {assessable} must be TotAmt - Discount ({total - discount}).",
        )
    cgst = check.money(item, path, "CgstAmt")
    sgst = check.money(item, path, "SgstAmt")
    igst = check.money(item, path, "IgstAmt")
    cess = check.money(item, path, "CesAmt")
    if rate is not None:
        expected = assessable * Decimal(rate) / 100
        if intra:
            if igst != 0:
                check.add(f"{path}.IgstAmt", "igst_intra", "An intra-state line has no IGST.")
            for key, amount in (("CgstAmt", cgst), ("SgstAmt", sgst)):
                if abs(amount - expected / 2) > TAX_TOLERANCE:
                    check.add(
                        f"{path}.{key}",
                        "gst_amount",
                        f"{key} {amount} must be AssAmt x GstRt/2 ({(expected / 2):.2f}).",
                    )
        else:
            if cgst != 0 or sgst != 0:
                check.add(f"{path}.CgstAmt", "cgst_inter", "An inter-state line has IGST only.")
            if abs(igst - expected) > TAX_TOLERANCE:
                check.add(
                    f"{path}.IgstAmt",
                    "gst_amount",
                    f"IgstAmt {igst} must be AssAmt x GstRt ({expected:.2f}).",
                )
    line = check.money(item, path, "TotItemVal")
    others = check.money(item, path, "OthChrg") + check.money(item, path, "StateCesAmt")
    parts = assessable + cgst + sgst + igst + cess + others
    if line != parts:
        check.add(
            f"{path}.TotItemVal",
            "item_total",
            f"TotItemVal {line} must be AssAmt + taxes + cess + other charges ({parts}).",
        )
    for key, amount in (
        ("AssAmt", assessable),
        ("CgstAmt", cgst),
        ("SgstAmt", sgst),
        ("IgstAmt", igst),
        ("CesAmt", cess),
        ("TotItemVal", line),
    ):
        sums[key] += amount


# ----------------------------------------------------------------------------- the signed QR


QR_KEYS = (
    "SellerGstin",
    "BuyerGstin",
    "DocNo",
    "DocTyp",
    "DocDt",
    "TotInvVal",
    "ItemCnt",
    "MainHsnCode",
    "Irn",
    "IrnDt",
)


def qr_contents(payload: Mapping[str, Any], irn: str, irn_date: str) -> dict[str, Any]:
    """What the IRP puts in the signed QR's ``data`` claim for ``payload``."""
    items: Sequence[Mapping[str, Any]] = payload["ItemList"]
    main = max(items, key=lambda i: Decimal(i["AssAmt"]))
    return {
        "SellerGstin": payload["SellerDtls"]["Gstin"],
        "BuyerGstin": payload["BuyerDtls"]["Gstin"],
        "DocNo": payload["DocDtls"]["No"],
        "DocTyp": payload["DocDtls"]["Typ"],
        "DocDt": payload["DocDtls"]["Dt"],
        "TotInvVal": payload["ValDtls"]["TotInvVal"],
        "ItemCnt": len(items),
        "MainHsnCode": main["HsnCd"],
        "Irn": irn,
        "IrnDt": irn_date,
    }


def qr_mismatches(qr: Mapping[str, Any], payload: Mapping[str, Any], irn: str) -> list[str]:
    """Where the IRP's signed QR disagrees with the document we sent (empty: it agrees)."""
    expected = {
        "SellerGstin": payload["SellerDtls"]["Gstin"],
        "BuyerGstin": payload["BuyerDtls"]["Gstin"],
        "DocNo": payload["DocDtls"]["No"],
        "DocTyp": payload["DocDtls"]["Typ"],
        "ItemCnt": len(payload["ItemList"]),
        "Irn": irn,
    }
    found = [key for key, value in expected.items() if qr.get(key) != value]
    try:
        if Decimal(str(qr.get("TotInvVal"))) != Decimal(payload["ValDtls"]["TotInvVal"]):
            found.append("TotInvVal")
    except InvalidOperation:
        found.append("TotInvVal")
    return found
