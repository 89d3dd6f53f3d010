"""What a Ray job refuses before any engine starts: options that need --ray, engines that the
cluster cannot hold. Pure checks: no cluster is started here."""

from __future__ import annotations

import pytest

from vlmcap.distributed.cluster import Cluster
from vlmcap.options.base import ConfigError
from vlmcap.options.ray import RayOptions


def test_ray_options_without_ray_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"--engines, --gpus-per-engine need --ray"):
        RayOptions.build(engines=2, gpus_per_engine=1)
    assert RayOptions.build(ray=True, engines=2).engines == 2


def test_gpus_per_engine_defaults_to_the_clusters_kind():
    options = RayOptions(ray=True, engines=2)
    assert Cluster(cpus=16, gpus=8, started_here=False).gpus_per_engine(options) == 1
    assert Cluster(cpus=16, gpus=0, started_here=True).gpus_per_engine(options) == 0
    given = RayOptions(ray=True, gpus_per_engine=2)
    assert Cluster(cpus=16, gpus=8, started_here=False).gpus_per_engine(given) == 2


def test_engines_the_cluster_cannot_hold_are_refused_with_the_numbers():
    too_many_gpus = RayOptions(ray=True, engines=4, gpus_per_engine=2)
    with pytest.raises(ConfigError, match=r"needs 8 GPU\(s\); the Ray cluster has 4"):
        Cluster(cpus=64, gpus=4, started_here=False).check(too_many_gpus)
    no_room_to_decode = RayOptions(ray=True, engines=2)
    with pytest.raises(ConfigError, match=r"needs 2 CPU\(s\) for the engine actors"):
        Cluster(cpus=2, gpus=0, started_here=True).check(no_room_to_decode)
    Cluster(cpus=4, gpus=0, started_here=True).check(no_room_to_decode)  # room: no error
