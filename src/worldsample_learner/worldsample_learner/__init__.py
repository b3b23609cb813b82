"""WorldSample learner: image-based off-policy RL with demos and Policy-Paced Learning (PPL)."""
