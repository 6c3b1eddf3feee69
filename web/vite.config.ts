import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
	plugins: [sveltekit()],
	build: { target: 'es2022', sourcemap: false },
	server: {
		// `npm run dev` talks to a `nidaan serve` on 8000 (NIDAAN_DEV_API to change it).
		proxy: Object.fromEntries(
			['/api', '/graphql'].map((p) => [p, process.env.NIDAAN_DEV_API ?? 'http://127.0.0.1:8000'])
		)
	},
	test: {
		include: ['tests/unit/**/*.test.ts'],
		environment: 'node',
		setupFiles: ['tests/unit/setup.ts']
	}
});
