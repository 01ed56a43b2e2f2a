"""Real-time event streaming of an OSISM-style cloud manager."""

__version__ = "0.1.0"
