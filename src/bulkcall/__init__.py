"""bulkcall: bulk outbound call campaigns."""

__version__ = "0.1.0"
