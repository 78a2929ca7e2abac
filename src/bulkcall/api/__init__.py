"""HTTP layer only: routing, request parsing, envelopes. Rules live in services and domain."""
