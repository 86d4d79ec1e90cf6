"""mlplint: a static linter and runtime probe for PyTorch training scripts."""

__version__ = "0.1.0"
