"""unlearn-cli: fine-tune LLMs, make them unlearn chosen data, and evaluate how well they forgot."""

import logging

__version__ = "0.1.0"

# bitsandbytes (the optional 8-bit optimizers), imported by transformers when installed, warns on every CPU
# with bfloat16 instructions that an optional 4-bit CPU kernel package is missing; nothing here uses it.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
