/**
 * The screens, who sees each, and where modules that are still being built will slot in
 * (billing, QC, ABDM add their entries here; the layout has room for them).
 */
export interface Screen {
	path: string;
	label: string; // translation key
	roles: string[];
	/** Works on the local copy without the network (a collection centre's screens). */
	offline?: boolean;
}

export const SCREENS: Screen[] = [
	{ path: '/desk', label: 'nav.desk', roles: ['admin', 'front_desk'], offline: true },
	{ path: '/phlebotomy', label: 'nav.phlebotomy', roles: ['admin', 'front_desk', 'phlebotomist'], offline: true },
	{ path: '/receipt', label: 'nav.receipt', roles: ['admin', 'technician'] },
	{ path: '/results', label: 'nav.results', roles: ['admin', 'technician', 'pathologist'] },
	{ path: '/verification', label: 'nav.verification', roles: ['admin', 'pathologist'] },
	{ path: '/reports', label: 'nav.reports', roles: ['admin', 'front_desk', 'technician', 'pathologist'] },
	{ path: '/conflicts', label: 'nav.conflicts', roles: ['admin', 'front_desk', 'pathologist', 'auditor'], offline: true },
	{ path: '/instruments', label: 'nav.instruments', roles: ['admin', 'technician'] },
	{ path: '/dashboard', label: 'nav.dashboard', roles: ['admin', 'pathologist', 'auditor', 'technician'] },
	{ path: '/admin', label: 'nav.admin', roles: ['admin', 'auditor'] },
	{ path: '/notifications', label: 'notify.nav', roles: ['admin', 'auditor'] },
	{ path: '/abdm', label: 'abdm.nav', roles: ['admin', 'pathologist', 'auditor'] },
	{ path: '/billing', label: 'nav.billing', roles: ['admin', 'billing', 'auditor'] },
	{ path: '/einvoice', label: 'nav.einvoice', roles: ['admin', 'billing', 'auditor'] },
	{ path: '/qc', label: 'nav.qc', roles: ['admin', 'technician', 'pathologist', 'auditor'] },
	{ path: '/home', label: 'nav.home', roles: ['admin', 'front_desk'] },
	{ path: '/run', label: 'nav.run', roles: ['admin', 'front_desk', 'phlebotomist'], offline: true }
];

export function screensFor(roles: string[]): Screen[] {
	return SCREENS.filter((s) => s.roles.some((r) => roles.includes(r)));
}

/** Where a person lands after signing in: their first screen. */
export function homeFor(roles: string[]): string {
	return screensFor(roles)[0]?.path ?? '/dashboard';
}
