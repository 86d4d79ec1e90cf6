"""ML4xx: loss functions and what is fed to them."""
