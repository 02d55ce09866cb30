"""Names that options choose from, kept free of torch so that `hwnas --help` starts fast."""

MIXING_MODES = ("gumbel", "gumbel_hard", "softmax")
COST_METRICS = ("latency", "macs", "params")
HW_LOSS_FORMS = ("mul", "add")
TARGET_MODES = ("above", "abs")
SAMPLINGS = ("uniform", "fair", "sandwich")
HEADS = ("softmax", "am_softmax", "arcface")
