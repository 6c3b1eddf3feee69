import { describe, expect, it } from 'vitest';
import en from '../../src/lib/i18n/locales/en.json';
import hi from '../../src/lib/i18n/locales/hi.json';

function keys(tree: Record<string, unknown>, prefix = ''): string[] {
	return Object.entries(tree).flatMap(([key, value]) =>
		value && typeof value === 'object'
			? keys(value as Record<string, unknown>, `${prefix}${key}.`)
			: [`${prefix}${key}`]
	);
}

describe('translations', () => {
	it('Hindi has every English key and no other', () => {
		expect(keys(hi).sort()).toEqual(keys(en).sort());
	});

	it('placeholders survive translation', () => {
		const flat = (tree: Record<string, unknown>) =>
			Object.fromEntries(
				keys(tree).map((k) => [k, k.split('.').reduce<unknown>((o, p) => (o as Record<string, unknown>)[p], tree)])
			) as Record<string, string>;
		const english = flat(en);
		const hindi = flat(hi);
		for (const [key, text] of Object.entries(english)) {
			const wanted = (text.match(/{{\w+}}/g) ?? []).sort();
			expect((hindi[key].match(/{{\w+}}/g) ?? []).sort(), key).toEqual(wanted);
		}
	});

	it('rupees use Indian grouping in both languages', () => {
		const format = (tag: string) =>
			new Intl.NumberFormat(tag, { style: 'currency', currency: 'INR', minimumFractionDigits: 2 }).format(1234567.5);
		expect(format('en-IN')).toBe('₹12,34,567.50');
		expect(format('hi-IN')).toBe('₹12,34,567.50');
	});
});
