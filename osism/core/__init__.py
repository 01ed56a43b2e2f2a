"""The event and what it is made of: OpenStack payload shapes and metadata,
filters, the event log's entries and positions, back-off and rate-limited
logging. No I/O: everything above builds on it."""
