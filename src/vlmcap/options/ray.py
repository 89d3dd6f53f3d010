"""Scale-out on Ray (``vlmcap caption --ray``, ``vlmcap qa --ray``): where the cluster is, how many
engines it runs and how big each is (``vlmcap.distributed`` does the work)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from vlmcap.options.base import OptionGroup, flag

#: Items the decode tasks hand to an engine actor in one call: small enough that an actor
#: lost mid-call redoes little, large enough that the calls' overhead stays small.
DEFAULT_RAY_BATCH = 8
#: Times an item's call is retried on a restarted engine actor after the actor's process died.
DEFAULT_ACTOR_RETRIES = 3


class RayOptions(OptionGroup):
    """Run the job's decoding and engines on a Ray cluster; outputs and resume stay the same."""

    group = "ray"
    panel = "Ray cluster"

    ray: bool = Field(
        default=False,
        description="Decode on Ray tasks and run the engines as Ray actors (one per engine).",
    )
    ray_address: Annotated[str | None, flag(metavar="ADDR")] = Field(
        default=None,
        description="Cluster to join: auto (a running one), or host:port; none: start a local one.",
    )
    engines: Annotated[int, flag(metavar="N")] = Field(
        default=1, ge=1, description="Engine actors (each a whole vLLM engine with its plugin)."
    )
    gpus_per_engine: Annotated[int | None, flag(metavar="G")] = Field(
        default=None,
        ge=0,
        description="GPUs per engine (tensor parallel inside it); default: 1 with GPUs, else 0.",
    )
    ray_batch: Annotated[int, flag(metavar="N")] = Field(
        default=DEFAULT_RAY_BATCH, ge=1, description="Items per call to an engine actor."
    )
    actor_retries: Annotated[int, flag(metavar="N")] = Field(
        default=DEFAULT_ACTOR_RETRIES,
        ge=0,
        description="Retries of a call whose engine actor's process died (then its items fail).",
    )

    @model_validator(mode="after")
    def _needs_ray(self) -> RayOptions:
        given = self.model_fields_set - {"ray"}
        if given and not self.ray:
            flags = ", ".join("--" + name.replace("_", "-") for name in sorted(given))
            raise ValueError(f"{flags} need --ray")
        return self
