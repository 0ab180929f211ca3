"""Adversarial-robustness attacks: white-box gradient attacks and black-box query attacks on pixel-space classifiers."""
