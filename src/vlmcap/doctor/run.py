"""All of ``vlmcap doctor``'s checks, in report order, from one ``DoctorOptions``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vlmcap.doctor.checks import Report
from vlmcap.doctor.models import model_checks
from vlmcap.doctor.server import SERVER_TIMEOUT_S, server_checks
from vlmcap.doctor.system import system_checks, torch_cuda_build
from vlmcap.doctor.versions import version_checks
from vlmcap.doctor.vllm_platform import detect, platform_check
from vlmcap.doctor.workarounds import workaround_checks
from vlmcap.options.run import DEFAULT_OUTPUT_DIR

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DoctorOptions:
    """What to look at beyond the machine itself."""

    output_dir: Path = DEFAULT_OUTPUT_DIR
    model: str | None = None
    model_path: str | None = None
    server_url: str | None = None
    api_key: str | None = None
    server_timeout_s: float = SERVER_TIMEOUT_S


def run_checks(options: DoctorOptions | None = None) -> Report:
    """Versions, vLLM's platform, the machine, models, the CPU workarounds and, when a URL is
    given, the server. Nothing is downloaded, built or started."""
    options = options or DoctorOptions()
    report = Report()
    report.extend("versions", version_checks())
    platform = detect()
    report.extend("platform", [platform_check(platform)])
    report.extend("system", system_checks(options.output_dir, platform))
    report.extend("models", model_checks(options.model, options.model_path))
    cpu = platform.is_cpu or (not platform.is_gpu and torch_cuda_build() is None)
    report.extend("workarounds", workaround_checks(cpu))
    if options.server_url is not None:
        report.extend(
            "server",
            server_checks(
                options.server_url,
                options.api_key,
                model=options.model,
                timeout_s=options.server_timeout_s,
            ),
        )
    logger.debug("doctor: %d checks, healthy=%s", len(report.checks), report.healthy)
    return report
