"""The runner's reading of a child that died: faulthandler's report names the script's line, the
module list it prints after the traceback is never taken for the script's last output."""

from __future__ import annotations

from mlplint.probe.runner import _death_message, _fault_location

REPORT = """epoch 0: loss 0.91
Fatal Python error: Segmentation fault

Thread 0x00007f0000000001 (most recent call first):
  File "/work/train.py", line 7 in loader_worker

Current thread 0x00007f8079456b80 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/work/train.py", line 19 in <module>
  File "/work/probe/instrument.py", line 194 in run_script

Extension modules: numpy._core._multiarray_umath, torch._C (total: 2)
"""


def test_a_segfault_names_the_script_s_line_in_the_crashing_thread():
    assert _fault_location(REPORT, "/work/train.py") == {"file": "/work/train.py", "line": 19}
    assert _fault_location(REPORT, "/work/other.py") == {}
    assert _fault_location("Traceback (most recent call last):\n", "/work/train.py") == {}
    message = _death_message(-11, REPORT)
    assert message == "the script's process was killed by SIGSEGV (Segmentation fault) (last output: epoch 0: loss 0.91)"
