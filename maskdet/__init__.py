"""maskdet: train, inspect and use a face-mask classifier. UI-free core."""

__version__ = "0.1.0"
