"""Shared plumbing used by every layer: errors, envelopes, clock, logging."""
