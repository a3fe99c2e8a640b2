"""cluster.yaml passes Ray's own checks (what `ray up` runs) and opens nothing to the world."""

import copy
import re
from pathlib import Path

import yaml

from tune.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
TEXT = (REPO / "cluster.yaml").read_text()
CLUSTER = yaml.safe_load(TEXT)


def all_commands(cfg: dict) -> list[str]:
    keys = [k for k in cfg if k.endswith("_commands")]
    return [cmd for k in keys for cmd in cfg[k] or []]


def test_passes_rays_prepare_and_validate_config():
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(CLUSTER))
    validate_config(prepared)  # raises on any schema error


def test_has_an_autoscaling_gpu_worker_type():
    workers = {
        name: t for name, t in CLUSTER["available_node_types"].items()
        if name != CLUSTER["head_node_type"]
    }  # fmt: skip
    gpu = [t for t in workers.values() if re.match(r"(g|p)\d", t["node_config"]["InstanceType"])]
    assert gpu, "no GPU instance type among the workers"
    assert gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1


def test_every_node_type_names_its_own_security_groups():
    groups = [
        t["node_config"].get("SecurityGroupIds") for t in CLUSTER["available_node_types"].values()
    ]
    assert all(groups), "a node type without SecurityGroupIds gets Ray's group, open to 0.0.0.0/0"


def test_nothing_is_opened_to_the_world():
    assert "0.0.0.0/0" not in TEXT
    assert "IpPermissions" not in TEXT  # rules live in the pre-made groups, not here
    for command in all_commands(CLUSTER):
        assert "--dashboard-host=0.0.0.0" not in command
        assert "--host 0.0.0.0" not in command


def test_every_project_command_it_runs_exists():
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    used = re.findall(r"cnn-tune (\S+)", "\n".join(all_commands(CLUSTER)))
    assert used, "the cluster should stage data with cnn-tune"
    assert set(used) <= subcommands, set(used) - subcommands
    [server] = [c for c in all_commands(CLUSTER) if "cnn-tune server" in c]
    assert "--logins" in server and "postgresql+psycopg://" in server  # the team's server
    assert "PASSWORD=" not in server and "SECRET_KEY=" not in server  # secrets: the env file
