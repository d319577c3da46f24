"""``python -m rnnkit``, and so ``torchrun --nproc_per_node N -m rnnkit <task> train ...``."""

from rnnkit.cli import main

main()
