"""Billing rules against bills computed by hand, plus properties over generated bills."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.billing.domain import (
    Discount,
    DiscountKind,
    DocumentType,
    GstTreatment,
    LineInput,
    MoneyError,
    NumberSeriesExhausted,
    SupplyType,
    allocate,
    check_utr,
    financial_year,
    from_paise,
    gstin_problem,
    invoice_number,
    needs_approval,
    negate,
    place_of_supply,
    price_bill,
    rupees,
    series_of,
    series_prefix,
    state_code,
    to_paise,
    upi_payment_uri,
)

D = Decimal
MH, KA, CH = "27", "29", "04"


def lab_test(code: str, price: str) -> LineInput:
    return LineInput(code=code, description=code, unit_price=D(price))


def service(code: str, price: str, rate: str = "18") -> LineInput:
    return LineInput(
        code=code,
        description=code,
        unit_price=D(price),
        sac="998599",
        treatment=GstTreatment.TAXABLE,
        gst_rate=D(rate),
        kind="service",
    )


def test_patient_bill_with_ten_percent_discount_is_an_exempt_bill_of_supply() -> None:
    # CBC 350 + LFT 800 + TSH 450 = 1600; 10 % = 160 -> 1440, no GST (SAC 999316 exempt).
    bill = price_bill(
        [lab_test("CBC", "350"), lab_test("LFT", "800"), lab_test("TSH", "450")],
        supplier_state=MH,
        place_of_supply=MH,
        discount=Discount(DiscountKind.PERCENT, D("10"), "senior citizen"),
    )
    assert bill.document_type is DocumentType.BILL_OF_SUPPLY
    assert [line.discount_amount for line in bill.lines] == [D("35.00"), D("80.00"), D("45.00")]
    assert [line.sac for line in bill.lines] == ["999316"] * 3
    assert (bill.gross_total, bill.discount_total, bill.taxable_total) == (
        D("1600.00"),
        D("160.00"),
        D("1440.00"),
    )
    assert bill.tax_total == D("0.00")
    assert (bill.round_off, bill.grand_total) == (D("0.00"), D("1440.00"))
    assert bill.discount_percent == D("10.00")


def test_amount_discount_is_spread_by_largest_remainder() -> None:
    # 55.50 over 350/800/450: 12.140625, 27.75, 15.609375 -> 12.14, 27.75, 15.61 (sum 55.50).
    bill = price_bill(
        [lab_test("CBC", "350"), lab_test("LFT", "800"), lab_test("TSH", "450")],
        supplier_state=MH,
        place_of_supply=MH,
        discount=Discount(DiscountKind.AMOUNT, D("55.50"), "loyalty"),
    )
    assert [line.discount_amount for line in bill.lines] == [D("12.14"), D("27.75"), D("15.61")]
    # 1600 - 55.50 = 1544.50 rounds up to 1545.
    assert (bill.total_before_rounding, bill.round_off, bill.grand_total) == (
        D("1544.50"),
        D("0.50"),
        D("1545.00"),
    )


def test_taxable_service_within_the_state_pays_cgst_and_sgst() -> None:
    # Lab management fee 10,000 @ 18 % in Maharashtra: CGST 9 % 900 + SGST 9 % 900.
    bill = price_bill([service("MGMT", "10000")], supplier_state=MH, place_of_supply=MH)
    (line,) = bill.lines
    assert bill.supply_type is SupplyType.INTRA_STATE
    assert bill.document_type is DocumentType.TAX_INVOICE
    assert (line.cgst_rate, line.cgst_amount) == (D("9"), D("900.00"))
    assert (line.sgst_rate, line.sgst_amount) == (D("9"), D("900.00"))
    assert (line.igst_rate, line.igst_amount) == (D("0"), D("0.00"))
    assert bill.grand_total == D("11800.00")
    assert bill.state_tax_name == "SGST"


def test_taxable_service_to_another_state_pays_igst_and_rounds_to_the_rupee() -> None:
    # 2,499.50 @ 18 % IGST = 449.91; 2,949.41 -> 2,949.00 (round-off -0.41).
    bill = price_bill([service("MGMT", "2499.50")], supplier_state=MH, place_of_supply=KA)
    (line,) = bill.lines
    assert bill.supply_type is SupplyType.INTER_STATE
    assert (line.igst_rate, line.igst_amount) == (D("18"), D("449.91"))
    assert line.cgst_amount == line.sgst_amount == D("0.00")
    assert bill.total_before_rounding == D("2949.41")
    assert (bill.round_off, bill.grand_total) == (D("-0.41"), D("2949.00"))


def test_each_half_of_intra_state_tax_is_rounded_on_its_own() -> None:
    # Exempt test 1,250 + taxable 333.33 @ 18 %: 333.33 x 9 % = 29.9997 -> 30.00 twice.
    bill = price_bill(
        [lab_test("HBA1C", "1250"), service("COURIER", "333.33")],
        supplier_state=MH,
        place_of_supply=MH,
    )
    assert bill.document_type is DocumentType.TAX_INVOICE
    assert (bill.cgst_total, bill.sgst_total) == (D("30.00"), D("30.00"))
    assert bill.exempt_total == D("1250.00")
    assert bill.total_before_rounding == D("1643.33")
    assert (bill.round_off, bill.grand_total) == (D("-0.33"), D("1643.00"))


def test_union_territory_without_legislature_levies_utgst() -> None:
    bill = price_bill([service("MGMT", "100", "5")], supplier_state=CH, place_of_supply=CH)
    assert bill.state_tax_name == "UTGST"
    assert (bill.cgst_total, bill.sgst_total) == (D("2.50"), D("2.50"))


def test_discount_lowers_the_taxable_value_of_taxable_lines() -> None:
    # 1,000 exempt + 1,000 @ 18 %, 20 % off: 200 each; tax on 800 = 72 + 72.
    bill = price_bill(
        [lab_test("A", "1000"), service("S", "1000")],
        supplier_state=MH,
        place_of_supply=MH,
        discount=Discount(DiscountKind.PERCENT, D("20"), "camp"),
    )
    assert [line.taxable_value for line in bill.lines] == [D("800.00"), D("800.00")]
    assert bill.tax_total == D("144.00")
    assert bill.grand_total == D("1744.00")


def test_credit_note_negates_every_amount() -> None:
    bill = price_bill([service("MGMT", "2499.50")], supplier_state=MH, place_of_supply=KA)
    note = negate(bill)
    assert note.document_type is DocumentType.CREDIT_NOTE
    assert note.grand_total == -bill.grand_total
    assert note.lines[0].igst_amount == D("-449.91")


def test_discount_larger_than_the_bill_is_refused() -> None:
    with pytest.raises(ValueError, match="more than the bill"):
        price_bill(
            [lab_test("A", "100")],
            supplier_state=MH,
            place_of_supply=MH,
            discount=Discount(DiscountKind.AMOUNT, D("100.01"), "x"),
        )


def test_place_of_supply_follows_igst_act_section_12_2() -> None:
    assert place_of_supply(MH, KA, recipient_registered=True) == KA
    assert place_of_supply(MH, None, recipient_registered=False) == MH
    assert place_of_supply(MH, KA, recipient_registered=False) == KA


def test_money_is_never_float_and_paise_are_exact() -> None:
    with pytest.raises(MoneyError):
        rupees(10.5)
    with pytest.raises(MoneyError):
        rupees("10.005")
    assert rupees("0.1") == D("0.10")
    assert to_paise(D("1440.00")) == 144000
    assert to_paise(D("0.29")) == 29  # int(0.29 * 100) would be 28 with floats
    assert from_paise(144001) == D("1440.01")
    with pytest.raises(MoneyError):
        to_paise(D("1.005"))


def test_financial_year_and_numbers() -> None:
    assert financial_year(date(2026, 3, 31)) == "2025-26"
    assert financial_year(date(2026, 4, 1)) == "2026-27"
    assert invoice_number("CL", date(2026, 11, 2), 42) == "CL/2627/00042"
    assert invoice_number("CC1", date(2027, 1, 5), 3, kind="credit-note") == "CC1-C/2627/00003"
    assert invoice_number("CC1", date(2027, 1, 5), 1, kind="debit-note") == "CC1-D/2627/00001"
    # Long codes (up to the 16 allowed) get a derived 3-character prefix, stable per code.
    long = invoice_number("COLLECTIONCTR16X", date(2027, 1, 5), 99_999, kind="credit-note")
    assert long.startswith("CO")
    assert long[3:] == "-C/2627/99999"
    assert series_prefix("0AB") != "0AB"
    assert not series_prefix("0AB").startswith("0")
    with pytest.raises(NumberSeriesExhausted):
        invoice_number("CC1", date(2027, 1, 5), 100_000, kind="credit-note")
    assert invoice_number("CC1", date(2027, 1, 5), 9_999_999) == "CC1/2627/9999999"


IRP_DOC_NO = re.compile(r"^[a-zA-Z1-9][a-zA-Z0-9/-]{0,15}$")


@settings(max_examples=400)
@given(
    code=st.from_regex(r"[A-Z0-9]{1,16}", fullmatch=True),
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2098, 12, 31)),
    kind=st.sampled_from(["invoice", "credit-note", "debit-note"]),
    number=st.integers(min_value=1, max_value=10**8),
)
def test_every_document_number_fits_the_irp_pattern(
    code: str, day: date, kind: str, number: int
) -> None:
    """Any branch code the product allows, any sequence number: either a valid IRP document
    number in its own series, or a clear refusal once the series is full (never a longer
    number)."""
    try:
        text = invoice_number(code, day, number, kind=kind)
    except NumberSeriesExhausted:
        # Only beyond 99,999 notes or 9,999,999 invoices a year with a 3-character prefix.
        assert number >= (10**7 if kind == "invoice" else 10**5)
        return
    assert IRP_DOC_NO.fullmatch(text), text
    series, year, serial = text.split("/")
    assert series == series_of(code, kind)
    assert int(serial) == number
    assert year == financial_year(day)[2:4] + financial_year(day)[5:7]
    # Numbers of different kinds never collide, so one unique index holds them all.
    for other in {"invoice", "credit-note", "debit-note"} - {kind}:
        assert series_of(code, other) != series


def test_state_codes_and_gstin() -> None:
    assert state_code("Maharashtra") == "27"
    assert state_code("27") == "27"
    assert state_code("Andaman & Nicobar Islands") == "35"
    assert state_code("Atlantis") is None
    assert gstin_problem("27AAPFU0939F1ZV") is None
    assert "check character" in (gstin_problem("27AAPFU0939F1ZX") or "")
    assert gstin_problem("27AAPFU0939F1Z") is not None


def test_role_limits_decide_approval() -> None:
    limits = {"front_desk": 10, "billing": 20, "admin": 100}
    assert not needs_approval(D("10"), {"front_desk"}, limits)
    assert needs_approval(D("10.01"), {"front_desk"}, limits)
    assert not needs_approval(D("15"), {"front_desk", "billing"}, limits)
    assert needs_approval(D("1"), {"technician"}, limits)


def test_upi_intent_per_npci_linking_spec() -> None:
    uri = upi_payment_uri(
        vpa="demolab@okicici",
        payee_name="Demo Diagnostics",
        amount=D("1440"),
        reference="CL/26-27/0001",
    )
    assert uri == (
        "upi://pay?pa=demolab@okicici&pn=Demo%20Diagnostics&tr=CL%2F26-27%2F0001"
        "&tn=Invoice%20CL%2F26-27%2F0001&am=1440.00&cu=INR"
    )
    with pytest.raises(ValueError):
        upi_payment_uri(vpa="not a vpa", payee_name="x", amount=D("1"), reference="r")
    assert check_utr(" 412345678901 ") == "412345678901"
    with pytest.raises(ValueError):
        check_utr("41234567890")


amounts = st.decimals(min_value=D("0"), max_value=D("99999.99"), places=2)


@settings(max_examples=300, deadline=None)
@given(total=amounts, weights=st.lists(amounts.filter(lambda d: d > 0), min_size=1, max_size=12))
def test_allocation_sums_exactly_and_stays_within_a_paisa(
    total: Decimal, weights: list[Decimal]
) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    whole = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        assert abs(share - total * weight / whole) < D("0.01")


line_inputs = st.builds(
    lambda price, taxable, rate: LineInput(
        code="X",
        description="X",
        unit_price=price,
        treatment=GstTreatment.TAXABLE if taxable else GstTreatment.EXEMPT,
        gst_rate=D(rate) if taxable else D("0"),
        sac="998599" if taxable else "999316",
    ),
    amounts,
    st.booleans(),
    st.sampled_from(["5", "12", "18", "28"]),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(line_inputs, min_size=1, max_size=10),
    percent=st.decimals(min_value=D("0"), max_value=D("100"), places=2),
    inter=st.booleans(),
)
def test_totals_are_the_sums_of_their_lines(
    lines: list[LineInput], percent: Decimal, inter: bool
) -> None:
    bill = price_bill(
        lines,
        supplier_state=MH,
        place_of_supply=KA if inter else MH,
        discount=Discount(DiscountKind.PERCENT, percent, "x"),
    )
    for name in ("gross_amount", "discount_amount", "taxable_value", "line_total"):
        assert sum(getattr(line, name) for line in bill.lines) == getattr(
            bill,
            name.replace("_amount", "_total")
            .replace("_value", "_total")
            .replace("line_total", "total_before_rounding"),
        )
    for line in bill.lines:
        assert line.taxable_value >= 0
        assert line.line_total == (
            line.taxable_value + line.cgst_amount + line.sgst_amount + line.igst_amount
        )
        if inter:
            assert line.cgst_amount == line.sgst_amount == 0
        else:
            assert line.igst_amount == 0
            assert line.cgst_amount == line.sgst_amount
    assert -D("0.50") < bill.round_off <= D("0.50")
    assert bill.grand_total == bill.grand_total.quantize(D("1"))


def test_amount_in_words_uses_lakh_and_crore() -> None:
    from nidaan.billing.domain import amount_in_words

    assert amount_in_words(D("1440.00")) == "Rupees One Thousand Four Hundred Forty Only"
    assert amount_in_words(D("12345678.50")) == (
        "Rupees One Crore Twenty Three Lakh Forty Five Thousand Six Hundred Seventy Eight "
        "and Fifty Paise Only"
    )
    assert amount_in_words(D("0")) == "Rupees Zero Only"
