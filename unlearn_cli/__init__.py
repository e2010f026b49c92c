"""unlearn-cli: fine-tune LLMs, make them unlearn chosen data, and evaluate how well they forgot."""

__version__ = "0.1.0"
