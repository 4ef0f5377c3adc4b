"""prefect_lipsync.blocks: see the modules in this package."""
