"""What a rank of a distributed script needs in the probe's child process: its own statistics files,
a world of one when the script initialises a process group from the environment and was not
started by torchrun, and, where CUDA is absent, a script written for GPUs run on the CPU (nccl as
gloo, CUDA placements kept on the CPU). Every change made is named in `mapped`, which the stats
report. Child-process side: torch and the standard library only.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .patches import Patches

# Environment torchrun gives every rank; a world of one gets the same.
WORLD_OF_ONE = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0",
                "MASTER_ADDR": "127.0.0.1"}
# Factory functions whose `device=` a GPU script sets; on a CPU machine that device becomes the CPU.
FACTORIES = ("zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "linspace", "eye",
             "tensor", "as_tensor", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like")


def rank_file(template: Optional[str], rank: int) -> Optional[str]:
    """A per-rank file of a torchrun job (the parent names them with a `{rank}` placeholder)."""
    return template.replace("{rank}", str(rank)) if template else template


def current_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def dump_stacks_on_signal(path: str) -> None:
    """On SIGUSR1 write where every thread is (the parent asks when the job timed out, to tell the
    rank that hangs from the ranks waiting for it). Written by faulthandler from C, so it works while
    the rank is blocked in a collective."""
    handle = open(path, "w", encoding="utf-8")  # kept open for the process's life
    faulthandler.register(signal.SIGUSR1, file=handle, all_threads=True)  # the main thread comes last


def needs_world_of_one(script: str) -> bool:
    """The script initialises a process group and was not started by a launcher (no RANK set)."""
    if "RANK" in os.environ:
        return False
    try:
        with open(script, encoding="utf-8", errors="replace") as handle:
            return "init_process_group" in handle.read()
    except OSError:
        return False


def set_world_of_one(mapped: list[str]) -> None:
    port = free_port()
    for name, value in {**WORLD_OF_ONE, "MASTER_PORT": str(port)}.items():
        os.environ.setdefault(name, value)
    mapped.append(f"world of one: RANK=0, WORLD_SIZE=1, LOCAL_RANK=0, MASTER_ADDR=127.0.0.1, MASTER_PORT={port}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, int) and not isinstance(device, bool)  # an index means a CUDA device


class CpuMapping:
    """Runs a GPU script on the CPU: installed when CUDA is not available (or hidden by
    `--device cpu`); each kind of change is named once in `mapped` when it first happens."""

    def __init__(self, mapped: list[str]) -> None:
        self.mapped = mapped
        self._patches = Patches()

    def note(self, change: str) -> None:
        if change not in self.mapped:
            self.mapped.append(change)

    def install(self) -> None:
        if dist.is_available():  # some builds (older macOS wheels) have no torch.distributed
            self._patches.wrap(dist, "init_process_group", self._init_process_group)
        self._patches.wrap(torch.cuda, "set_device", self._ignored("torch.cuda.set_device() ignored"))
        self._patches.wrap(torch.cuda, "synchronize", self._ignored("torch.cuda.synchronize() ignored"))
        self._patches.wrap(torch.Tensor, "cuda", self._kept("Tensor.cuda() kept on the CPU", lambda tensor, *a, **k: tensor))
        self._patches.wrap(nn.Module, "cuda", self._kept("Module.cuda() kept on the CPU", lambda module, *a, **k: module))
        self._patches.wrap(torch.Tensor, "to", self._to)
        self._patches.wrap(nn.Module, "to", self._to)
        self._patches.wrap(DistributedDataParallel, "__init__", self._ddp_init)
        self._patches.wrap(torch, "load", self._keyword_to_cpu("map_location", "torch.load(map_location=CUDA) mapped to the CPU"))
        on_cpu = self._keyword_to_cpu("device", "device='cuda' in tensor factories mapped to the CPU")
        for name in FACTORIES:
            self._patches.wrap(torch, name, on_cpu)

    def remove(self) -> None:
        self._patches.remove()

    def _init_process_group(self, original: Callable) -> Callable:
        def init_process_group(*args: Any, **kwargs: Any) -> Any:
            backend = kwargs.get("backend", args[0] if args else None)
            if isinstance(backend, str) and backend.lower() == "nccl":
                self.note("backend nccl run as gloo")
                if args:
                    args = ("gloo", *args[1:])
                else:
                    kwargs["backend"] = "gloo"
            return original(*args, **kwargs)

        return init_process_group

    def _ignored(self, change: str) -> Callable[[Callable], Callable]:
        def make(original: Callable) -> Callable:
            def ignored(*args: Any, **kwargs: Any) -> None:
                self.note(change)

            return ignored

        return make

    def _kept(self, change: str, result: Callable) -> Callable[[Callable], Callable]:
        def make(original: Callable) -> Callable:
            def kept(*args: Any, **kwargs: Any) -> Any:
                self.note(change)
                return result(*args, **kwargs)

            return kept

        return make

    def _to(self, original: Callable) -> Callable:
        def to(moved: Any, *args: Any, **kwargs: Any) -> Any:
            if args and _is_cuda(args[0]):
                self.note("CUDA devices in .to() mapped to the CPU")
                args = ("cpu", *args[1:])
            if _is_cuda(kwargs.get("device")):
                self.note("CUDA devices in .to() mapped to the CPU")
                kwargs["device"] = "cpu"
            return original(moved, *args, **kwargs)

        return to

    def _keyword_to_cpu(self, keyword: str, note: str) -> Callable[[Callable], Callable]:
        """A wrapper maker that turns a CUDA value of `keyword` into "cpu" (`device=` of the tensor
        factories, `map_location=` of torch.load)."""
        def make(original: Callable) -> Callable:
            def on_cpu(*args: Any, **kwargs: Any) -> Any:
                if _is_cuda(kwargs.get(keyword)):
                    self.note(note)
                    kwargs[keyword] = "cpu"
                return original(*args, **kwargs)

            return on_cpu

        return make

    def _ddp_init(self, original: Callable) -> Callable:
        def __init__(ddp: Any, module: nn.Module, *args: Any, **kwargs: Any) -> None:
            placed = [*args[:2], kwargs.get("device_ids"), kwargs.get("output_device")]  # its first two positional ones
            if any(value is not None for value in placed):
                self.note("DistributedDataParallel device_ids/output_device dropped (CPU module)")
                kwargs.update(device_ids=None, output_device=None)
                args = args[2:]
            original(ddp, module, *args, **kwargs)

        return __init__
