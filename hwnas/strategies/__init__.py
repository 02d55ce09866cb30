"""Search strategies: DNAS (FBNet), DARTS cell search, and random/evolution/Pareto over one-shot supernets."""
