/** An offline password check: PBKDF2-SHA-256 of the password, made at each online login and
 * kept in IndexedDB, so a person can unlock the app at a centre whose line is down. It opens
 * only this browser's local copy; the server still needs a real login before anything syncs. */
export const ITERATIONS = 210_000;

const b64 = (bytes: ArrayBuffer | Uint8Array) =>
	btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

export async function deriveVerifier(
	password: string,
	salt: Uint8Array | string = crypto.getRandomValues(new Uint8Array(16)),
	iterations = ITERATIONS
): Promise<{ verifier: string; salt: string; iterations: number }> {
	const saltBytes = typeof salt === 'string' ? unb64(salt) : salt;
	const key = await crypto.subtle.importKey(
		'raw',
		new TextEncoder().encode(password),
		'PBKDF2',
		false,
		['deriveBits']
	);
	const bits = await crypto.subtle.deriveBits(
		{ name: 'PBKDF2', hash: 'SHA-256', salt: saltBytes as BufferSource, iterations },
		key,
		256
	);
	return { verifier: b64(bits), salt: b64(saltBytes), iterations };
}

export async function checkVerifier(
	password: string,
	stored: { verifier: string; salt: string; iterations: number }
): Promise<boolean> {
	const { verifier } = await deriveVerifier(password, stored.salt, stored.iterations);
	// Constant-time enough for a local check: compare every byte.
	let diff = verifier.length ^ stored.verifier.length;
	for (let i = 0; i < Math.min(verifier.length, stored.verifier.length); i++) {
		diff |= verifier.charCodeAt(i) ^ stored.verifier.charCodeAt(i);
	}
	return diff === 0;
}
