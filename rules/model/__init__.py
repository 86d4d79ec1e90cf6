"""ML3xx: architecture and initialisation."""
