"""admbench: reproducibility benchmark for ADMPO and its baselines (the harness package)."""

__version__ = "0.1.0"
