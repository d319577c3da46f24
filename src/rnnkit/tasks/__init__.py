"""Task models: one file per application (model + its inference + its metrics)."""
