"""Use cases. Services never commit: the request (or worker step) owns the transaction."""
