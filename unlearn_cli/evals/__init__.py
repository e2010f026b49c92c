"""Measurements of what a model knows: likelihoods now, benchmark metrics later."""
