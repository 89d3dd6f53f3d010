"""Model plugins and their registry."""

from vlmcap.plugins.base import EngineInputs, VLMPlugin
from vlmcap.plugins.registry import available, get_plugin, get_plugin_class, register

__all__ = ["EngineInputs", "VLMPlugin", "available", "get_plugin", "get_plugin_class", "register"]
