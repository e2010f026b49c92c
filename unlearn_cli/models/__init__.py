"""Model and tokenizer loading (see `unlearn_cli.models.loading`).

Nothing is imported here so that `unlearn --help` and `unlearn registry list` never pay for torch.
"""
