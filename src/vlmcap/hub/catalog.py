"""The models vlmcap knows by name: hub id, revision, licence, size and the plugin that runs it.

A catalog entry is what ``vlmcap download VARIANT`` fetches and what ``vlmcap models`` lists.
Its ``plugin`` names the registered plugin (``--model``) that runs it; several entries may share
one plugin (a smaller checkpoint of the same family, or any model the ``generic`` plugin takes),
and the downloaded folder is then passed as ``--model-path``. Plugins are not imported here, so
reading the catalog costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The branch a model is fetched from when no revision is pinned.
DEFAULT_REVISION = "main"

APACHE = "apache-2.0"
QWEN_RESEARCH = "qwen-research"
NVIDIA_OPEN = "nvidia-open-model-license"
GEMMA = "gemma"


@dataclass(frozen=True, kw_only=True)
class KnownModel:
    """One downloadable model and how vlmcap runs it."""

    #: Unique name of the entry (``vlmcap download VARIANT``).
    variant: str
    #: Hugging Face repository id (``org/name``).
    model_id: str
    #: Branch, tag or commit fetched by default.
    revision: str = DEFAULT_REVISION
    #: Licence identifier as the model card gives it.
    licence: str
    #: Parameter count as said on the model card ("8B").
    params: str
    #: The hub asks each user to accept the licence before the files can be fetched.
    gated: bool = False
    #: The registered plugin that runs it (``--model``); the variant itself when empty.
    plugin: str = ""
    #: One line for ``vlmcap models``.
    note: str = ""

    def __post_init__(self) -> None:
        if not self.plugin:
            object.__setattr__(self, "plugin", self.variant)

    @property
    def org(self) -> str:
        return self.model_id.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.model_id.split("/", 1)[-1]


CATALOG: tuple[KnownModel, ...] = (
    KnownModel(
        variant="qwen2.5-vl",
        model_id="Qwen/Qwen2.5-VL-7B-Instruct",
        licence=APACHE,
        params="7B",
    ),
    KnownModel(
        variant="qwen2.5-vl-3b",
        model_id="Qwen/Qwen2.5-VL-3B-Instruct",
        licence=QWEN_RESEARCH,
        params="3B",
        plugin="qwen2.5-vl",
        note="research licence: non-commercial use",
    ),
    KnownModel(
        variant="qwen3-vl-4b",
        model_id="Qwen/Qwen3-VL-4B-Instruct",
        licence=APACHE,
        params="4B",
    ),
    KnownModel(
        variant="qwen3-vl-8b",
        model_id="Qwen/Qwen3-VL-8B-Instruct",
        licence=APACHE,
        params="8B",
    ),
    KnownModel(
        variant="cosmos-reason1",
        model_id="nvidia/Cosmos-Reason1-7B",
        licence=NVIDIA_OPEN,
        params="7B",
        gated=True,
    ),
    KnownModel(
        variant="cosmos-reason2",
        model_id="nvidia/Cosmos-Reason2-8B",
        licence=NVIDIA_OPEN,
        params="8B",
        gated=True,
    ),
    KnownModel(
        variant="cosmos-reason2-2b",
        model_id="nvidia/Cosmos-Reason2-2B",
        licence=NVIDIA_OPEN,
        params="2B",
        gated=True,
    ),
    KnownModel(
        variant="gemma-3-4b",
        model_id="google/gemma-3-4b-it",
        licence=GEMMA,
        params="4B",
        gated=True,
        plugin="generic",
    ),
    KnownModel(
        variant="smolvlm2-2.2b",
        model_id="HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        licence=APACHE,
        params="2.2B",
        plugin="generic",
    ),
)


def known_names() -> list[str]:
    """Every variant name of the catalog, in catalog order."""
    return [m.variant for m in CATALOG]


def find(name: str) -> KnownModel:
    """The catalog entry called ``name``: a variant name or a hub id (hub ids compare without
    case, as the hub does). ``ValueError`` naming the known variants when there is none."""
    for model in CATALOG:
        if name in (model.variant, model.model_id):
            return model
    folded = name.casefold()
    for model in CATALOG:
        if folded == model.model_id.casefold():
            return model
    raise ValueError(
        f"unknown model {name!r}; known variants: {', '.join(known_names())} "
        "(a variant name or its Hugging Face id)"
    )
