"""A module a crafted state-dict bundle names as its ``model_class``: importing it is what must not happen
without trust. It records that it was imported, and defines the same network as the test saves."""

from __future__ import annotations

import torch

IMPORTED = True


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # type: ignore[no-any-return]
