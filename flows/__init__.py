"""prefect_lipsync.flows: see the modules in this package."""
