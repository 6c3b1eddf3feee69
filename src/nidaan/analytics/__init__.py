"""Read-only figures for the dashboard: today's work, turnaround against targets, critical
values waiting, samples on the road."""
