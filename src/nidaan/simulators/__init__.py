"""Device simulators for demos, tests and benchmarks (analyzers speaking ASTM / HL7)."""

from nidaan.simulators.analyzer import (
    DRIVERS,
    AnalyzerSimulator,
    Faults,
    QueryAnswer,
    UploadReport,
)

__all__ = ["DRIVERS", "AnalyzerSimulator", "Faults", "QueryAnswer", "UploadReport"]
