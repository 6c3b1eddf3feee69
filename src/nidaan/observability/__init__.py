"""Metrics exposition, database-derived gauges and OpenTelemetry tracing of every process."""
