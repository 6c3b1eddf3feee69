"""Analyzer and hospital-system interfaces: HL7 v2 over MLLP, ASTM E1381/E1394 over TCP/serial."""
