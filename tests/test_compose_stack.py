"""docker-compose.yml, the Dockerfile, deploy/compose.env.example and the systemd unit, checked
without a Docker engine: statically against the code they run, and live — the compose
services' own commands and environment, run as local processes on a fresh PostgreSQL
database and Redis, with the Telegram token pointed at the fake Bot API."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bot import cli_common
from bot.cli import app as cli_app
from bot.telegram import SECRET_HEADER
from tests import compose, runtime
from tests.fake_bot_api import FakeBotApi
from tests.fake_max_api import TOKEN as MAX_TOKEN
from tests.fake_max_api import FakeMaxApi, bot_started, user_obj
from tests.pg import temporary_database
from tests.runtime import free_port
from tests.test_max_config import pki  # noqa: F401 - the fixture: a CA standing in for MAX's

BOT_SERVICES = ("migrate", "bot")
CHATS = (5550901, 5550902)  # one user per replica
MAX_USER, MAX_SECRET, MAX_HEADER = 8300901, "max_Compose-secret5", "X-Max-Bot-Api-Secret"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")


@pytest.fixture(scope="module")
def spec() -> dict:
    return compose.load_compose()


def interpolated(spec: dict, **overrides: str) -> dict:
    """The compose file as `docker compose` sees it with a `.env` copied from the example."""
    return compose.interpolate(spec, {**compose.env_example(), **overrides})


# --- docker-compose.yml -----------------------------------------------------------------------


def test_every_variable_compose_needs_is_in_the_env_example(spec: dict) -> None:
    example = compose.env_example()
    for name, op, _ in compose.references(spec):
        if op in (":-", "-", ":+", "+"):
            continue  # has a default
        assert name in example, (
            f"${{{name}}} is neither in {compose.ENV_EXAMPLE.name} nor defaulted"
        )
        if op == ":?":
            assert example[name], f"{name} is required by compose but empty in the example"
    interpolated(spec)  # no required variable is missing: `docker compose config` would pass
    with pytest.raises(compose.InterpolationError, match="POSTGRES_PASSWORD"):
        compose.interpolate(spec, {})  # the check itself sees a missing one


def test_bot_starts_after_the_migration_on_healthy_services(spec: dict) -> None:
    services = spec["services"]
    bot, migrate = services["bot"], services["migrate"]
    assert bot["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate.get("restart") == "no"  # one-shot: a restarting migrate never "completes"
    assert migrate.get("deploy", {}).get("replicas", 1) == 1
    for name in ("postgres", "redis", "bot"):
        assert compose.healthcheck_argv(services[name]), name  # service_healthy needs one
    assert migrate["command"][-2:] == ["db", "upgrade"]
    assert bot["command"][-1:] == ["run"]
    # the exact commands are real CLI commands of the image's `python -m bot`
    group = typer.main.get_command(cli_app)
    for name in BOT_SERVICES:
        command = services[name]["command"]
        assert command[:3] == ["python", "-m", "bot"], command
        ctx = group.make_context("bot", list(command[3:]), resilient_parsing=True)
        node, words = group, list(command[3:])
        while words:
            node = node.get_command(ctx, words.pop(0))
            assert node is not None, command


def test_the_workers_are_reachable_on_the_published_ports(spec: dict) -> None:
    bot = interpolated(spec, BOT_TOKEN="4242:FAKE-TOKEN")["services"]["bot"]
    env = compose.environment(bot)
    host, _, port = env["WEBHOOK_LISTEN"].rpartition(":")
    assert host == "0.0.0.0", "a worker on 127.0.0.1 is unreachable through a published port"
    replicas = bot["deploy"]["replicas"]
    assert env["WORKERS"] == str(replicas)  # the send rate is divided by WORKERS without Redis
    (published,) = bot["ports"]
    ip, host_ports, container_port = published.split(":")
    assert ip == "127.0.0.1" and container_port == port
    first, _, last = host_ports.partition("-")
    assert int(last or first) - int(first) + 1 == replicas  # one host port per replica
    argv = compose.healthcheck_argv(bot)
    assert any(f"http://127.0.0.1:{port}/health" in word for word in argv), argv
    grace = compose.seconds(bot["stop_grace_period"])
    assert bot["stop_signal"] == "SIGTERM" and grace >= 10


def test_max_can_be_turned_on_in_the_stack(spec: dict) -> None:
    """MAX's certificate chains to the Russian Trusted Root CA, which the image's trust store
    lacks (README «MAX and TLS»): the example offers MAX_TOKEN, so it must offer a
    MAX_CA_FILE the bot services can read from a folder of the host."""
    offered = compose.env_example_offered()
    assert "MAX_TOKEN" in offered
    ca_file = offered.get("MAX_CA_FILE")
    assert ca_file, "MAX_TOKEN is offered without MAX_CA_FILE"
    for name in BOT_SERVICES:
        mounts = compose.bind_mounts(spec["services"][name])
        folders = [path for path in mounts if ca_file.startswith(f"{path.rstrip('/')}/")]
        assert folders, f"{ca_file} is in no bind mount of {name}: {mounts}"
        (host,) = {mounts[folder] for folder in folders}
        assert host.startswith("./"), host  # beside docker-compose.yml
        assert host.removeprefix("./") in compose.ENV_EXAMPLE.read_text(encoding="utf-8")


RESERVED = ("example", "test", "invalid", "localhost", "example.com", "example.net", "example.org")


def test_the_example_addresses_are_reserved_names() -> None:
    """The bot registers WEBHOOK_BASE_URL with Telegram, VK and MAX as it is: a placeholder
    left in the copied .env must not be a domain someone can own (RFC 2606), or the users'
    messages would go to it."""
    urls = {k: v for k, v in compose.env_example().items() if v.startswith(("http://", "https://"))}
    assert "WEBHOOK_BASE_URL" in urls
    for name, url in urls.items():
        host = str(urlsplit(url).hostname)
        assert any(host == zone or host.endswith(f".{zone}") for zone in RESERVED), (name, url)


SPEC = compose.load_compose()
BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


@settings(max_examples=100, deadline=None)
@given(password=st.text(alphabet=BASE64, min_size=1, max_size=64))
def test_the_bot_connects_with_the_password_postgres_was_given(password: str) -> None:
    """A password of `openssl rand -base64`, as the example suggests, reaches the bot's
    DATABASE_URL intact (an @ or a %41 would not: the example says so)."""
    services = interpolated(SPEC, POSTGRES_PASSWORD=password)["services"]
    url = make_url(compose.environment(services["bot"])["DATABASE_URL"])
    assert url.password == compose.environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert (url.host, url.username) == ("postgres", "shnor")


def test_a_password_with_at_would_break_the_url(spec: dict) -> None:
    services = interpolated(spec, POSTGRES_PASSWORD="p@ss")["services"]
    assert make_url(compose.environment(services["bot"])["DATABASE_URL"]).host != "postgres"
    comment = compose.ENV_EXAMPLE.read_text(encoding="utf-8").split("POSTGRES_PASSWORD=")[0]
    assert "no @ or %" in comment and "openssl rand -base64" in comment


def test_the_compose_settings_load_as_the_app_reads_them(spec: dict, tmp_path: Path) -> None:
    """The bot services' environment (example values, a real token) is valid configuration:
    webhook workers on PostgreSQL with Redis, as the two replicas need."""
    example = {**compose.env_example(), "BOT_TOKEN": "4242:FAKE-TOKEN"}
    services = compose.interpolate(spec, example)["services"]
    for name in BOT_SERVICES:
        env = compose.container_env(services[name], {".env": example})
        settings = compose.load_with(env, tmp_path)
        assert settings.webhook.enabled, name
        assert make_url(settings.storage.url).get_backend_name() == "postgresql", name
        assert settings.workers.count == 2 and settings.workers.redis_url is not None, name
        assert settings.storage.data_dir == Path("/data"), name


def test_every_variable_given_to_the_bot_is_read(spec: dict, tmp_path: Path, monkeypatch) -> None:
    from_compose = {
        name for service in BOT_SERVICES for name in compose.environment(spec["services"][service])
    }
    from_example = compose.env_example_names()
    # LOG_FORMAT is read before the settings (bot/cli_common.py): it must reach it
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert cli_common._log_format() == "json"
    read_by_cli = {"LOG_FORMAT"}
    read_by_compose = {name for name, _, _ in compose.references(spec)}
    ignored = compose.ignored_by_settings(from_compose | from_example, tmp_path) - read_by_cli
    assert ignored - read_by_compose == set(), "set but read by nobody"
    assert from_compose & ignored == set(), "in a bot service's environment, never read"
    assert compose.ignored_by_settings({"BOT_TOKEN", "BOT_TOKNE"}, tmp_path) == {"BOT_TOKNE"}


# --- the image ----------------------------------------------------------------------------------


def test_the_image_has_every_package_the_bot_imports() -> None:
    imported = compose.imported_top_level("bot")
    assert {"bot", "handlers", "storage"} <= imported  # the walk sees real imports
    copied = {
        dest.rstrip("/").removeprefix("./")
        for sources, dest in compose.dockerfile_copies()
        for _ in sources
        if dest not in ("./", ".")
    }
    copied |= {
        src
        for sources, dest in compose.dockerfile_copies()
        if dest in ("./", ".")
        for src in sources
    }
    assert imported - copied == set(), "imported by the bot but not copied into the image"
    pyproject = tomllib.loads((compose.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {name for name in imported if f"{name}*" not in includes} == set()
    tracked = subprocess.run(
        ["git", "ls-files", "--", *sorted(imported)],
        cwd=compose.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked
    left_out = [path for path in tracked if compose.dockerignored(path)]
    assert left_out == [], "tracked files of the image's packages left out by .dockerignore"
    for name in ("pyproject.toml", "constraints.txt", "README.md"):
        assert not compose.dockerignored(name), name
    assert compose.dockerignored("tests/test_compose_stack.py")  # the matcher matches
    assert compose.dockerignored("bot/__pycache__/cli.cpython-311.pyc")


# --- systemd and the README ----------------------------------------------------------------------


def test_the_systemd_unit_does_what_the_readme_steps_set_up() -> None:
    unit = compose.unit_directives(compose.SYSTEMD_UNIT.read_text(encoding="utf-8"))
    steps = compose.shell_lines(compose.readme_section("Without Docker (systemd)"))
    (clone,) = [line for line in steps if " git clone " in f" {line}"]
    folder = clone.split()[-1]
    assert unit["WorkingDirectory"] == [folder]
    (user,) = [line.split()[-1] for line in steps if line.startswith("useradd ")]
    assert unit["User"] == [user]
    # the .env is made in the clone (`cd <folder> && …` comes before it) and owned by the user
    cd = next(i for i, line in enumerate(steps) if line.startswith(f"cd {folder}"))
    (env_step,) = [i for i, line in enumerate(steps) if "compose.env.example .env" in line]
    assert cd < env_step and f"chown {user}:{unit['Group'][0]} .env" in steps[env_step]
    assert unit["EnvironmentFile"] == [f"{folder}/.env"]
    # scripts/dev.py (run in the clone) makes the venv, whose console script the unit runs
    assert "scripts/dev.py" in steps[cd]
    spec_ = importlib.util.spec_from_file_location("dev", compose.ROOT / "scripts" / "dev.py")
    dev = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(dev)
    venv = dev.VENV.relative_to(dev.ROOT).as_posix()
    scripts = tomllib.loads((compose.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    # the same commands as the compose services (whose commands are checked above)
    services = compose.load_compose()["services"]
    for key, service in (("ExecStartPre", "migrate"), ("ExecStart", "bot")):
        (line,) = unit[key]
        program, *args = line.split()
        assert program.startswith(f"{folder}/{venv}/bin/"), line
        assert scripts[program.rpartition("/")[2]] == "bot.cli:app"
        assert args == compose.argv_of(services[service]["command"]), line
    # installed under its own name, started by it
    name = compose.SYSTEMD_UNIT.name
    assert any(line == f"cp deploy/{name} /etc/systemd/system/" for line in steps)
    assert any(f"enable --now {name.removesuffix('.service')}" in line for line in steps)
    assert compose.seconds(f"{unit['TimeoutStopSec'][0]}s") == compose.seconds(
        compose.load_compose()["services"]["bot"]["stop_grace_period"]
    )


def test_the_units_the_readme_shows_are_the_shipped_one() -> None:
    """A unit (or directive) quoted in the README says what deploy/shnor-bot.service says."""
    unit = compose.unit_directives(compose.SYSTEMD_UNIT.read_text(encoding="utf-8"))
    text = compose.README.read_text(encoding="utf-8")
    blocks = re.findall(r"```ini\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        for key, values in compose.unit_directives(block).items():
            assert unit.get(key) == values, (key, values, unit.get(key))
    for key, value in re.findall(r"`(Restart\w*|Timeout\w*|Kill\w*)=([^`]+)`", text):
        assert unit.get(key) == [value], (key, value, unit.get(key))


def test_the_readme_steps_install_what_the_plain_server_needs() -> None:
    """Debian and Ubuntu ship ``venv`` without ensurepip (package python3-venv): the
    venv scripts/dev.py makes with pip fails there without it; the clone needs git."""
    steps = compose.shell_lines(compose.readme_section("Without Docker (systemd)"))
    installed = {
        word
        for line in steps
        if re.match(r"(sudo )?apt(-get)? install ", line)
        for word in line.split()[2:]
        if not word.startswith("-")
    }
    dev = (compose.ROOT / "scripts" / "dev.py").read_text(encoding="utf-8")
    needed = {"git"} if any(" git clone " in f" {line}" for line in steps) else set()
    if "EnvBuilder(with_pip=True)" in dev:
        needed |= {"python3", "python3-venv"}
    assert needed <= installed, f"not installed by the steps: {sorted(needed - installed)}"
    # backups of PostgreSQL run pg_dump / pg_restore / psql (bot/backup.py)
    assert "postgresql-client" in installed


def test_the_backups_folder_is_writable_by_the_image_user(spec: dict) -> None:
    dockerfile = compose.DOCKERFILE.read_text(encoding="utf-8")
    (uid,) = re.findall(r"useradd [^\n]*--uid (\d+) shnor", dockerfile)
    assert re.search(r"^USER shnor$", dockerfile, re.M)
    assert "./backups:/backups" in spec["x-bot"]["volumes"]
    steps = compose.shell_lines(compose.readme_section("Backup and restore"))
    assert f"mkdir -p backups && sudo chown {uid} backups" in steps


def test_the_readme_compose_steps_make_the_env_file_compose_reads(spec: dict) -> None:
    steps = compose.shell_lines(compose.readme_section("With Docker Compose"))
    (copy,) = [line for line in steps if "compose.env.example" in line]
    assert copy.split()[:2] == ["cp", "deploy/compose.env.example"]
    target = copy.split()[2]
    for name in BOT_SERVICES:
        assert compose.env_files(spec["services"][name]) == [target], name
    assert any(line.startswith("docker compose up") for line in steps)


# --- the stack, live ---------------------------------------------------------------------------


requires_stack = pytest.mark.skipif(
    not (os.environ.get("TEST_POSTGRES_URL") and TEST_REDIS_URL),
    reason="set TEST_POSTGRES_URL and TEST_REDIS_URL to run the compose services (CI does)",
)


requires_pg_isready = pytest.mark.skipif(
    not (os.environ.get("TEST_POSTGRES_URL") and shutil.which("pg_isready")),
    reason="set TEST_POSTGRES_URL and install pg_isready (postgresql-client) to run the check",
)


@requires_pg_isready
async def test_postgres_is_healthy_only_once_it_takes_tcp_connections(
    spec: dict, tmp_path: Path
) -> None:
    """On a fresh volume the postgres image first runs a temporary server on the unix socket
    only (``listen_addresses=''``) to create the user and database, then restarts it on TCP.
    A healthcheck that passes on the socket releases ``migrate`` onto a closed TCP port on
    the very first `docker compose up`; migrate (restart "no") fails and the bots never
    start. The compose healthcheck is run as is, with libpq's default socket folder and port
    (PGHOST, PGPORT; /var/run/postgresql and 5432 in the container) pointed first at a socket
    of the local server (a symlink) whose TCP port is closed — the temporary server — and
    then at the local server, socket and TCP."""
    folder, port = await compose.local_socket()
    argv = compose.healthcheck_argv(spec["services"]["postgres"])
    closed = free_port()
    phases = {"temporary": (tmp_path / "temporary", closed), "ready": (tmp_path / "ready", port)}
    for socket_folder, socket_port in phases.values():
        socket_folder.mkdir()
        (socket_folder / f".s.PGSQL.{socket_port}").symlink_to(folder / f".s.PGSQL.{port}")

    def exit_code(argv: list[str], phase: str) -> int:
        socket_folder, socket_port = phases[phase]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": str(socket_folder)}
        env["PGPORT"] = str(socket_port)
        return subprocess.run(argv, env=env, capture_output=True, timeout=20).returncode

    assert exit_code(["pg_isready"], "temporary") == 0  # the socket answers: the server is up
    assert exit_code(argv, "temporary") != 0, "healthy while only the unix socket answers"
    assert exit_code(argv, "ready") == 0


@requires_stack
async def test_compose_services_run_as_local_processes(
    spec: dict,
    tmp_path: Path,
    pki: Path,  # noqa: F811 - the imported fixture
) -> None:
    """Telegram, and MAX as the example offers it: its CA (a test one) in the project's
    certs folder, read through the compose bind mount."""
    api = FakeBotApi()
    base = await api.start()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    max_api = await FakeMaxApi(ssl_context=tls).start()
    offered = compose.env_example_offered()
    example = {
        **compose.env_example(),
        "BOT_TOKEN": api.token,
        "MAX_TOKEN": MAX_TOKEN,
        "MAX_WEBHOOK_SECRET": MAX_SECRET,
        "MAX_CA_FILE": offered["MAX_CA_FILE"],
    }
    project = tmp_path / "project"  # the folder of docker-compose.yml and .env
    inside_ca = Path(offered["MAX_CA_FILE"])
    (certs,) = [
        project / host.removeprefix("./")
        for inside, host in compose.bind_mounts(spec["services"]["bot"]).items()
        if inside_ca.parent == Path(inside)
    ]
    certs.mkdir(parents=True)
    (certs / inside_ca.name).write_bytes((pki / "ca.pem").read_bytes())
    stack = compose.interpolate(spec, example)["services"]
    bot = stack["bot"]
    replicas = bot["deploy"]["replicas"]
    ports = [free_port() for _ in range(replicas)]
    container_port = compose.environment(bot)["WEBHOOK_LISTEN"].rpartition(":")[2]
    grace = compose.seconds(bot["stop_grace_period"])
    workers: list[asyncio.subprocess.Process] = []
    logs = []
    try:
        async with temporary_database(migrated=False) as url:

            def env_of(name: str, port: int) -> dict[str, str]:
                env = compose.container_env(stack[name], {".env": example})
                env = compose.localize(
                    env,
                    stack["postgres"],
                    database_url=url,
                    redis_url=str(TEST_REDIS_URL),
                    data_dir=tmp_path / "data",
                    port=port,
                )
                env = compose.localize_mounts(env, stack[name], project)
                assert env["MAX_CA_FILE"] == str(certs / inside_ca.name)
                # the test's additions: where the platforms' APIs are
                return {**env, "TELEGRAM_API_URL": base, "MAX_API_URL": max_api.base_url}

            started = time.monotonic()
            migrate = await runtime.spawn(
                env_of("migrate", ports[0]), *compose.argv_of(stack["migrate"]["command"])
            )
            out, err = await asyncio.wait_for(migrate.communicate(), 60)
            assert migrate.returncode == 0, err.decode()
            assert "База данных обновлена" in out.decode(), out.decode()
            assert "alembic_version" in await compose.migrated_tables(url)
            migrated = time.monotonic()

            for i, port in enumerate(ports):
                logs.append((tmp_path / f"bot{i}.log").open("wb"))
                workers.append(
                    await runtime.spawn(
                        env_of("bot", port),
                        *compose.argv_of(bot["command"]),
                        stderr=logs[-1],
                        stdout=logs[-1],
                    )
                )
            argv = compose.healthcheck_argv(bot)
            start_period = compose.seconds(bot["healthcheck"]["start_period"])
            check_timeout = compose.seconds(bot["healthcheck"]["timeout"])
            for port in ports:
                await compose.wait_for(
                    lambda port=port: compose.healthy(argv, container_port, port, check_timeout),
                    workers,
                    start_period,
                    f"healthcheck on {port}",
                    logs,
                )
            healthy_at = time.monotonic()

            async def registered() -> bool:
                return api.calls.count("setwebhook") >= replicas

            await compose.wait_for(registered, workers, 10, "setWebhook", logs)
            secret = api.webhook_secret
            assert secret  # derived from the token: the example leaves it empty

            async with aiohttp.ClientSession() as http:
                update = api.text_update(CHATS[0], "/start")
                for port in ports:
                    status = await api.post_update(
                        http, f"http://127.0.0.1:{port}/telegram", update, {SECRET_HEADER: "x"}
                    )
                    assert status == 403, port
                    assert (
                        await api.post_update(http, f"http://127.0.0.1:{port}/telegram", update)
                        == 403
                    )
                assert api.by_chat.get(CHATS[0]) is None  # nothing refused was answered
                # with the secret: each replica takes one user's /start, answered once
                for port, chat in zip(ports, CHATS, strict=True):
                    update = api.text_update(chat, "/start")
                    status = await api.post_update(
                        http, f"http://127.0.0.1:{port}/telegram", update, {SECRET_HEADER: secret}
                    )
                    assert status == 200, port
                    assert await api.wait_chat(chat, 0, 15), f"no reply to /start on {port}"
                await asyncio.sleep(1.0)  # a second copy would have come by now
                for chat in CHATS:
                    assert len(api.by_chat[chat]) == 1, [s.text for s in api.by_chat[chat]]
                    assert "код приглашения" in api.by_chat[chat][0].text

                # MAX: subscribed over TLS verified by the mounted CA, and served
                subscribed = {sub["url"] for sub in max_api.subscriptions}
                assert subscribed == {f"{example['WEBHOOK_BASE_URL']}/max"}
                started_max = bot_started(user_obj(MAX_USER), None)
                for headers in ({}, {MAX_HEADER: "guess"}):
                    async with http.post(
                        f"http://127.0.0.1:{ports[1]}/max", json=started_max, headers=headers
                    ) as answer:
                        assert answer.status in (401, 403)
                async with http.post(
                    f"http://127.0.0.1:{ports[1]}/max",
                    json=started_max,
                    headers={MAX_HEADER: MAX_SECRET},
                ) as answer:
                    assert answer.status == 200

                async def max_answered() -> bool:
                    return any(user == MAX_USER for user, _, _ in max_api.log)

                await compose.wait_for(max_answered, workers, 15, "MAX reply", logs)
                await asyncio.sleep(0.5)
                assert sum(user == MAX_USER for user, kind, _ in max_api.log if kind == "sent") == 1

                processed = 0.0  # a counter per worker: the two events, wherever served
                for port in ports:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as answer:
                        assert answer.status == 200, port
                        assert answer.headers["Content-Type"].startswith("text/plain")
                        processed += sum(
                            sample.value
                            for family in text_string_to_metric_families(await answer.text())
                            for sample in family.samples
                            if sample.name == "shnor_events_processed_total"
                            and sample.labels == {"platform": "tg"}
                        )
                assert processed == len(CHATS)
            assert all(worker.returncode is None for worker in workers)

            stopping = time.monotonic()
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = await asyncio.wait_for(
                asyncio.gather(*(worker.wait() for worker in workers)), grace
            )
            stopped = time.monotonic()
            assert codes == [0] * replicas
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        for log in logs:
            log.close()
        await api.stop()
        await max_api.close()
    print(
        f"migrate {migrated - started:.1f} s, healthy {healthy_at - migrated:.1f} s, "
        f"stopped in {stopped - stopping:.1f} s (grace {grace:.0f} s)"
    )
    for i in range(replicas):
        text = (tmp_path / f"bot{i}.log").read_text(encoding="utf-8", errors="replace")
        for hidden in (api.token, secret, MAX_TOKEN, MAX_SECRET):  # masked in the JSON log
            assert hidden not in text
        assert re.search(r'"level": ?"(ERROR|CRITICAL)"', text) is None, text[-2000:]
