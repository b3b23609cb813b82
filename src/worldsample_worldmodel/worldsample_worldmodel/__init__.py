"""WorldSample world model: action-conditioned video model, post-training, grounded synthetic rollouts, fidelity."""
