"""``vlmcap doctor``: is this environment ready to caption, and if not, what to do about it.

| module | what it checks |
|---|---|
| ``versions`` | Python, vlmcap, vLLM, torch, transformers, PyAV, Pillow (each imported) |
| ``vllm_platform`` | the platform vLLM detects (``vllm.platforms.current_platform``) |
| ``system`` | CPU cores, free RAM, free disk where outputs go, GPUs, driver and CUDA (NVML) |
| ``models`` | each registered plugin's model: a local folder or in the Hugging Face cache |
| ``workarounds`` | the CPU-install workarounds of ``scripts/setup.sh`` and of engine start |
| ``server`` | ``--server-url``: ``/health``, vLLM's version, the served models |

Each gives ``Check`` values (``checks``): ok, warn or fail, every problem with its fix;
``run_checks`` gathers them into a ``Report`` (healthy when nothing failed).
"""

from vlmcap.doctor.checks import Check, Report, Status
from vlmcap.doctor.run import DoctorOptions, run_checks

__all__ = ["Check", "DoctorOptions", "Report", "Status", "run_checks"]
