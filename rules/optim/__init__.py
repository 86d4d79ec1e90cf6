"""ML2xx: optimisation and the training loop."""
