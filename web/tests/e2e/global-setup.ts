/** Start `tests/e2e/server.py` (a real Nidaan on its own database) before the browser tests and
 * stop it after; tests read the address from NIDAAN_E2E_BASE_URL. */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export default async function globalSetup(): Promise<() => Promise<void>> {
	if (process.env.NIDAAN_E2E_BASE_URL) return async () => {}; // a server given from outside
	const root = resolve(import.meta.dirname, '../../..');
	const server = spawn(resolve(root, '.venv/bin/python'), [resolve(import.meta.dirname, 'server.py')], {
		env: { ...process.env, NIDAAN_E2E_SERVER_LOG: resolve(import.meta.dirname, '../../test-results/server.log') },
		stdio: ['ignore', 'pipe', 'inherit']
	});
	const base = await new Promise<string>((ok, fail) => {
		let output = '';
		server.stdout!.on('data', (chunk: Buffer) => {
			output += chunk.toString();
			const match = output.match(/READY (\S+)/);
			const abdm = output.match(/ABDM_SIMULATOR (\S+)/);
			if (abdm) process.env.NIDAAN_E2E_ABDM_SIMULATOR = abdm[1];
			if (match) ok(match[1]);
		});
		server.on('exit', (code) => fail(new Error(`the test server exited (${code}) before it was ready`)));
	});
	process.env.NIDAAN_E2E_BASE_URL = base;
	return async () => {
		server.kill('SIGTERM');
		await new Promise((done) => server.on('exit', done));
	};
}
