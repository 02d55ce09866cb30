"""Names that options choose from, kept free of torch so that `hwnas --help` starts fast."""

MIXING_MODES = ("gumbel", "gumbel_hard", "softmax")
ALPHA_MODES = ("softmax", "dirichlet", "uniform", "random")  # how a cell search mixes ops: DARTS, DrNAS, fixed, RSPS
GENOTYPE_SELECTIONS = ("alpha", "perturbation", "sampled")  # how it picks the genotype: DARTS, DARTS-PT, RSPS
COST_METRICS = ("latency", "macs", "params")
HW_LOSS_FORMS = ("mul", "add")
TARGET_MODES = ("above", "abs")
SAMPLINGS = ("uniform", "fair", "sandwich")
HEADS = ("softmax", "am_softmax", "arcface")
