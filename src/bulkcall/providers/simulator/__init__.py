"""The simulator: a seeded model of a phone network, a first-class provider (demo, tests, benchmarks)."""

from bulkcall.providers.simulator.config import SimulatorConfig

__all__ = ["SimulatorConfig"]
