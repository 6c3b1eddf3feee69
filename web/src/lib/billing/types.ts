/** Shapes of the billing and payments API the billing screens read (amounts: rupee strings). */
export interface InvoiceSummary {
	id: string;
	number: string | null;
	kind: string;
	document_type: string;
	status: string;
	payment_status: string;
	branch_id: string;
	order_id: string | null;
	client_id: string | null;
	patient_id: string | null;
	buyer_name: string;
	invoice_date: string | null;
	due_date: string | null;
	grand_total: string;
	amount_paid: string;
	amount_refunded: string;
	balance_due: string;
	created_at: string;
}

export interface InvoiceLine {
	position: number;
	code: string;
	description: string;
	sac: string;
	gst_treatment: string;
	quantity: number;
	unit_price: string;
	discount_amount: string;
	taxable_value: string;
	cgst_amount: string;
	sgst_amount: string;
	igst_amount: string;
	line_total: string;
}

export interface Invoice extends InvoiceSummary {
	financial_year: string | null;
	seller_legal_name: string;
	seller_gstin: string | null;
	buyer_gstin: string | null;
	place_of_supply: string;
	gross_total: string;
	discount_total: string;
	discount_reason: string | null;
	tax_total: string;
	round_off: string;
	cancel_reason: string | null;
	lines: InvoiceLine[];
	pdf_url: string;
}

export interface Payment {
	id: string;
	source: string;
	method: string | null;
	amount: string;
	currency: string;
	status: string;
	review_reason: string | null;
	amount_refunded: string;
	reference: string | null;
	received_at: string | null;
	receipt_id: string | null;
}

export interface Receipt {
	id: string;
	number: string;
	amount: string;
	source: string;
	received_at: string;
	pdf_url?: string;
}

export interface PaymentRequest {
	id: string;
	gateway: string;
	kind: string;
	gateway_ref: string;
	reference: string;
	url: string | null;
	amount: string;
	status: string;
	expires_at: string | null;
	created_at: string;
}

export interface Refund {
	id: string;
	amount: string;
	reason: string;
	status: string;
	gateway: string | null;
	failure_reason: string | null;
	created_at: string;
}

export interface Mismatch {
	kind: string;
	detail: string;
	invoice_id: string | null;
	payment_id: string | null;
	gateway: string | null;
	amount: string | null;
	since: string | null;
}

export interface BillingSettings {
	enabled_gateways: string[];
	default_gateway: string | null;
}
