"""A user's own model class, as torch.save of a whole module pickles it (by module path).

Imports torch at the top: import this module only after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """Two layers; enough for torch.save to pickle the class and its children."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.act = torch.nn.ReLU()


TINYNET = f"{TinyNet.__module__}.{TinyNet.__qualname__}"
"""The dotted name ``--allow`` takes."""
