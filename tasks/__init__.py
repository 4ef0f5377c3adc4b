"""prefect_lipsync.tasks: see the modules in this package."""
