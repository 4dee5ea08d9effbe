"""Health (psutil): /api/v1/health on a real server and `ketang status`."""

from __future__ import annotations

import json
import subprocess

import psutil
import pytest

from ..helpers import KETANG, http_json, served_sample, write_config

CH = "cn-basic-edu-demo"


def check_figures(report: dict, data_dir) -> None:
    disk = psutil.disk_usage(str(data_dir))
    assert report["disk"]["total_bytes"] == disk.total
    assert abs(report["disk"]["free_bytes"] - disk.free) < 0.05 * disk.total
    assert report["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert 0 < report["memory"]["available_bytes"] <= report["memory"]["total_bytes"]
    assert report["load"]["cpus"] >= 1 and report["load"]["1m"] >= 0
    temp = report["cpu_temperature_c"]
    assert temp is None or 0 < temp < 120
    assert report["uptime_s"] > 0


@pytest.mark.slow
def test_health_endpoint_on_a_real_server(tmp_path, sample_bundle):
    with served_sample(tmp_path, sample_bundle) as (base, data):
        status, root = http_json(base + "/api/v1/")
        assert root["health"] == "/api/v1/health"
        status, report = http_json(base + "/api/v1/health")
    assert status == 200
    assert report["active"] == {CH: 1}
    assert report["disk"]["path"] == str(data)
    check_figures(report, data)
    assert 0 < report["server"]["rss_bytes"] < 500 * 1024 ** 2
    assert report["server"]["uptime_s"] >= 0 and report["server"]["threads"] >= 2
    if report["status"] == "ok":
        assert report["warnings"] == []
    else:  # e.g. a full disk on the machine running the tests: said, not hidden
        assert report["warnings"]


def test_status_command_reports_the_active_release(sample_device):
    data = sample_device.parent / "data"
    r = subprocess.run([*KETANG, "--config", str(sample_device), "status", "--json"],
                       capture_output=True, text=True, timeout=60)
    report = json.loads(r.stdout)
    assert r.returncode == (0 if report["status"] == "ok" else 2), r.stderr
    assert report["active"] == {CH: 1}
    assert "server" not in report
    check_figures(report, data)
    r = subprocess.run([*KETANG, "--config", str(sample_device), "status"],
                       capture_output=True, text=True, timeout=60)
    assert f"课程 Release: {CH} v1" in r.stdout
    assert "数据盘 Data volume" in r.stdout and "CPU 温度 temperature" in r.stdout


def test_status_on_a_missing_data_folder_warns_and_creates_nothing(tmp_path, demo_keys):
    data = tmp_path / "no-such-data"
    config = write_config(tmp_path / "ketang.toml", data, demo_keys)
    r = subprocess.run([*KETANG, "--config", str(config), "status"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"The data folder {data} does not exist" in r.stdout
    assert "No release is active" in r.stdout
    assert not data.exists()
