"""`python -m unlearn_cli.cli` (what `accelerate launch -m` runs)."""

from unlearn_cli.cli import main

main()
