"""Users, roles, tokens and API keys; who may do what within one organisation."""
