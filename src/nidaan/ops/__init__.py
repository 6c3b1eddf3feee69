"""Operating an installation: backups and restores, the event relay's command line."""
