"""The runtime probe: runs a training script briefly under instrumentation (`mlplint probe`)."""
