"""Training, evaluation and data loading for the speech emotion model."""
