"""ML1xx: how data reaches the model."""
