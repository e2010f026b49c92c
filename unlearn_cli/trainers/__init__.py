"""Trainer handlers: `finetune` and, one file each, the unlearning methods."""
