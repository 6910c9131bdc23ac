"""The template's Optuna sweeper plugin (see optuna_study_sweeper.py)."""
