"""The template's launcher for trials side by side (``hydra/launcher=parallel``)."""
