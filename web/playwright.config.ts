import { defineConfig } from '@playwright/test';

/** Browser tests: Debian's chromium (the Makefile installs it) against a real `nidaan demo run`
 * on an ephemeral port with its own database (tests/e2e/global-setup.ts). */
export default defineConfig({
	testDir: 'tests/e2e',
	globalSetup: './tests/e2e/global-setup.ts',
	workers: 1,
	fullyParallel: false,
	retries: 0,
	timeout: 60_000,
	expect: { timeout: 10_000 },
	reporter: [['list']],
	outputDir: 'test-results',
	use: {
		browserName: 'chromium',
		launchOptions: {
			executablePath: process.env.NIDAAN_CHROMIUM ?? '/usr/bin/chromium',
			args: [
				'--no-sandbox',
				'--disable-gpu',
				'--disable-quic',
				'--no-first-run',
				'--disable-background-networking',
				'--disable-component-update',
				'--disable-sync'
			]
		},
		headless: true,
		locale: 'en-IN',
		timezoneId: 'Asia/Kolkata',
		viewport: { width: 1280, height: 800 },
		trace: 'off',
		actionTimeout: 15_000,
		navigationTimeout: 20_000,
		screenshot: 'only-on-failure'
	}
});
