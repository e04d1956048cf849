"""Datasets: streaming readers for tabular and text files, and the checks that run on their rows."""
