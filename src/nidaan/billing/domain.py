"""Pure billing rules: money, GST per line, discounts, rounding, numbering and the UPI intent.

Everything here is plain ``Decimal`` arithmetic on rupees (two decimals, paise exact) and is
tested against hand-computed bills. Nothing imports the database or the web framework.

GST for diagnostic labs (fact sheet section 5): patient diagnostic services (SAC 999316) are
exempt under Notification 12/2017-CT(R) Sl. 74; other services may be taxable. A taxable
line pays CGST + SGST (UTGST in union territories without a legislature) when the place of
supply is the supplier's own state, IGST otherwise. Each tax is computed per line and rounded
to the paisa; the bill's total is rounded to the rupee, the difference shown as round-off.
"""

from __future__ import annotations

import enum
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

PAISA = Decimal("0.01")
RUPEE = Decimal("1")
ZERO = Decimal("0.00")
HUNDRED = Decimal("100")
#: Largest amount one bill or payment may carry (1 crore rupees).
MAX_AMOUNT = Decimal("10000000.00")

SAC_DIAGNOSTIC = "999316"  # Medical laboratory and diagnostic-imaging services
SAC_PATTERN = re.compile(r"^\d{4,8}$")
#: GST rates (percent) the law knows; a line's rate must be one of them.
GST_RATES = frozenset(
    Decimal(r) for r in ("0.1", "0.25", "1", "1.5", "3", "5", "6", "12", "18", "28", "40")
)


class MoneyError(ValueError):
    """An amount that is not a valid rupee value (float, too many decimals, out of range)."""


class GstTreatment(enum.StrEnum):
    TAXABLE = "taxable"
    EXEMPT = "exempt"
    NIL_RATED = "nil_rated"
    ZERO_RATED = "zero_rated"


class DocumentType(enum.StrEnum):
    TAX_INVOICE = "tax_invoice"
    BILL_OF_SUPPLY = "bill_of_supply"
    CREDIT_NOTE = "credit_note"
    DEBIT_NOTE = "debit_note"


class SupplyType(enum.StrEnum):
    INTRA_STATE = "intra_state"
    INTER_STATE = "inter_state"


class DiscountKind(enum.StrEnum):
    PERCENT = "percent"
    AMOUNT = "amount"


# ----------------------------------------------------------------------------- money


def rupees(value: Any) -> Decimal:
    """A rupee amount from a str/int/Decimal with at most two decimals; never from a float."""
    if isinstance(value, float | bool) or value is None:
        raise MoneyError("Amounts are decimal strings or integers of rupees, never floats.")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{value!r} is not an amount of rupees.") from None
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not an amount of rupees.")
    if amount != amount.quantize(PAISA):
        raise MoneyError(f"{value!r} has more than two decimals (paise).")
    if abs(amount) > MAX_AMOUNT:
        raise MoneyError("Amounts must be under 1 crore rupees.")
    return amount.quantize(PAISA)


def round_paisa(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


def round_rupee(value: Decimal) -> Decimal:
    """To the nearest rupee, 50 paise and above going up (as Indian bills are rounded)."""
    return value.quantize(RUPEE, rounding=ROUND_HALF_UP).quantize(PAISA)


def to_paise(amount: Decimal) -> int:
    """Rupees to integer paise, exactly (refuses fractions of a paisa rather than truncating)."""
    paise = amount * 100
    if paise != paise.to_integral_value():
        raise MoneyError(f"{amount} is not a whole number of paise.")
    return int(paise)


def from_paise(paise: int) -> Decimal:
    if isinstance(paise, bool) or not isinstance(paise, int):
        raise MoneyError("Gateway amounts are integer paise.")
    return (Decimal(paise) / 100).quantize(PAISA)


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` over ``weights`` proportionally, to the paisa, summing exactly.

    Largest-remainder method: each share is rounded down to the paisa, and the paise left
    over go one each to the shares with the largest remainders (earliest first on ties).
    """
    if not weights:
        return []
    whole = sum(weights, ZERO)
    if whole <= 0:
        if total != 0:
            raise MoneyError("Nothing to spread the amount over.")
        return [ZERO for _ in weights]
    total_paise = to_paise(total)
    exact = [Decimal(total_paise) * w / whole for w in weights]
    floors = [int(e.to_integral_value(rounding="ROUND_FLOOR")) for e in exact]
    left = total_paise - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [from_paise(p) for p in floors]


# ----------------------------------------------------------------------------- states

#: GST state codes (NIC master), by the names people write.
STATE_CODES: dict[str, str] = {
    "jammu and kashmir": "01",
    "himachal pradesh": "02",
    "punjab": "03",
    "chandigarh": "04",
    "uttarakhand": "05",
    "haryana": "06",
    "delhi": "07",
    "rajasthan": "08",
    "uttar pradesh": "09",
    "bihar": "10",
    "sikkim": "11",
    "arunachal pradesh": "12",
    "nagaland": "13",
    "manipur": "14",
    "mizoram": "15",
    "tripura": "16",
    "meghalaya": "17",
    "assam": "18",
    "west bengal": "19",
    "jharkhand": "20",
    "odisha": "21",
    "chhattisgarh": "22",
    "madhya pradesh": "23",
    "gujarat": "24",
    "dadra and nagar haveli and daman and diu": "26",
    "maharashtra": "27",
    "karnataka": "29",
    "goa": "30",
    "lakshadweep": "31",
    "kerala": "32",
    "tamil nadu": "33",
    "puducherry": "34",
    "andaman and nicobar islands": "35",
    "telangana": "36",
    "andhra pradesh": "37",
    "ladakh": "38",
    "other territory": "97",
}
STATE_NAMES = {code: name.title().replace(" And ", " and ") for name, code in STATE_CODES.items()}
_ALIASES = {"new delhi": "07", "nct of delhi": "07", "orissa": "21", "pondicherry": "34"}
#: Union territories without a legislature levy UTGST instead of SGST.
UTGST_STATES = frozenset({"04", "26", "31", "35", "38"})


def state_code(value: str | None) -> str | None:
    """A two-digit GST state code from a code or a state's name (None if unknown/empty)."""
    if value is None or not value.strip():
        return None
    text = " ".join(value.strip().lower().replace("&", "and").split())
    if re.fullmatch(r"\d{1,2}", text):
        code = text.zfill(2)
        return code if code in STATE_NAMES else None
    return STATE_CODES.get(text) or _ALIASES.get(text)


GSTIN_PATTERN = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][Z1-9ABD-J][0-9A-Z]$")
_GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def gstin_check_character(first14: str) -> str:
    """The mod-36 check character of a GSTIN's first 14 characters."""
    total = 0
    for index, char in enumerate(first14):
        product = _GSTIN_ALPHABET.index(char) * (1 if index % 2 == 0 else 2)
        total += product // 36 + product % 36
    return _GSTIN_ALPHABET[(36 - total % 36) % 36]


def gstin_problem(gstin: str) -> str | None:
    """Why ``gstin`` is not a valid normal-taxpayer GSTIN (None when it is)."""
    if not GSTIN_PATTERN.fullmatch(gstin):
        return "A GSTIN is 15 characters: state code, PAN, entity number, Z, check character."
    if gstin[:2] not in STATE_NAMES:
        return f"{gstin[:2]} is not a GST state code."
    if gstin_check_character(gstin[:14]) != gstin[14]:
        return "The GSTIN's check character does not match (a typing mistake?)."
    return None


def place_of_supply(
    supplier_state: str, recipient_state: str | None, *, recipient_registered: bool
) -> str:
    """IGST Act s.12(2): a registered recipient's location; else the recipient's address when
    on record; else the supplier's location."""
    if recipient_registered and recipient_state is None:
        raise ValueError("A registered recipient's state is known from its GSTIN.")
    return recipient_state or supplier_state


# ----------------------------------------------------------------------------- numbering


def financial_year(day: date) -> str:
    """Indian financial year (April-March) of ``day``: ``2026-27``."""
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


#: The IRP's document number: at most 16 characters, not starting with 0 (or "/", "-").
DOCUMENT_NUMBER_MAX = 16
#: A branch code longer than this gets a derived series prefix (see ``series_prefix``).
SERIES_PREFIX_MAX = 3
#: Series marker per document kind; branch codes are [A-Z0-9], so "-C"/"-D" never
#: appear in an invoice series and the three series never share a number.
SERIES_MARKERS = {"invoice": "", "credit-note": "-C", "debit-note": "-D"}
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class NumberSeriesExhausted(ValueError):
    """The series has no room left in the 16-character document number this year."""


def series_prefix(branch_code: str) -> str:
    """The branch's series prefix: the code itself when it is 1-3 characters and does not
    start with 0, else its first two characters (leading zeros dropped) and a check
    character from the whole code. Two branches may share a derived prefix; they then
    share one gapless series (numbers stay unique: the counter is kept per prefix)."""
    code = branch_code.strip().upper()
    if 0 < len(code) <= SERIES_PREFIX_MAX and code[0] != "0":
        return code
    head = code.lstrip("0")[:2] or "Z"
    return head + _BASE36[zlib.crc32(code.encode()) % 36]


def series_of(branch_code: str, kind: str = "invoice") -> str:
    """``CC1`` (invoices), ``CC1-C`` (credit notes), ``CC1-D`` (debit notes)."""
    return series_prefix(branch_code) + SERIES_MARKERS[kind]


def invoice_number(branch_code: str, day: date, number: int, *, kind: str = "invoice") -> str:
    """``CL/2627/00042``, credit notes ``CL-C/2627/00003``, debit notes ``CL-D/2627/00001``:
    one gapless series per prefix, kind and financial year, upper-case and never longer
    than the IRP's 16-character document number. At least five digits; longer numbers
    take the room that is left (a 3-character prefix leaves 7 digits for invoices and 5
    for notes), beyond it ``NumberSeriesExhausted``."""
    if number < 1:
        raise ValueError("Document numbers start at 1.")
    fy = financial_year(day)
    head = f"{series_of(branch_code, kind)}/{fy[2:4]}{fy[5:7]}/"
    text = f"{head}{number:05d}"
    if len(text) > DOCUMENT_NUMBER_MAX:
        raise NumberSeriesExhausted(
            f"The {kind} series {head} is full for {fy}: it has no room for number {number} "
            f"in a {DOCUMENT_NUMBER_MAX}-character document number."
        )
    return text


def invoice_scope(branch_code: str, day: date, *, kind: str = "invoice") -> str:
    """The counter of the series (per prefix, not branch: branches sharing a derived prefix
    share its numbers)."""
    return f"billing:{kind}:{series_prefix(branch_code)}:{financial_year(day)}"


def receipt_number(branch_code: str, day: date, number: int) -> str:
    return f"{branch_code}-RCT/{financial_year(day)[2:]}/{number:05d}"


# ----------------------------------------------------------------------------- lines


@dataclass(frozen=True)
class LineInput:
    """One thing billed, before discount and tax."""

    code: str
    description: str
    unit_price: Decimal
    quantity: int = 1
    sac: str = SAC_DIAGNOSTIC
    treatment: GstTreatment = GstTreatment.EXEMPT
    gst_rate: Decimal = ZERO  # percent, the sum of CGST and SGST (or the IGST rate)
    kind: str = "test"  # test | panel | service | home_collection
    order_id: Any = None
    source_id: Any = None  # catalogue test/panel or billing item id
    discountable: bool = True

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise ValueError("quantity must be at least 1")
        if not SAC_PATTERN.fullmatch(self.sac):
            raise ValueError(f"SAC {self.sac!r} must be 4 to 8 digits")
        if self.treatment is GstTreatment.TAXABLE and self.gst_rate not in GST_RATES:
            raise ValueError(f"a taxable line needs a GST rate, one of {sorted(GST_RATES)}")
        if self.treatment is not GstTreatment.TAXABLE and self.gst_rate != 0:
            raise ValueError(f"an {self.treatment} line carries no GST rate")
        if self.unit_price < 0:
            raise ValueError("prices cannot be negative")


@dataclass(frozen=True)
class TaxedLine:
    """A line as printed: gross, discount, taxable value and each tax, in rupees."""

    code: str
    description: str
    kind: str
    sac: str
    treatment: GstTreatment
    gst_rate: Decimal
    quantity: int
    unit_price: Decimal
    gross_amount: Decimal
    discount_amount: Decimal
    taxable_value: Decimal
    cgst_rate: Decimal
    cgst_amount: Decimal
    sgst_rate: Decimal
    sgst_amount: Decimal
    igst_rate: Decimal
    igst_amount: Decimal
    line_total: Decimal
    order_id: Any = None
    source_id: Any = None


@dataclass(frozen=True)
class Discount:
    kind: DiscountKind
    value: Decimal
    reason: str

    def amount_on(self, gross: Decimal) -> Decimal:
        if self.kind is DiscountKind.PERCENT:
            if not 0 <= self.value <= 100:
                raise ValueError("a percent discount is between 0 and 100")
            return round_paisa(gross * self.value / HUNDRED)
        if self.value < 0:
            raise ValueError("a discount cannot be negative")
        if self.value > gross:
            raise ValueError(f"the discount {self.value} is more than the bill ({gross})")
        return self.value


@dataclass(frozen=True)
class Bill:
    """A priced bill: its lines and totals (every total is the sum of its lines)."""

    lines: tuple[TaxedLine, ...]
    supply_type: SupplyType
    place_of_supply: str
    document_type: DocumentType
    state_tax_name: str  # "SGST" or "UTGST"
    gross_total: Decimal
    discount_total: Decimal
    taxable_total: Decimal
    exempt_total: Decimal
    cgst_total: Decimal
    sgst_total: Decimal
    igst_total: Decimal
    tax_total: Decimal
    total_before_rounding: Decimal
    round_off: Decimal
    grand_total: Decimal
    discount_percent: Decimal = field(default=ZERO)


def _tax(value: Decimal, rate: Decimal) -> Decimal:
    return round_paisa(value * rate / HUNDRED)


def tax_line(line: LineInput, discount: Decimal, supply_type: SupplyType) -> TaxedLine:
    """Discount and tax one line (each tax rounded to the paisa on its own)."""
    gross = round_paisa(line.unit_price * line.quantity)
    taxable = gross - discount
    zero = ZERO
    cgst_rate = sgst_rate = igst_rate = zero
    cgst = sgst = igst = zero
    if line.treatment is GstTreatment.TAXABLE:
        if supply_type is SupplyType.INTRA_STATE:
            cgst_rate = sgst_rate = line.gst_rate / 2
            cgst, sgst = _tax(taxable, cgst_rate), _tax(taxable, sgst_rate)
        else:
            igst_rate = line.gst_rate
            igst = _tax(taxable, igst_rate)
    return TaxedLine(
        code=line.code,
        description=line.description,
        kind=line.kind,
        sac=line.sac,
        treatment=line.treatment,
        gst_rate=line.gst_rate,
        quantity=line.quantity,
        unit_price=line.unit_price,
        gross_amount=gross,
        discount_amount=discount,
        taxable_value=taxable,
        cgst_rate=cgst_rate,
        cgst_amount=cgst,
        sgst_rate=sgst_rate,
        sgst_amount=sgst,
        igst_rate=igst_rate,
        igst_amount=igst,
        line_total=taxable + cgst + sgst + igst,
        order_id=line.order_id,
        source_id=line.source_id,
    )


def price_bill(
    lines: Sequence[LineInput],
    *,
    supplier_state: str,
    place_of_supply: str,
    discount: Discount | None = None,
    round_to_rupee: bool = True,
) -> Bill:
    """Discount, tax and total a bill.

    The discount is a reduction shown on the bill, so it lowers each line's taxable value
    (CGST Act s.15(3)(a)); it is spread over the discountable lines in proportion to their
    gross amounts, to the paisa.
    """
    if not lines:
        raise ValueError("a bill needs at least one line")
    supply_type = (
        SupplyType.INTRA_STATE if supplier_state == place_of_supply else SupplyType.INTER_STATE
    )
    grosses = [round_paisa(line.unit_price * line.quantity) for line in lines]
    discountable = [
        g if line.discountable else ZERO for g, line in zip(grosses, lines, strict=True)
    ]
    base = sum(discountable, ZERO)
    discount_total = discount.amount_on(base) if discount is not None else ZERO
    shares = allocate(discount_total, discountable) if base > 0 else [ZERO] * len(lines)
    taxed = tuple(
        tax_line(line, share, supply_type) for line, share in zip(lines, shares, strict=True)
    )
    return _totals(taxed, supply_type, place_of_supply, round_to_rupee, discount_total, base)


def _totals(
    taxed: tuple[TaxedLine, ...],
    supply_type: SupplyType,
    pos: str,
    round_to_rupee: bool,
    discount_total: Decimal,
    discount_base: Decimal,
) -> Bill:
    def total(name: str, lines: Iterable[TaxedLine] = taxed) -> Decimal:
        return sum((getattr(line, name) for line in lines), ZERO)

    before = total("line_total")
    grand = round_rupee(before) if round_to_rupee else before
    taxable_lines = [t for t in taxed if t.treatment in _GST_DOCUMENT_TREATMENTS]
    return Bill(
        lines=taxed,
        supply_type=supply_type,
        place_of_supply=pos,
        document_type=DocumentType.TAX_INVOICE if taxable_lines else DocumentType.BILL_OF_SUPPLY,
        state_tax_name="UTGST" if pos in UTGST_STATES else "SGST",
        gross_total=total("gross_amount"),
        discount_total=total("discount_amount"),
        taxable_total=total("taxable_value"),
        exempt_total=total(
            "taxable_value",
            [t for t in taxed if t.treatment in (GstTreatment.EXEMPT, GstTreatment.NIL_RATED)],
        ),
        cgst_total=total("cgst_amount"),
        sgst_total=total("sgst_amount"),
        igst_total=total("igst_amount"),
        tax_total=total("cgst_amount") + total("sgst_amount") + total("igst_amount"),
        total_before_rounding=before,
        round_off=grand - before,
        grand_total=grand,
        discount_percent=(
            round_paisa(discount_total * HUNDRED / discount_base) if discount_base > 0 else ZERO
        ),
    )


_GST_DOCUMENT_TREATMENTS = (GstTreatment.TAXABLE, GstTreatment.ZERO_RATED)


def negate(bill: Bill) -> Bill:
    """The credit note of ``bill``: the same lines and totals with the opposite sign."""

    def flip(line: TaxedLine) -> TaxedLine:
        return replace(
            line,
            gross_amount=-line.gross_amount,
            discount_amount=-line.discount_amount,
            taxable_value=-line.taxable_value,
            cgst_amount=-line.cgst_amount,
            sgst_amount=-line.sgst_amount,
            igst_amount=-line.igst_amount,
            line_total=-line.line_total,
        )

    return replace(
        bill,
        lines=tuple(flip(line) for line in bill.lines),
        document_type=DocumentType.CREDIT_NOTE,
        gross_total=-bill.gross_total,
        discount_total=-bill.discount_total,
        taxable_total=-bill.taxable_total,
        exempt_total=-bill.exempt_total,
        cgst_total=-bill.cgst_total,
        sgst_total=-bill.sgst_total,
        igst_total=-bill.igst_total,
        tax_total=-bill.tax_total,
        total_before_rounding=-bill.total_before_rounding,
        round_off=-bill.round_off,
        grand_total=-bill.grand_total,
    )


# ----------------------------------------------------------------------------- discounts

#: Largest discount (percent of the bill) each role may give without approval.
DEFAULT_DISCOUNT_LIMITS: dict[str, Decimal] = {
    "admin": Decimal("100"),
    "billing": Decimal("20"),
    "front_desk": Decimal("10"),
}


def discount_limit(roles: Iterable[str], limits: dict[str, Any]) -> Decimal:
    """The highest limit among the caller's roles (0 for roles without one)."""
    found = [Decimal(str(limits[r])) for r in roles if r in limits]
    return max(found, default=ZERO)


def needs_approval(discount_percent: Decimal, roles: Iterable[str], limits: dict[str, Any]) -> bool:
    return discount_percent > discount_limit(roles, limits)


# ----------------------------------------------------------------------------- payments

UTR_PATTERN = re.compile(r"^\d{12}$")
VPA_PATTERN = re.compile(r"^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$")


def upi_payment_uri(
    *,
    vpa: str,
    payee_name: str,
    amount: Decimal,
    reference: str,
    note: str | None = None,
    merchant_code: str | None = None,
) -> str:
    """A ``upi://pay`` intent per NPCI's UPI linking specification.

    ``pa`` payee address, ``pn`` payee name, ``tr`` transaction reference (our invoice
    number, echoed back in the payer's statement), ``tn`` note, ``am`` amount with two
    decimals, ``cu`` INR, ``mc`` merchant category code when the VPA is a merchant's.
    Values are percent-encoded (spaces as %20). Works offline: nothing is fetched.
    """
    if not VPA_PATTERN.fullmatch(vpa):
        raise ValueError(f"{vpa!r} is not a UPI address (name@bank)")
    if amount <= 0:
        raise ValueError("a UPI request needs an amount above zero")
    params = [("pa", vpa), ("pn", payee_name.strip()[:99])]
    if merchant_code:
        params.append(("mc", merchant_code))
    params += [
        ("tr", reference[:35]),
        ("tn", (note or f"Invoice {reference}")[:80]),
        ("am", f"{amount.quantize(PAISA)}"),
        ("cu", "INR"),
    ]
    # "@" stays readable (some older UPI apps do not decode %40 in the payee address).
    return "upi://pay?" + "&".join(f"{key}={quote(value, safe='@')}" for key, value in params)


def check_utr(utr: str) -> str:
    """A UPI transaction reference (UTR/RRN) is 12 digits."""
    value = utr.strip()
    if not UTR_PATTERN.fullmatch(value):
        raise ValueError("A UPI UTR is the 12-digit reference on the payer's app.")
    return value


_ONES = [
    "Zero",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
    "Ten",
    "Eleven",
    "Twelve",
    "Thirteen",
    "Fourteen",
    "Fifteen",
    "Sixteen",
    "Seventeen",
    "Eighteen",
    "Nineteen",
]
_TENS = ["_", "_", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "Hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append(_ONES[n])
    return words


def amount_in_words(amount: Decimal) -> str:
    """Rupees in words the Indian way (lakh, crore): ``Rupees One Lakh Twenty Only``."""
    negative = amount < 0
    paise = to_paise(abs(amount))
    whole, fraction = divmod(paise, 100)
    words: list[str] = []
    for size, name in ((10**7, "Crore"), (10**5, "Lakh"), (10**3, "Thousand")):
        if whole >= size:
            words += [*_below_thousand(whole // size), name]
            whole %= size
    words += _below_thousand(whole)
    text = "Rupees " + (" ".join(words) if words else "Zero")
    if fraction:
        text += " and " + " ".join(_below_thousand(fraction)) + " Paise"
    return ("Minus " if negative else "") + text + " Only"
