/** How a patient is shown in lists: name, age and sex, masked mobile. */
import type { JSONDict } from '../sync/model';

export function ageOf(data: JSONDict, today = new Date()): number | null {
	if (typeof data.age_years === 'number') return data.age_years;
	const dob = data.date_of_birth as string | undefined;
	if (!dob) return null;
	const born = new Date(`${dob}T00:00:00+05:30`);
	let age = today.getFullYear() - born.getFullYear();
	const m = today.getMonth() - born.getMonth();
	if (m < 0 || (m === 0 && today.getDate() < born.getDate())) age -= 1;
	return age;
}

export function sexLetter(sex: unknown): string {
	return ({ male: 'M', female: 'F', other: 'O' } as Record<string, string>)[String(sex)] ?? '?';
}

export function ageSex(data: JSONDict): string {
	const age = ageOf(data);
	return `${age === null ? '–' : age}/${sexLetter(data.sex)}`;
}

/** Mobile as the server shows it (masked); a local, unsent one is masked here the same way. */
export function maskedMobile(data: JSONDict): string {
	if (data.mobile_masked) return String(data.mobile_masked);
	const digits = String(data.mobile ?? '').replace(/\D/g, '');
	return digits ? `+91******${digits.slice(-4)}` : '';
}
