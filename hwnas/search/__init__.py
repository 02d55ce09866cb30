"""Search strategies over supernets: DNAS (FBNet) so far."""
