"""The ``nidaan worker`` process role: runs background jobs and periodic tasks."""
