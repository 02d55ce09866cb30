"""Human-readable output: tables (and, with later strategies, plots)."""
