"""auditor: fairness and robustness audits of PyTorch image classifiers."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
