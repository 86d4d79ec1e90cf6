"""Building notebooks for tests, written the way Jupyter (nbformat) writes them."""

from __future__ import annotations

import json


def code(source, outputs=None, split=True) -> dict:
    return {
        "cell_type": "code", "execution_count": None, "metadata": {}, "outputs": outputs or [],
        "source": source.splitlines(keepends=True) if split else source,
    }


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source.splitlines(keepends=True)}


def notebook_text(*cells: dict, language: str = "python", indent=1) -> str:
    document = {
        "cells": list(cells),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": language, "name": "python3"},
            "language_info": {"name": language, "version": "3.11.4"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(document, indent=indent, sort_keys=True, ensure_ascii=False) + "\n"


IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
MODEL = "model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\ncriterion = nn.CrossEntropyLoss()\n"
LOOP = (
    "for x, y in loader:\n"
    "    optimizer.zero_grad()\n"
    "    out = F.softmax(model(x), dim=1)\n"
    "    loss = criterion(out, y)\n"
    "    loss.backward()\n"
    "    optimizer.step()\n"
)
ADAM = "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)"
