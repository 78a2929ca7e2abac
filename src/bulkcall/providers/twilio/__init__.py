"""Twilio (or any server speaking its REST API)."""

from bulkcall.providers.twilio.config import TwilioConfig

__all__ = ["TwilioConfig"]
