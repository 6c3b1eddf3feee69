"""FHIR R4: our records as NRCeS-profiled resources (``fhir.resources`` R4B models), a
read-only FHIR API at ``/fhir``, and the lab-report document bundle ABDM exchanges."""
