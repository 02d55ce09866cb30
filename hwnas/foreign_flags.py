"""Flags the original NAS tools' users type, answered with the hwnas option that does the same."""

from __future__ import annotations

from collections.abc import Sequence

GPUS = "--device cuda:N for one GPU; several: torchrun --nproc_per_node N -m hwnas ..."
# flag -> (the tool it comes from, what to use here); --learning-rate(-min) are accepted as aliases instead
FOREIGN_FLAGS: dict[str, tuple[str, str]] = {
    "--gpu": ("the MXNet FBNet code", GPUS),
    "--gpus": ("the MXNet FBNet code", GPUS),
    "--multi-gpus": ("CNAS", "torchrun --nproc_per_node N -m hwnas ... (DistributedDataParallel)"),
    "--load-model-path": ("the MXNet FBNet code", "--resume RUN_DIR (or RUN_DIR/checkpoints/epoch_NNN.pt)"),
    "--model-type": ("the MXNet FBNet code", "--head softmax|amsoftmax|arcface"),
    "--search-strategy": ("the one-shot NAS example", "--strategy random|evolution|pareto"),
    "--generation_num": ("the one-shot NAS example", "--generation-num"),
    "--log-frequence": ("CNAS", "--log-every"),
    "--save": ("CNAS", "--run-dir"),
    "--arch_learning_rate": ("DARTS", "--arch-lr"),
    "--arch_weight_decay": ("DARTS", "--arch-weight-decay"),
}


def foreign_flag(argv: Sequence[str]) -> str | None:
    """One line naming the hwnas equivalent of the first foreign flag in `argv`, else None."""
    for arg in argv:
        if arg == "--":
            return None
        flag = arg.split("=", 1)[0]
        if flag in FOREIGN_FLAGS:
            tool, here = FOREIGN_FLAGS[flag]
            return f"{flag} is {tool}'s flag; hwnas has {here}"
    return None
