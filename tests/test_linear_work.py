"""The work of a check grows linearly with the file (issue 24: a 100,000-line file took 15 s),
also when the same names come back: scripts pasted one after another into one file (or the cells
of a long notebook) define `model`, `train`, `loader` and import `torch` again and again.
Counted in Python function calls, not timed, so a loaded machine cannot make it flaky."""

from __future__ import annotations

import threading

from mlplint.lint.config import Settings
from mlplint.lint.engine import check_source

SCRIPT = '''
import argparse
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.drop = nn.Dropout(0.6)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def train(model, loader, optimizer, scheduler):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    scheduler.step()
    return loss.item()


def test(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct


data = TensorDataset(torch.randn(64, 8), torch.randint(0, 2, (64,)))
loader = DataLoader(data, batch_size=16, shuffle=True)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
for epoch in range(args.epochs):
    loss = train(model, loader, optimizer, scheduler)
    correct = test(model, loader)
    print(epoch, loss, correct)
sample = model(torch.randn(1, 8))
torch.save(model.state_dict(), "model.pt")
'''


def _python_calls(source: str) -> int:
    """How many Python functions a check of `source` calls (the check runs on its own thread)."""
    calls = 0

    def count(frame, event, arg) -> None:
        nonlocal calls
        calls += event == "call"

    threading.setprofile(count)
    try:
        check_source(source, "joined.py", Settings())
    finally:
        threading.setprofile(None)
    return calls


def test_joined_scripts_cost_twice_as_much_when_twice_as_long():
    # Each read of `torch`, `train` or `model` once meant every definition of it in the file, so
    # the work grew with the square of the copies (3.6 times as many calls for twice the copies).
    once, twice = _python_calls(SCRIPT * 8), _python_calls(SCRIPT * 16)
    assert twice / once < 2.2, (once, twice)
