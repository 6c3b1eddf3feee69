"""DPDP Act 2023 compliance: notice and consent per purpose, the data principal's rights
(access summary, correction, erasure within legal retention, grievance, nominee), retention
with legal holds, the breach register and the patient's own privacy link."""
