/// <reference types="@sveltejs/kit" />
/// <reference no-default-lib="true"/>
/// <reference lib="esnext" />
/// <reference lib="webworker" />
/**
 * Precaches the app shell and its assets at install, so the app opens with no network at all.
 * Navigations get the cached shell (the app routes in the browser); hashed assets come from the
 * cache; API calls are never cached (the app keeps its offline data in IndexedDB). A new release
 * installs beside the old one and takes over at the next load of every tab.
 */
import { build, files, version } from '$service-worker';

const sw = self as unknown as ServiceWorkerGlobalScope;
const CACHE = `nidaan-shell-${version}`;
const SHELL = '/index.html';
const ASSETS = [...build, ...files.filter((f) => !f.endsWith('.gz') && !f.endsWith('.br')), SHELL];
// Pages the server makes itself: payment checkout and return pages, the demo's gateway
// simulators and signed file links open in this browser too and must not get the app shell.
const SERVER_PATHS = ['/api/', '/graphql', '/fhir', '/webhooks', '/verify/', '/docs', '/redoc', '/openapi.json', '/healthz', '/readyz', '/pay/', '/simulators/', '/files/'];

sw.addEventListener('install', (event) => {
	event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(ASSETS)));
});

sw.addEventListener('activate', (event) => {
	event.waitUntil(
		caches.keys().then(async (keys) => {
			for (const key of keys) if (key !== CACHE) await caches.delete(key);
			await sw.clients.claim();
		})
	);
});

sw.addEventListener('message', (event) => {
	if (event.data === 'skip-waiting') void sw.skipWaiting();
});

sw.addEventListener('fetch', (event) => {
	const request = event.request;
	if (request.method !== 'GET') return;
	const url = new URL(request.url);
	if (url.origin !== sw.location.origin) return;
	if (SERVER_PATHS.some((p) => url.pathname.startsWith(p))) return;
	event.respondWith(
		(async () => {
			const cache = await caches.open(CACHE);
			if (request.mode === 'navigate') {
				return (await cache.match(SHELL)) ?? fetch(request);
			}
			const hit = await cache.match(url.pathname);
			if (hit) return hit;
			return fetch(request);
		})()
	);
});
