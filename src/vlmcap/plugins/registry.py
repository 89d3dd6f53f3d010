"""Plugin registry: variant name -> plugin class.

Built-in plugins are listed lazily (name -> "module:Class") so that ``vlmcap models`` does not
import torch or vLLM. Third-party packages add plugins through the ``vlmcap.plugins`` entry-point
group::

    [project.entry-points."vlmcap.plugins"]
    my-model = "my_package.plugin:MyModelPlugin"

or at run time with ``@register`` / ``register(cls)``.
"""

from __future__ import annotations

import functools
import importlib
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vlmcap.plugins"

_BUILTIN: dict[str, str] = {
    "qwen2.5-vl": "vlmcap.plugins.qwen2_5_vl:Qwen25VLPlugin",
    "cosmos-reason1": "vlmcap.plugins.cosmos_reason1:CosmosReason1Plugin",
    "tiny-qwen2.5-vl": "vlmcap.plugins.tiny:TinyQwen25VLPlugin",
    "tiny-random-qwen2.5-vl": "vlmcap.plugins.tiny:TinyRandomQwen25VLPlugin",
    "tiny-lora-qwen2.5-vl": "vlmcap.plugins.tiny:TinyLoRAQwen25VLPlugin",
    "qwen3-vl-8b": "vlmcap.plugins.qwen3_vl:Qwen3VLPlugin",
    "qwen3-vl-4b": "vlmcap.plugins.qwen3_vl:Qwen3VL4BPlugin",
    "cosmos-reason2": "vlmcap.plugins.cosmos_reason2:CosmosReason2Plugin",
    "cosmos-reason2-2b": "vlmcap.plugins.cosmos_reason2:CosmosReason2Plugin2B",
    "generic": "vlmcap.plugins.generic:GenericPlugin",
    "tiny-qwen3-vl": "vlmcap.plugins.tiny_families:TinyQwen3VLPlugin",
    "tiny-cosmos-reason2": "vlmcap.plugins.tiny_families:TinyCosmosReason2Plugin",
    "tiny-gemma3": "vlmcap.plugins.tiny_families:TinyGemma3Plugin",
    "tiny-smolvlm": "vlmcap.plugins.tiny_families:TinySmolVLMPlugin",
}
_REGISTERED: dict[str, type[VLMPlugin]] = {}


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[VLMPlugin]) -> type[VLMPlugin]:
    """Register a plugin class under its ``variant`` (usable as a class decorator)."""
    from vlmcap.plugins.base import VLMPlugin

    if not (isinstance(cls, type) and issubclass(cls, VLMPlugin)):
        raise TypeError(f"{cls!r} is not a VLMPlugin subclass")
    name = getattr(cls, "variant", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must set a non-empty `variant` class attribute")
    existing = _REGISTERED.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"model variant {name!r} is already registered by {existing!r}")
    _REGISTERED[name] = cls
    return cls


@functools.cache
def _load_entry_points() -> None:
    """Import every ``vlmcap.plugins`` entry point once per process."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if getattr(cls, "variant", None) != ep.name:
                logger.warning(
                    "plugin entry point %r loads %r whose variant is %r; registering it as %r",
                    ep.name,
                    cls,
                    getattr(cls, "variant", None),
                    ep.name,
                )
            _REGISTERED.setdefault(ep.name, cls)
        except Exception as exc:  # noqa: BLE001 - a broken third-party plugin must not break us
            logger.warning("cannot load plugin entry point %s (%s): %s", ep.name, ep.value, exc)


def _import(spec: str) -> type[VLMPlugin]:
    module_name, _, attr = spec.partition(":")
    cls: type[VLMPlugin] = getattr(importlib.import_module(module_name), attr)
    return cls


def available() -> list[str]:
    """All variant names: built-in, entry points and run-time registrations."""
    _load_entry_points()
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get_plugin_class(variant: str) -> type[VLMPlugin]:
    if variant in _REGISTERED:
        return _REGISTERED[variant]
    if variant in _BUILTIN:
        cls = _import(_BUILTIN[variant])
        _REGISTERED[variant] = cls
        return cls
    _load_entry_points()
    if variant in _REGISTERED:
        return _REGISTERED[variant]
    raise UnknownModelError(
        f"unknown model variant {variant!r}; available: {', '.join(available())}"
    )


def get_plugin(variant: str, model_path: str | None = None) -> VLMPlugin:
    """An instance of the plugin for ``variant``, pointed at ``model_path`` if given."""
    return get_plugin_class(variant)(model_path)
