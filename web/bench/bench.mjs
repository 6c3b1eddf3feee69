/**
 * Web app benchmark: cold shell load, JS size (gzip), 500-row worklist render, and the time from
 * "Place order" at the desk to the order on the lab's worklist — each beside a baseline measured
 * in the same run on the same server (a static file load, a plain-DOM render of the same rows,
 * the same order placed straight through REST).
 *
 * Usage: npm run bench   (starts its own server like the browser tests; or NIDAAN_E2E_BASE_URL)
 * Goals (issue 14): shell < 1 s, JS < 300 KB gzip, 500 rows < 200 ms.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium, request as apiRequest } from 'playwright-core';

const here = import.meta.dirname;
const root = resolve(here, '../..');
const dist = resolve(root, 'src/nidaan/webui/dist');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => `${ms.toFixed(0)} ms`;

async function startServer() {
	if (process.env.NIDAAN_E2E_BASE_URL) return { base: process.env.NIDAAN_E2E_BASE_URL, stop: async () => {} };
	const server = spawn(resolve(root, '.venv/bin/python'), [resolve(here, '../tests/e2e/server.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
	const base = await new Promise((ok, fail) => {
		let out = '';
		server.stdout.on('data', (c) => {
			out += c;
			const m = out.match(/READY (\S+)/);
			if (m) ok(m[1]);
		});
		server.on('exit', (code) => fail(new Error(`server exited ${code}`)));
	});
	return { base, stop: async () => { server.kill('SIGTERM'); await new Promise((r) => server.on('exit', r)); } };
}

function jsSizes() {
	const files = [];
	const walk = (dir) => {
		for (const name of readdirSync(dir)) {
			const path = join(dir, name);
			if (statSync(path).isDirectory()) walk(path);
			else if (name.endsWith('.js')) files.push(path);
		}
	};
	walk(join(dist, '_app'));
	let raw = 0;
	let gz = 0;
	for (const file of files) {
		const data = readFileSync(file);
		raw += data.length;
		gz += gzipSync(data, { level: 9 }).length;
	}
	return { files: files.length, raw, gz };
}

async function main() {
	const { base, stop } = await startServer();
	const browser = await chromium.launch({ executablePath: process.env.NIDAAN_CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
	const api = await apiRequest.newContext({ baseURL: base });
	const token = async (role) => (await (await api.post('/api/v1/auth/token', { form: { username: `${role}@demo.example.com`, password: 'nidaan-demo' } })).json()).access_token;
	const auth = async (role) => ({ Authorization: `Bearer ${await token(role)}` });
	const call = async (role, method, path, data) => {
		const r = await api.fetch(path, { method, data, headers: await auth(role) });
		if (!r.ok()) throw new Error(`${method} ${path}: ${r.status()} ${await r.text()}`);
		return r.json();
	};
	const branches = (await call('admin', 'GET', '/api/v1/branches')).items;
	const lab = branches.find((b) => b.code === 'CL');
	try {
		// 1. JS size.
		const js = jsSizes();
		const shellPage = await browser.newPage();
		const loaded = [];
		shellPage.on('response', async (r) => {
			if (r.url().endsWith('.js')) loaded.push(gzipSync(await r.body(), { level: 9 }).length);
		});
		await shellPage.goto(base, { waitUntil: 'networkidle' });
		await shellPage.close();

		// 2. Cold shell load (fresh profile: no HTTP cache, no service worker) vs a static file.
		const shell = [];
		const baseline = [];
		for (let i = 0; i < RUNS; i++) {
			const context = await browser.newContext();
			const page = await context.newPage();
			await page.goto(base);
			await page.getByRole('heading', { name: 'Sign in to Nidaan' }).waitFor();
			shell.push(await page.evaluate(() => performance.now()));
			const plain = await context.newPage();
			await plain.goto(`${base}/manifest.webmanifest`);
			baseline.push(await plain.evaluate(() => performance.getEntriesByType('navigation')[0].responseEnd));
			await context.close();
		}

		// 3. 500 rows on the result entry worklist.
		let pending = (await call('technician', 'GET', '/api/v1/worklists/pending-entry?limit=1')).pagination.total_count;
		for (let n = 0; pending < 500; n++) {
			const patient = (await call('front_desk', 'POST', '/api/v1/patients', { full_name: `Bench Patient ${n}`, sex: 'male', age_years: 40 + n })).patient;
			const order = await call('front_desk', 'POST', '/api/v1/orders', { patient_id: patient.id, branch_id: lab.id, items: ['CBC', 'LFT', 'KFT', 'LIPID'] });
			for (const s of order.samples) {
				await call('front_desk', 'POST', `/api/v1/samples/${s.accession}/collect`, {});
				await call('technician', 'POST', `/api/v1/samples/${s.accession}/receive`, {});
			}
			pending = (await call('technician', 'GET', '/api/v1/worklists/pending-entry?limit=1')).pagination.total_count;
		}
		const context = await browser.newContext({ baseURL: base });
		const page = await context.newPage();
		await page.goto('/');
		await page.getByLabel('E-mail').fill('technician@demo.example.com');
		await page.getByLabel('Password').fill('nidaan-demo');
		await page.getByRole('button', { name: 'Sign in' }).click();
		await page.getByTestId('who').waitFor();
		const grid = [];
		const plainGrid = [];
		for (let i = 0; i < RUNS; i++) {
			await page.goto('/dashboard');
			await page.getByRole('link', { name: 'Result entry' }).click();
			await page.waitForFunction(() => performance.getEntriesByName('worklist:500').length > 0, null, { timeout: 60_000 });
			grid.push(await page.evaluate(() => performance.getEntriesByName('worklist:500').at(-1).duration));
			// Baseline: the same 500 rows as plain DOM (one innerHTML), same page, same styles.
			plainGrid.push(
				await page.evaluate(async () => {
					const rows = [...document.querySelectorAll('[data-testid=worklist-row]')].map((tr) => [...tr.children].map((td) => td.textContent));
					const table = document.createElement('table');
					table.className = 'worklist';
					const started = performance.now();
					table.innerHTML = `<tbody>${rows.map((r) => `<tr>${r.map((c, j) => `<td>${j === 3 ? '<input>' : c}</td>`).join('')}</tr>`).join('')}</tbody>`;
					document.querySelector('main').append(table);
					await new Promise((r) => requestAnimationFrame(r));
					const took = performance.now() - started;
					table.remove();
					return took;
				})
			);
		}

		// 4. Save at the desk -> on the lab's worklist (pending collection), vs REST directly.
		const desk = await browser.newContext({ baseURL: base });
		const dp = await desk.newPage();
		await dp.goto('/');
		await dp.getByLabel('E-mail').fill('front_desk@demo.example.com');
		await dp.getByLabel('Password').fill('nidaan-demo');
		await dp.getByRole('button', { name: 'Sign in' }).click();
		await dp.getByTestId('who').waitFor();
		await dp.getByTestId('branch-picker').selectOption(lab.id);
		await dp.getByTestId('last-sync').getByText('Last sync').waitFor({ timeout: 60_000 });
		const tech = await auth('admin');
		const onWorklist = async (orderId) => {
			for (;;) {
				const items = (await (await api.get(`/api/v1/samples?order_id=${orderId}&limit=10`, { headers: tech })).json()).items;
				if (items.length) {
					const list = (await (await api.get(`/api/v1/worklists/pending-collection?branch_id=${lab.id}&limit=100`, { headers: tech })).json()).items;
					if (list.some((s) => s.order_id === orderId)) return;
				}
				await new Promise((r) => setTimeout(r, 20));
			}
		};
		const ui = [];
		const rest = [];
		for (let i = 0; i < 5; i++) {
			const patient = (await call('front_desk', 'POST', '/api/v1/patients', { full_name: `Desk Bench ${i}`, sex: 'female', age_years: 30 })).patient;
			await dp.goto(`/desk/patients/${patient.id}`);
			const picker = dp.getByTestId('test-picker');
			await picker.fill('GLUF');
			await dp.locator('#orderable-list [role=option]').first().waitFor();
			await picker.press('Enter');
			const started = Date.now();
			await picker.press('Control+Enter');
			await dp.waitForURL(/\/desk\/orders\//);
			const orderId = dp.url().split('/').at(-1);
			await onWorklist(orderId);
			ui.push(Date.now() - started);
			const t0 = Date.now();
			const direct = await call('front_desk', 'POST', '/api/v1/orders', { patient_id: patient.id, branch_id: lab.id, items: ['GLUF'] });
			await onWorklist(direct.id);
			rest.push(Date.now() - t0);
		}

		const rows = [
			['JS, all chunks (gzip)', `${(js.gz / 1024).toFixed(1)} KB`, `${js.files} files, ${(js.raw / 1024).toFixed(0)} KB raw`, 'goal < 300 KB'],
			['JS loaded for the shell (gzip)', `${(loaded.reduce((a, b) => a + b, 0) / 1024).toFixed(1)} KB`, `${loaded.length} files`, ''],
			['Cold shell load (login form visible)', fmt(median(shell)), `static file ${fmt(median(baseline))} → ×${(median(shell) / median(baseline)).toFixed(1)}`, 'goal < 1 s'],
			['500-row worklist render', fmt(median(grid)), `plain DOM ${fmt(median(plainGrid))} → ×${(median(grid) / median(plainGrid)).toFixed(2)}`, 'goal < 200 ms'],
			['Save at desk → on lab worklist', fmt(median(ui)), `REST directly ${fmt(median(rest))} → ×${(median(ui) / median(rest)).toFixed(1)}`, ''],
		];
		console.log(`\nNidaan web app benchmark (${RUNS} runs, medians; ${new Date().toISOString()})`);
		for (const r of rows) console.log(`  ${r[0].padEnd(38)} ${r[1].padStart(10)}   ${r[2]}   ${r[3]}`);
		console.log(`  (shell runs: ${shell.map((x) => x.toFixed(0)).join(', ')} ms; worklist runs: ${grid.map((x) => x.toFixed(0)).join(', ')} ms; desk→lab runs: ${ui.join(', ')} ms)`);
	} finally {
		await browser.close();
		await api.dispose();
		await stop();
	}
}

main().catch((error) => {
	console.error(error);
	process.exit(1);
});
