"""Curation: projects that keep studies, generated results and decisions, and their exports."""
