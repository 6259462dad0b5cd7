"""baton: a self-hosted home for the working sessions of AI coding agents."""

__version__ = "0.1.0"
