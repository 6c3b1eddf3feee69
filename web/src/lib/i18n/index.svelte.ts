/**
 * Translations (i18next) and Indian formats. Every locale is one JSON file in `locales/`,
 * named by its language code: dropping `mr.json` there (the keys of `en.json`, translated)
 * adds Marathi to the language menu.
 * English is bundled as the fallback; other languages load when chosen.
 */
import i18next from 'i18next';
import en from './locales/en.json';

const loaders = import.meta.glob<{ default: Record<string, unknown> }>('./locales/*.json');

/** Locale codes with a translation file, each named in its own language. */
export const LOCALES: Record<string, string> = Object.fromEntries(
	Object.keys(loaders)
		.map((path) => path.replace(/^.*\/(.*)\.json$/, '$1'))
		.sort()
		.map((code) => [code, new Intl.DisplayNames([code], { type: 'language' }).of(code) ?? code])
);

const STORAGE_KEY = 'nidaan:locale';

class I18n {
	/** The active locale; reading it in a template re-renders on change. */
	locale = $state('en');
	#ready = i18next.init({
		lng: 'en',
		fallbackLng: 'en',
		resources: { en: { translation: en } },
		interpolation: { escapeValue: false },
		returnNull: false
	});

	async use(code: string): Promise<void> {
		if (!(code in LOCALES)) code = 'en';
		await this.#ready;
		if (!i18next.hasResourceBundle(code, 'translation')) {
			const loader = loaders[`./locales/${code}.json`];
			const bundle = (await loader()).default;
			i18next.addResourceBundle(code, 'translation', bundle);
		}
		await i18next.changeLanguage(code);
		this.locale = code;
		if (typeof document !== 'undefined') document.documentElement.lang = code;
		try {
			localStorage.setItem(STORAGE_KEY, code);
		} catch {
			/* private mode: the choice lasts this page only */
		}
	}

	saved(): string {
		try {
			return localStorage.getItem(STORAGE_KEY) ?? 'en';
		} catch {
			return 'en';
		}
	}

	/** Translate `key` with `{{name}}` values; plural forms through `count`. */
	t = (key: string, values?: Record<string, unknown>): string => {
		void this.locale; // a dependency, so the text follows the language
		return i18next.t(key, values ?? {}) as string;
	};

	/** BCP 47 tag for Intl: Indian English or the language in India. */
	get tag(): string {
		return `${this.locale}-IN`;
	}

	/** Rupees with Indian grouping: ₹1,23,456.50. `amount` is a decimal string or number. */
	money = (amount: string | number | null | undefined): string => {
		if (amount === null || amount === undefined || amount === '') return '';
		return new Intl.NumberFormat(this.tag, {
			style: 'currency',
			currency: 'INR',
			minimumFractionDigits: 2
		}).format(Number(amount));
	};

	/** A count or measure with Indian grouping (1,00,000). */
	number = (value: number | string | null | undefined, digits?: number): string => {
		if (value === null || value === undefined || value === '') return '';
		return new Intl.NumberFormat(this.tag, {
			maximumFractionDigits: digits ?? 3,
			minimumFractionDigits: digits ?? 0
		}).format(Number(value));
	};

	/** Date and time in the lab's zone (IST). */
	dateTime = (iso: string | null | undefined): string => {
		if (!iso) return '';
		return new Intl.DateTimeFormat(this.tag, {
			dateStyle: 'medium',
			timeStyle: 'short',
			timeZone: 'Asia/Kolkata'
		}).format(new Date(iso));
	};

	date = (iso: string | null | undefined): string => {
		if (!iso) return '';
		return new Intl.DateTimeFormat(this.tag, { dateStyle: 'medium', timeZone: 'Asia/Kolkata' })
			.format(new Date(iso.length === 10 ? `${iso}T00:00:00+05:30` : iso));
	};

	time = (iso: string | null | undefined): string => {
		if (!iso) return '';
		return new Intl.DateTimeFormat(this.tag, { timeStyle: 'short', timeZone: 'Asia/Kolkata' })
			.format(new Date(iso));
	};
}

export const i18n = new I18n();
export const t = i18n.t;
