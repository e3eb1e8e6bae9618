"""The replica launcher's nginx configuration (ui.serve): what it must contain, and that nginx
itself accepts it (`nginx -t`) where nginx is installed. The running cluster is tested in
tests/reliability/test_replicas.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ui.serve import COOKIE, nginx_binary, nginx_config

UPSTREAMS = ["127.0.0.1:8601", "127.0.0.1:8602", "10.0.0.12:8601"]


def test_the_config_balances_with_a_sticky_cookie_and_forwards_websockets(tmp_path: Path) -> None:
    conf = nginx_config(UPSTREAMS, "0.0.0.0:8501", tmp_path, run_as_root=False)
    for upstream in UPSTREAMS:
        assert f"server {upstream} max_fails=1 fail_timeout=10s;" in conf
    assert "hash $sticky_key consistent;" in conf and "ip_hash" not in conf
    assert f"map $cookie_{COOKIE} $sticky_key" in conf and '""      $request_id;' in conf
    assert f'add_header Set-Cookie "{COOKIE}=$sticky_key; Path=/; HttpOnly' in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert (
        "proxy_set_header Host $http_host;" in conf
    )  # with the port, for Streamlit's Origin check
    assert "proxy_next_upstream error timeout" in conf
    assert "listen 0.0.0.0:8501;" in conf
    assert "X-Upstream" not in conf  # replica addresses are not shown to a class
    assert "X-Upstream" in nginx_config(UPSTREAMS, "0.0.0.0:8501", tmp_path, upstream_header=True)
    assert "user nobody" not in conf
    assert "user nobody nogroup;" in nginx_config(
        UPSTREAMS, "1.2.3.4:1", tmp_path, run_as_root=True
    )


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx; CI installs it)")
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / kind).mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(UPSTREAMS, "127.0.0.1:18501", tmp_path))
    check = subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert "syntax is ok" in check.stderr
