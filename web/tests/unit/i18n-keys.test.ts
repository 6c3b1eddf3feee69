import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import en from '../../src/lib/i18n/locales/en.json';

function files(dir: string): string[] {
	return readdirSync(dir).flatMap((name) => {
		const path = join(dir, name);
		return statSync(path).isDirectory() ? files(path) : /\.(svelte|ts)$/.test(name) ? [path] : [];
	});
}

function has(key: string): boolean {
	let node: unknown = en;
	for (const part of key.split('.')) {
		if (node && typeof node === 'object' && part in (node as object)) node = (node as Record<string, unknown>)[part];
		else return false;
	}
	return typeof node === 'string';
}

describe('every text on screen is translatable', () => {
	it('each literal t("…") key exists in en.json (plural keys by their _one/_other forms)', () => {
		const source = resolve(import.meta.dirname, '../../src');
		const missing: string[] = [];
		for (const file of files(source)) {
			for (const match of readFileSync(file, 'utf8').matchAll(/\bt\(\s*'([a-z_]+(?:\.[a-zA-Z_]+)+)'/g)) {
				const key = match[1];
				const plural = has(`${key}_one`) && has(`${key}_other`);
				if (!has(key) && !plural) missing.push(`${key} (${file.replace(source, 'src')})`);
			}
		}
		expect(missing).toEqual([]);
	});
});
