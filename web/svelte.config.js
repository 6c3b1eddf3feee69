import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** The staff app is a single-page app: one shell (index.html), routed in the browser, served
 * by `nidaan serve` from the Python package (../src/nidaan/webui/dist). */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		adapter: adapter({
			pages: '../src/nidaan/webui/dist',
			assets: '../src/nidaan/webui/dist',
			fallback: 'index.html',
			precompress: true,
			strict: true
		}),
		// The shell's inline bootstrap script is allowed by its hash, nothing else inline.
		csp: {
			mode: 'hash',
			directives: {
				'default-src': ['self'],
				'script-src': ['self'],
				'style-src': ['self', 'unsafe-inline'],
				'img-src': ['self', 'data:', 'blob:'],
				'connect-src': ['self'],
				'worker-src': ['self'],
				'manifest-src': ['self'],
				'media-src': ['self', 'blob:'],
				'frame-src': ['self', 'blob:'],
				'object-src': ['none'],
				'base-uri': ['self'],
				'form-action': ['self']
			}
		},
		serviceWorker: { register: false },
		// One script and one stylesheet: a cold load is a handful of requests to a busy server
		// rather than twenty (measured in bench/bench.mjs).
		output: { bundleStrategy: 'single' },
		version: { pollInterval: 0 }
	}
};

export default config;
