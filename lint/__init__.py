"""The static engine: discovery, parsing, the shared script analysis, suppressions, reporters."""
