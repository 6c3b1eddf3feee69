// A single-page app: rendered in the browser only, routed by SvelteKit's client router.
export const ssr = false;
export const prerender = false;
export const trailingSlash = 'never';
