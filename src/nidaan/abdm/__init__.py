"""ABDM: the lab as a Health Information Provider (ABHA, linking, consent, data transfer)."""
