"""The version of spinsim (its run files record it)."""

__version__ = "0.1.0"
