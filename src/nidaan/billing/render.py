"""Invoice and receipt PDFs: Jinja2 HTML laid out by WeasyPrint, like the reports (same
fonts, same no-network fetcher; ``reports.render.html_to_pdf``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import jinja2
import segno

from nidaan.billing.domain import STATE_NAMES, amount_in_words
from nidaan.billing.models import CounterPayment, Invoice, InvoiceLine, Receipt
from nidaan.kit.time import IST
from nidaan.reports.render import font_faces, html_to_pdf

TEMPLATES = Path(__file__).parent / "templates"
TITLES = {
    "tax_invoice": "Tax Invoice",
    "bill_of_supply": "Bill of Supply",
    "credit_note": "Credit Note",
    "debit_note": "Debit Note",
}
METHOD_NAMES = {
    "cash": "Cash",
    "card": "Card",
    "upi": "UPI",
    "cheque": "Cheque",
    "bank_transfer": "Bank transfer",
}


@dataclass(frozen=True)
class EInvoiceStamp:
    """The GST e-invoice details printed on the document (filled by the e-invoice module
    through ``billing.service.register_stamp_provider``; billing never imports it)."""

    irn: str
    ack_no: str
    ack_at: datetime
    signed_qr_code: str  # the IRP's signed QR JWT: what the printed QR encodes
    cancelled_at: datetime | None = None


@dataclass(frozen=True)
class InvoiceDocument:
    invoice: Invoice
    lines: list[InvoiceLine]
    receipts: list[Receipt]
    order_number: str | None
    credit_note_for: str | None
    upi_uri: str | None  # counter QR printed while something is due
    einvoice: EInvoiceStamp | None = None


@dataclass(frozen=True)
class ReceiptDocument:
    receipt: Receipt
    payments: list[CounterPayment]
    invoice: Invoice


def money(value: Decimal | None) -> str:
    """``1,23,456.50``: Indian digit grouping."""
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    whole, _, fraction = f"{abs(value):.2f}".partition(".")
    head, tail = whole[:-3], whole[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return sign + ",".join([*groups, tail]) + "." + fraction


def rate(value: Decimal) -> str:
    return f"{value.normalize():f}"


def when(value: datetime | None) -> str:
    return value.astimezone(IST).strftime("%d-%b-%Y %H:%M IST") if value else ""


def state(code: str | None) -> str:
    return f"{STATE_NAMES.get(code, '')} ({code})" if code else ""


def qr_svg(uri: str) -> str:
    return str(segno.make(uri, error="m", micro=False).svg_data_uri(scale=4, border=0))


def irn_qr_svg(signed_qr: str) -> str:
    # The signed JWT is long (~700+ characters): error level L keeps the symbol printable at
    # the recommended 2 x 2 inches.
    return str(segno.make(signed_qr, error="l", micro=False).svg_data_uri(scale=2, border=0))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(money=money, rate=rate, when=when, state=state)
    return environment


def invoice_html(document: InvoiceDocument) -> str:
    invoice = document.invoice
    return (
        _environment()
        .get_template("invoice.html.j2")
        .render(
            doc=document,
            inv=invoice,
            title=TITLES.get(invoice.document_type, "Invoice"),
            fonts=font_faces(),
            words=amount_in_words(invoice.grand_total),
            inter=invoice.supply_type == "inter_state",
            taxed=invoice.document_type != "bill_of_supply",
            exempt=any(line.gst_treatment in ("exempt", "nil_rated") for line in document.lines),
            qr=qr_svg(document.upi_uri) if document.upi_uri else None,
            irn=document.einvoice,
            irn_qr=irn_qr_svg(document.einvoice.signed_qr_code) if document.einvoice else None,
            methods=METHOD_NAMES,
        )
    )


def receipt_html(document: ReceiptDocument) -> str:
    return (
        _environment()
        .get_template("receipt.html.j2")
        .render(
            doc=document,
            rcpt=document.receipt,
            inv=document.invoice,
            fonts=font_faces(),
            words=amount_in_words(document.receipt.amount),
            methods=METHOD_NAMES,
        )
    )


async def invoice_pdf(document: InvoiceDocument) -> bytes:
    return (await asyncio.to_thread(html_to_pdf, invoice_html(document))).data


async def receipt_pdf(document: ReceiptDocument) -> bytes:
    return (await asyncio.to_thread(html_to_pdf, receipt_html(document))).data
