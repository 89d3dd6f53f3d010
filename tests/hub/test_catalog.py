"""The catalog: unique names, lookup by variant or hub id, the plugin each entry runs with."""

from __future__ import annotations

import pytest

from vlmcap.hub import catalog
from vlmcap.hub.catalog import CATALOG, KnownModel, find
from vlmcap.plugins.registry import get_plugin_class


def test_variants_and_hub_ids_are_unique():
    variants = [m.variant for m in CATALOG]
    ids = [m.model_id.casefold() for m in CATALOG]
    assert len(set(variants)) == len(variants)
    assert len(set(ids)) == len(ids)


def test_every_hub_id_is_org_slash_name_at_main():
    for model in CATALOG:
        assert model.model_id.count("/") == 1, model
        assert (model.org, model.name) == tuple(model.model_id.split("/"))
        assert model.revision == catalog.DEFAULT_REVISION


def test_find_takes_a_variant_or_a_hub_id():
    by_variant = find("cosmos-reason2-2b")
    assert by_variant.model_id == "nvidia/Cosmos-Reason2-2B"
    assert find("nvidia/Cosmos-Reason2-2B") is by_variant
    assert find("nvidia/cosmos-reason2-2b") is by_variant  # the hub ignores case


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="no-such-model") as err:
        find("no-such-model")
    for name in ("qwen2.5-vl", "cosmos-reason2", "smolvlm2-2.2b"):
        assert name in str(err.value)


def test_plugin_defaults_to_the_variant():
    entry = KnownModel(variant="x", model_id="org/x", licence="mit", params="1B")
    assert entry.plugin == "x"
    assert find("qwen3-vl-8b").plugin == "qwen3-vl-8b"


def test_entries_without_their_own_plugin_name_the_one_that_runs_them():
    assert find("gemma-3-4b").plugin == "generic"
    assert find("smolvlm2-2.2b").plugin == "generic"
    small_qwen = find("qwen2.5-vl-3b")
    assert small_qwen.plugin == "qwen2.5-vl"
    # the plugin exists, and its own weights are the 7B: the 3B goes in as --model-path
    assert get_plugin_class(small_qwen.plugin).model_id != small_qwen.model_id


def test_an_entry_with_a_plugin_of_its_name_runs_the_plugin_s_own_weights():
    for model in CATALOG:
        if model.plugin == model.variant:
            assert get_plugin_class(model.variant).model_id == model.model_id, model.variant


def test_gated_models_and_licences():
    gated = {m.variant for m in CATALOG if m.gated}
    assert gated == {"cosmos-reason1", "cosmos-reason2", "cosmos-reason2-2b", "gemma-3-4b"}
    assert find("qwen2.5-vl-3b").licence == "qwen-research"
    assert find("qwen2.5-vl").licence == "apache-2.0"
