"""docker/ and config/ files parse, and agree with each other and with what docs/orchestration.md names."""

from __future__ import annotations

import re
import shlex
import tomllib

import yaml
from conftest import CHECKOUT_ROOT

from sld_workflows.cli.main import build_parser

DOCKER = CHECKOUT_ROOT / "docker"
CONFIG = CHECKOUT_ROOT / "config"
DOCS = (CHECKOUT_ROOT / "docs" / "orchestration.md").read_text()


def _dockerfile():
    lines, cmd, copies = (DOCKER / "Dockerfile").read_text().splitlines(), None, []
    for line in lines:
        if line.startswith("CMD "):
            cmd = yaml.safe_load(line[4:])
        if line.startswith("COPY "):
            copies.append(line.split()[1:])
        if line.startswith("FROM "):
            assert "python:3.11" in line
    return cmd, copies


def test_compose_services_images_and_commands_agree():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    mongodb = services["mongodb"]
    assert mongodb["image"].startswith("mongo:")
    assert mongodb["ports"] == ["127.0.0.1:27017:27017"]  # published on loopback only
    assert "MONGO_INITDB_ROOT_PASSWORD" in mongodb["environment"]  # authentication on
    assert ":?" in mongodb["environment"]["MONGO_INITDB_ROOT_PASSWORD"]  # no default password
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert "image" in service and ("build" in service or name == "mongodb"), name  # buildable from the file
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    worker = services["worker"]
    assert "--forever" in worker["command"]  # keeps polling an empty queue instead of exiting
    assert (CHECKOUT_ROOT / "docker" / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    cmd, copies = _dockerfile()
    assert worker["command"] == cmd  # compose and image run the same command
    assert cmd[:2] == ["sld", "worker"] and cmd[cmd.index("-l") + 1] == "/config/launchpad.yaml"
    assert worker["depends_on"]["mongodb"]["condition"] == "service_healthy"
    assert services["dashboard"]["image"] == worker["image"] == "sld-workflows:latest"
    assert services["dashboard"]["command"][:3] == ["lpad", "-l", "/config/launchpad.yaml"]
    # every COPY source exists; the launchpad the command names is copied in and points at the service
    for *sources, _dest in copies:
        for src in sources:
            assert (CHECKOUT_ROOT / src).exists(), src
    assert ["docker/launchpad.yaml", "/config/launchpad.yaml"] in copies
    lp = yaml.safe_load((DOCKER / "launchpad.yaml").read_text())
    assert lp["host"] == "mongodb" and lp["port"] == 27017
    assert lp["password"] == "${SLD_MONGO_PASSWORD}" and lp["username"] == "${SLD_MONGO_USER}"
    for var in ("SLD_MONGO_USER", "SLD_MONGO_PASSWORD"):
        assert var in worker["environment"] and var in services["dashboard"]["environment"]
    assert lp["mongoclient_kwargs"]["serverSelectionTimeoutMS"] <= 10000
    # the image provides sld-fake-vasp: a console script of the package
    scripts = tomllib.loads((CHECKOUT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "sld" in scripts and "sld-fake-vasp" in scripts
    assert "command -v sld-fake-vasp" in (DOCKER / "Dockerfile").read_text()


def test_docs_name_what_exists():
    assert "docker compose -f docker/compose.yaml up -d mongodb" in DOCS
    assert "sld-workflows:latest" in DOCS
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    named = set(re.findall(r"^\s*sld ([a-z]+)", DOCS, flags=re.M)) | set(re.findall(r"`sld ([a-z]+)", DOCS))
    assert {"submit", "worker", "status", "resume", "extend", "restart", "recover"} <= named
    assert named <= subcommands, named - subcommands
    for path in re.findall(r"`((?:config|docker|fw_templates|benchmarks)/[\w./-]+)`", DOCS):
        assert (CHECKOUT_ROOT / path).exists(), path


def test_config_files_load_with_fireworks():
    import fireworks.fw_config as fw_config
    from fireworks.core.fworker import FWorker
    from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

    settings = yaml.safe_load((CONFIG / "FW_config.yaml").read_text())
    unknown = [k for k in settings if k not in vars(fw_config)]
    assert not unknown, unknown  # FireWorks refuses unknown keys
    assert settings["PING_TIME_SECS"] < settings["RUN_EXPIRATION_SECS"] <= 3600
    worker = FWorker.from_file(str(CONFIG / "my_fworker.yaml"))
    assert "vasp" in worker.category
    for name, q_type, marker in (("my_qadapter_slurm.yaml", "SLURM", "#SBATCH --signal=TERM@120"),
                                 ("my_qadapter_pbs.yaml", "PBS", "#PBS -l walltime=24:00:00")):
        qa = CommonAdapter.from_file(str(CONFIG / name))
        assert qa.q_type == q_type
        script = qa.get_script_str("/tmp/launch")
        assert marker in script and "rlaunch" in script
        assert shlex.split(qa["rocket_launch"])[0] == "rlaunch"
    lp = yaml.safe_load((CONFIG / "my_launchpad.yaml").read_text())
    assert lp["mongoclient_kwargs"]["serverSelectionTimeoutMS"] <= 10000
    assert "spec.sld.trajectory" in lp["user_indices"]


def test_launchpad_file_expands_environment_variables(tmp_path, monkeypatch):
    """The compose launchpad keeps its password in the environment; unset variables are one clear error."""
    import pytest

    from sld_workflows.store import StoreError
    from sld_workflows.store.session import open_session

    lp = tmp_path / "lp.yaml"
    lp.write_text((DOCKER / "launchpad.yaml").read_text())
    monkeypatch.delenv("SLD_MONGO_PASSWORD", raising=False)
    monkeypatch.setenv("SLD_MONGO_USER", "sld")
    with pytest.raises(StoreError, match=r"environment variable\(s\) in \['\$\{SLD_MONGO_PASSWORD\}'\] are not set"):
        with open_session(launchpad_file=lp):
            pass
