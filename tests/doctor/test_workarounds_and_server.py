"""The CPU workarounds' checks, and the server checks that need no server."""

from __future__ import annotations

import os

import pytest

from tests.doctor.conftest import closed_port
from vlmcap.doctor import server, workarounds
from vlmcap.doctor.checks import Status


def test_torchvision_loads_here():
    check = workarounds.torchvision_check()
    assert check.status is Status.OK, check


def test_removed_packages_are_not_in_the_way():
    assert workarounds.removed_packages_check().status is Status.OK


def test_kv_cache_variable_unset_names_our_default(monkeypatch):
    monkeypatch.delenv(workarounds.KVCACHE_ENV, raising=False)
    check = workarounds.kv_cache_check()
    assert check.status is Status.OK and "vlmcap sets 1 GiB" in check.detail


@pytest.mark.parametrize(("value", "status"), [("lots", Status.FAIL), ("100000", Status.WARN)])
def test_kv_cache_variable_that_cannot_work(monkeypatch, value, status):
    monkeypatch.setenv(workarounds.KVCACHE_ENV, value)
    check = workarounds.kv_cache_check()
    assert check.status is status and workarounds.KVCACHE_ENV in (check.fix or "")


def test_a_cpu_shim_left_in_a_gpu_install_is_reported():
    if workarounds.shim_location() is None:
        if os.environ.get("CI"):
            pytest.fail("the CPU set-up installs the torchvision shim; CI must have it")
        pytest.skip("no CPU torchvision shim installed here")
    check = workarounds.gpu_install_check()
    assert check.status is Status.WARN and ".pth" in (check.fix or "")


def test_a_url_that_is_not_http_fails():
    (check,) = server.server_checks("ftp://127.0.0.1:21")
    assert check.status is Status.FAIL and "--server-url http://" in (check.fix or "")


def test_an_empty_url_fails():
    (check,) = server.server_checks("  ")
    assert check.status is Status.FAIL and check.fix


def test_a_closed_port_fails_fast():
    (check,) = server.server_checks(f"127.0.0.1:{closed_port()}", timeout_s=1.0)
    assert check.name == "server health" and check.status is Status.FAIL
    assert "Connection refused" in check.detail or "nothing answers" in check.detail
