"""docker-compose.yml, the Dockerfile, the Procfile and the env files, checked statically: no
Docker engine runs here, so every command must be a real `wfe` command with valid options, and
every setting named must be one the engine reads."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from workflow_engine import envfile
from workflow_engine.cli.main import cli
from workflow_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"WFE_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, object]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def check_wfe_command(argv: list[str]) -> None:
    """Parse ``argv`` with the real `wfe` command line, without running it."""
    assert argv[0] == "wfe", argv
    command: click.Command = cli
    tokens = argv[1:]
    context = click.Context(cli, info_name="wfe")
    while isinstance(command, click.Group):
        assert tokens, f"{argv} names no command"
        sub = command.get_command(context, tokens[0])
        assert sub is not None, f"no such command {tokens[0]!r} in {argv}"
        context = click.Context(sub, info_name=tokens[0], parent=context)
        command, tokens = sub, tokens[1:]
    command.make_context(context.info_name, tokens, parent=context.parent)


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_compose_defines_every_process_with_health_checked_backing_services() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert {"postgres", "redis", "migrate", "api", "coordinator", "worker", "flower"} <= set(services)
    for backing in ("postgres", "redis"):
        assert "healthcheck" in services[backing] and services[backing]["volumes"]
    assert services["migrate"]["command"] == ["wfe", "db", "upgrade"]
    for name in ("api", "coordinator", "worker", "flower"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["image"] == "workflow-engine:latest"
    assert "ports" not in services["worker"]  # scalable: --scale worker=4


def test_every_compose_command_is_a_real_wfe_command() -> None:
    for service in compose()["services"].values():  # type: ignore[union-attr]
        command = service.get("command")
        if service.get("image") == "workflow-engine:latest":
            argv = [re.sub(r"\$\{[^}]*\}", "x:y", part) for part in command]
            check_wfe_command(argv)


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            argv = shlex.split(command)
            # each line execs the checkout's wfe (or $WFE_BIN's), needing no active virtualenv
            assert argv[:2] == ["exec", "${WFE_BIN:-.venv/bin}/wfe"], argv
            processes[name] = ["wfe", *argv[2:]]
    return processes


def test_procfile_commands_are_real_wfe_commands() -> None:
    processes = procfile()
    assert set(processes) == {"api", "coordinator", "worker", "flower"}
    for argv in processes.values():
        # honcho (and foreman) give each process its own $PORT
        check_wfe_command([part.replace("$PORT", "5000") for part in argv])


def test_procfile_gives_each_worker_its_own_metrics_port() -> None:
    """`honcho start -c worker=4`: one $PORT per worker, so WFE_METRICS_PORT is not shared."""
    argv = procfile()["worker"]
    assert "--metrics-port" in argv, argv
    assert argv[argv.index("--metrics-port") + 1] == "$PORT"


@pytest.mark.parametrize("path", ["config/docker.env", "config/wfe.env.example"])
def test_env_files_name_only_settings_the_engine_reads(path: str) -> None:
    names = set(env_file(ROOT / path))
    assert names and names <= SETTINGS, names - SETTINGS


def test_compose_environment_names_are_settings() -> None:
    for service in compose()["services"].values():  # type: ignore[union-attr]
        for name in service.get("environment", {}):
            if name.startswith("WFE_"):
                assert name in SETTINGS, name
    engine_env = compose()["x-engine"]["environment"]  # type: ignore[index]
    assert set(engine_env) <= SETTINGS


def test_the_example_env_is_written_from_the_settings_and_lists_every_one() -> None:
    """config/wfe.env.example is exactly what `wfe settings example` writes, and names every
    setting (set, or commented out with its default), each with what it is for."""
    text = (ROOT / "config/wfe.env.example").read_text()
    assert text == envfile.example(), "run `wfe settings example -o config/wfe.env.example`"
    named = set(re.findall(r"^(?:# )?(WFE_[A-Z_]+)=", text, flags=re.MULTILINE))
    assert named == SETTINGS, SETTINGS ^ named
    for name, field in Settings.model_fields.items():
        assert field.description, f"WFE_{name.upper()} says nothing of what it is for"
    set_here = set(env_file(ROOT / "config/wfe.env.example"))
    assert {"WFE_DATABASE_URL", "WFE_BROKER_URL", "WFE_AGENT_MODULES", "WFE_JWT_SECRET"} <= set_here


def test_local_env_files_are_ignored_by_git() -> None:
    for path in ("wfe.env", "config/local.env", ".env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} would be committed with its secrets"
    kept = subprocess.run(["git", "check-ignore", "-q", "config/wfe.env.example"], cwd=ROOT, check=False)
    assert kept.returncode == 1


def test_dockerfile_installs_the_pinned_package_and_the_deployable_code() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in text
    for folder in ("workflow_engine", "workers", "config"):
        assert f"COPY {folder} " in text


def test_a_wrong_command_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        check_wfe_command(["wfe", "worker", "--no-such-option"])
    with pytest.raises((AssertionError, click.UsageError)):
        check_wfe_command(["wfe", "frobnicate"])


def test_supervisord_programs_are_real_wfe_commands() -> None:
    """deploy/supervisord.conf (run for real in tests/integration/test_supervision.py)."""
    import configparser

    parser = configparser.RawConfigParser()
    parser.read(ROOT / "deploy" / "supervisord.conf")
    programs = {s.removeprefix("program:") for s in parser.sections() if s.startswith("program:")}
    assert programs == {"api", "coordinator", "worker", "flower"}
    for name in programs:
        section = parser[f"program:{name}"]
        command = section["command"].replace("%(process_num)d", "0").replace("%%", "%")
        argv = shlex.split(command)
        assert argv[0] == "%(ENV_WFE_BIN)s/wfe", argv
        check_wfe_command(["wfe", *argv[1:]])
        assert section["autorestart"] == "true" and section["stopasgroup"] == "true"


def test_the_compose_file_starts_nothing_with_a_known_secret() -> None:
    """No secret or password has a default: compose refuses to start without each (`:?`), the
    engine runs in production mode (the API refuses a weak secret), and ports are published on
    loopback unless the operator says otherwise."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${WFE_JWT_SECRET:?" in text and "${FLOWER_BASIC_AUTH:?" in text
    assert not re.search(r"\$\{(WFE_JWT_SECRET|FLOWER_BASIC_AUTH|WFE_METRICS_TOKEN):-[^}]", text)
    assert "change-me" not in text and "development-only" not in text
    assert env_file(ROOT / "config/docker.env")["WFE_ENVIRONMENT"] == "production"
    for name, service in compose()["services"].items():  # type: ignore[union-attr]
        for published in service.get("ports", []):
            assert published.startswith("${WFE_PUBLISH_ADDRESS:-127.0.0.1}:"), (name, published)
