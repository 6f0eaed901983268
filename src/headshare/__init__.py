"""headshare: when and how attention heads share information."""

__version__ = "0.1.0"
