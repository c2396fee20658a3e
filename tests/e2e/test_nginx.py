"""docker/ checked without Docker: the nginx config run for real, the compose file validated.

The nginx test renders docker/nginx/templates/default.conf.template the way the
nginx image does (only the ``BOTRIX_*`` variables), with an upstream file that
lists two Daphne processes on 127.0.0.1 instead of the ``web`` replicas, and
runs it in the foreground with its own prefix, pid and temp paths under
tmp_path, in front of two real Daphnes started as the image starts them, one
real bridge and a throwaway Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from websockets.asyncio.client import connect

from botrix_site.redis_server import RedisServer, free_port
from botrix_site.serve import PING_INTERVAL, PING_TIMEOUT
from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import ROOT, Process, child_env, start_bridge, start_daphne
from tests.conftest import STAFF
from tests.support.clients import closing_error, without_position

pytestmark = pytest.mark.e2e

DOCKER = ROOT / "docker"
TEMPLATE = DOCKER / "nginx" / "templates" / "default.conf.template"
MIME_TYPES = Path("/etc/nginx/mime.types")
"""Debian's and the nginx image's MIME types, which the image's main nginx.conf includes."""
UPSTREAMS = DOCKER / "nginx" / "upstreams.conf"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
TEMPLATE_VARIABLE = re.compile(r"\$\{(BOTRIX_\w+)\}|\$(BOTRIX_\w+)")

UPDATE = {"job_id": "j-nginx", "status": "completed", "data": {"via": ["nginx", 2]}}
EXPECTED = {"type": "job_update", **UPDATE}
NO_NGINX = (
    "!!! nginx is NOT INSTALLED: the nginx tests of docker/ are SKIPPED, so the proxy config "
    "is untested. Install it (`make system-deps`, or `apt-get install nginx`) !!!"
)


def nginx_binary() -> str:
    """Return the nginx executable, or skip the test loudly."""
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.skip(NO_NGINX)
    return found


def render_template(variables: dict[str, str]) -> str:
    """Render the template as the nginx image's envsubst step does (BOTRIX_* only)."""
    text = TEMPLATE.read_text()
    missing = {a or b for a, b in TEMPLATE_VARIABLE.findall(text)} - set(variables)
    assert not missing, f"expected values for every template variable, missing {missing}"
    return TEMPLATE_VARIABLE.sub(lambda m: variables[m.group(1) or m.group(2)], text)


def write_nginx_conf(directory: Path, port: int, daphne_ports: list[int]) -> Path:
    """Write a main nginx.conf under ``directory`` that includes the rendered template."""
    (directory / "static").mkdir()
    upstreams = directory / "upstreams.conf"
    upstreams.write_text("".join(f"server 127.0.0.1:{p};\n" for p in daphne_ports))
    site = directory / "default.conf"
    site.write_text(
        render_template(
            {
                "BOTRIX_LISTEN": f"127.0.0.1:{port}",
                "BOTRIX_UPSTREAMS": str(upstreams),
                "BOTRIX_STATIC": f"{directory / 'static'}/",
            }
        )
    )
    temp = {name: directory / name for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log {directory / "access.log"};
    client_body_temp_path {temp["client"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    {"include /etc/nginx/mime.types;" if MIME_TYPES.is_file() else ""}
    include {site};
}}
"""
    )
    return conf


def nginx_argv(binary: str, conf: Path, *extra: str) -> list[str]:
    return [binary, "-p", f"{conf.parent}/", "-c", str(conf), "-e", "stderr", *extra]


@dataclass
class ProxiedStack:
    """nginx on ``port`` in front of two Daphnes, with one bridge and Redis."""

    port: int
    nginx: Process
    daphnes: list[Process]
    bridge: Process


@pytest.fixture
def proxied(redis_server: RedisServer, e2e_database: str, tmp_path: Path) -> Iterator[ProxiedStack]:
    binary = nginx_binary()
    env = child_env(REDIS_URL=redis_server.url, DATABASE_URL=e2e_database)
    started: list[Process] = []
    try:
        ports = []
        for number in (1, 2):
            # As the image does (python -m botrix_site.serve), with Daphne's access log
            # on stdout to see which process each client reached.
            daphne, daphne_port = start_daphne(env, "--access-log", "-", name=f"daphne-{number}")
            started.append(daphne)
            ports.append(daphne_port)
        bridge = start_bridge(env)
        started.append(bridge)
        port = free_port()
        nginx = Process("nginx", nginx_argv(binary, write_nginx_conf(tmp_path, port, ports)), env)
        started.append(nginx)
        nginx.wait_for(r"start worker process \d+")  # the master listens before forking
        yield ProxiedStack(port, nginx, started[:2], bridge)
    finally:
        for process in reversed(started):
            process.stop()


def test_static_files_are_served_with_their_types(tmp_path):
    """As the image serves them: ``jobupdates.mjs`` must be JavaScript for a browser to
    import it (nginx's mime.types has no .mjs)."""
    assert MIME_TYPES.is_file(), f"expected nginx's {MIME_TYPES} (Debian's nginx package)"
    port = free_port()
    conf = write_nginx_conf(tmp_path, port, [free_port()])
    static = ROOT / "jobupdates" / "static"
    shutil.copytree(static, tmp_path / "static", dirs_exist_ok=True)
    nginx = Process("nginx", nginx_argv(nginx_binary(), conf), child_env())
    try:
        nginx.wait_for(r"start worker process \d+")
        types = {}
        for name in ("jobupdates.mjs", "jobupdates.js", "console.css"):
            url = f"http://127.0.0.1:{port}/static/jobupdates/{name}"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert (
                    response.read() == (ROOT / "jobupdates/static/jobupdates" / name).read_bytes()
                )
                types[name] = response.headers["Content-Type"]
    finally:
        nginx.stop()
    assert types == {
        "jobupdates.mjs": "text/javascript",
        "jobupdates.js": "application/javascript",
        "console.css": "text/css",
    }


def test_nginx_accepts_the_config(tmp_path):
    conf = write_nginx_conf(tmp_path, free_port(), [free_port(), free_port()])
    result = subprocess.run(
        nginx_argv(nginx_binary(), conf, "-t"), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


async def test_clients_through_nginx_on_both_daphnes_get_the_update(proxied, publish):
    cookie = await asyncio.to_thread(login, proxied.port, *STAFF)  # Host reaches Django intact
    async with (
        ws_connect(proxied.port, cookie) as one,
        ws_connect(proxied.port, cookie, "/ws/") as two,
        ws_connect(proxied.port, cookie) as three,
        ws_connect(proxied.port, cookie) as four,
    ):
        clients = [one, two, three, four]
        ids = {await welcomed(ws) for ws in clients}
        assert len(ids) == 4
        for daphne in proxied.daphnes:  # least_conn spreads them: at least one on each
            daphne.wait_for(r'"WSCONNECT /ws/?"')
        assert publish(json.dumps(UPDATE)) == 1, "expected exactly the bridge to be subscribed"
        frames = [await recv_json(ws, timeout=2) for ws in clients]
        assert [without_position(frame) for frame in frames] == [EXPECTED] * 4
        assert len({frame["position"] for frame in frames}) == 1, "expected one update, once"
        await one.send('{"type":"ping"}')
        assert await recv_json(one) == {"type": "pong"}
    await disconnects_logged(proxied.daphnes, len(clients))  # their last lines: all collected
    for daphne in proxied.daphnes:
        assert not daphne.matching(r"Traceback|ERROR"), daphne.output()


async def disconnects_logged(daphnes: list[Process], count: int, timeout: float = 20.0) -> None:
    """Wait until the Daphnes, together, have logged ``count`` WebSocket disconnects."""
    deadline = time.monotonic() + timeout
    while sum(len(d.matching(r'"WSDISCONNECT /ws/?"')) for d in daphnes) < count:
        assert time.monotonic() < deadline, f"expected {count} WSDISCONNECT lines"
        await asyncio.sleep(0.05)


async def test_origin_passes_through_and_a_foreign_origin_is_refused(proxied):
    cookie = await asyncio.to_thread(login, proxied.port, *STAFF)
    async with connect(
        f"ws://127.0.0.1:{proxied.port}/ws",
        origin="http://evil.example",  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    ) as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("origin_not_allowed", 4403), error


async def test_anonymous_client_through_nginx_gets_4401(proxied):
    async with ws_connect(proxied.port) as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("unauthenticated", 4401), error


def test_the_config_keeps_websockets_and_client_headers():
    text = TEMPLATE.read_text()
    websocket = text[text.index("location /ws {") :]
    websocket = websocket[: websocket.index("}")]
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
    ):
        assert directive in websocket, directive
    timeout = re.search(r"proxy_read_timeout (\d+)s;", websocket)
    assert timeout, "expected an explicit proxy_read_timeout for /ws"
    assert int(timeout.group(1)) > PING_INTERVAL + PING_TIMEOUT
    assert "server web:8000" in UPSTREAMS.read_text()


# --- the compose file ---------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema, as vendored by check-jsonschema (Apache-2.0)."""
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def schema_errors(document: object) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = validator_class(schema).iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def test_compose_file_is_valid_against_the_compose_spec():
    assert compose_schema()["title"] == "Compose Specification"
    assert schema_errors(load_compose()) == []


def test_the_schema_catches_a_broken_compose_file():
    broken = load_compose()
    broken["services"]["web"]["deploy"]["replicas"] = "two"
    broken["services"]["nginx"]["healthcheck"]["intervall"] = "10s"
    assert len(schema_errors(broken)) == 2


def test_compose_runs_the_stack_as_documented():
    services = load_compose()["services"]
    assert set(services) == {"redis", "setup", "web", "bridge", "nginx"}
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["bridge"]["deploy"]["replicas"] == 2
    assert services["bridge"]["command"] == ["python", "manage.py", "run_bridge"]
    for name in ("redis", "web", "bridge", "nginx"):
        assert "healthcheck" in services[name], f"expected a healthcheck on {name}"
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    nginx_env = services["nginx"]["environment"]
    used = {a or b for a, b in TEMPLATE_VARIABLE.findall(TEMPLATE.read_text())}
    assert used == {name for name in nginx_env if name.startswith("BOTRIX_")}
    for volume in services["nginx"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DOCKER / source).exists(), f"expected {source} next to compose.yaml"


def test_dockerfile_is_slim_pinned_non_root_and_serves_daphne():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.MULTILINE)
    assert "pip install --no-compile -r requirements.txt" in text
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user, "expected a USER"
    assert not user[-1].startswith(("root", "0")), "expected a non-root user"
    cmd = json.loads(re.findall(r"^CMD (.+)$", text, re.MULTILINE)[-1])
    serve = ["python", "-m", "botrix_site.serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
    assert cmd == serve
