"""The staff web application (built from ``web/`` into ``dist/``), served at ``/``."""
