"""Domain events: explicit dataclasses written to an outbox and delivered to subscribers as jobs.

A module declares past-tense events in its ``events.py`` (subclasses of ``DomainEvent``),
publishes them with ``events.service.publish`` inside its business transaction, and other
modules react in their ``handlers.py`` with ``@subscriber(EventType)``. Each subscription
is its own job, so a failing subscriber can never roll back the publisher's work.
"""
