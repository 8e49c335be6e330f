"""Where a run computes and in what precision: device choice, seeding, bf16 autocast, compile.

Everything here is decided once, at a stage's entry, from validated params; the training loop
only receives the results (a torch.device and an autocast factory).
"""

import contextlib
import os
import platform
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
import torch.utils.deterministic
from torch import nn

from normlab.errors import InputError
from normlab.types import Device

Autocast = Callable[[], AbstractContextManager]


def available() -> list[str]:
    """The devices present here, in the order `auto` prefers them (params.yaml's comment):
    cuda, mps, then the cpu."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def absence(name: str) -> str | None:
    """Why device `name` cannot be used here, as the end of a one-line error; None if it can.

    One wording for params.yaml's `device` and `verify --device`."""
    present = available()
    if name == "auto" or name in present:
        return None
    return f"not available on this machine (available: auto, {', '.join(present)})"


def pick_device(name: Device) -> torch.device:
    """`auto` → cuda > mps > cpu; a named device that is not present is a one-line error."""
    if name == "auto":
        return torch.device(available()[0])
    if reason := absence(name):
        raise InputError("params.yaml", f"device = {name!r}: {reason}")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every RNG torch uses and ask for deterministic kernels (exact repeats on CPU).

    The flag is set through torch._C: the public `use_deterministic_algorithms` also imports
    torch._inductor to set its flag, ~1.3 s of CPU at start-up (evaluate then never imports it;
    train does anyway, via torch.optim); compile_model sets the inductor flag when it is used.
    Deterministic mode would also fill every new tensor with NaN (a debugging aid that catches
    reads of uninitialised memory); that costs ~200 fills a step and changes no result.
    """
    torch.manual_seed(seed)
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def precision(device: torch.device, amp: str) -> str:
    """`auto` → bf16 where the hardware computes it natively: CUDA, and CPUs whose oneDNN has
    bf16 kernels (AVX512-BF16 / AMX); float32 elsewhere, where bf16 would be emulated and slower
    (measurements: docs/performance.md)."""
    if amp == "auto":
        native = device.type == "cuda" or (
            device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
        return "bf16" if native else "float32"
    return "bf16" if amp == "bf16" else "float32"


def make_autocast(device: torch.device, dtype: str) -> Autocast:
    """bf16 autocast (torch's per-op policy: convs and matmuls in bf16, ops it lists as
    precision-sensitive in float32; the loop computes the loss in float32), or none."""
    if dtype == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def compile_model(model: nn.Module, device: torch.device) -> nn.Module:
    """torch.compile, with CUDA graphs on CUDA: a 9k-parameter net is bound by kernel launches
    there, and replaying a captured graph removes them. On a CPU the compiled step was slower
    than eager (docs/performance.md), hence `engine.compile: false` by default."""
    torch.use_deterministic_algorithms(True, warn_only=True)  # now also for inductor's kernels
    return torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else "default")


def host() -> str:
    """The machine a run ran on, as results name it: GPU model (if any), CPU model, CPU count."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = names[0].strip() if names else cpu
    gpu = f"{torch.cuda.get_device_name(0)}, " if torch.cuda.is_available() else ""
    return f"{gpu}{cpu} ({os.cpu_count()} CPUs)"
