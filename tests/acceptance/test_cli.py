"""The command line as people and CI use it: settings files checked per key, help that says
every default and names values in words, one output convention (table, JSON, YAML with the
same keys; nothing cut when piped; errors on one line), the BMC's logs and metrics."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from quintupleo.cli import app

BAD_SETTINGS = [
    ("fake_nodes: three\n", "fake_nodes: expected an integer, got 'three'"),
    ("refresh_interval: fast\n", "refresh_interval: expected a number, got 'fast'"),
    ("ipmi_port_base: abc\n", "ipmi_port_base: expected an integer, got 'abc'"),
    ("nodes: [a, b]\n", "nodes: expected a mapping"),
    ("tls: 'no'\n", "tls: expected true or false (a YAML boolean), got 'no'"),
    ("redfish: yes please\n", "redfish: expected true or false"),
    ("bogus_key: 1\n", "bogus_key: unknown setting"),
    ("nodes: {n1: {ipmi_port: '623'}}\n", "nodes.n1.ipmi_port: expected an integer"),
    ("nodes: {n1: {colour: red}}\n", "nodes.n1.colour: unknown"),
    ("fake_nodes: 0\n", "fake_nodes: must be between 1 and 100000"),
    ("backend: cloud\n", "backend: 'cloud': choose one of fake, openstack, qemu"),
    ("password: 'twenty-one-characters'\n", "password: IPMI 2.0 passwords are at most 20"),
    ("- a\n- b\n", "expected a mapping of settings"),
    ("fake_nodes: [\n", "cannot read it"),
]


def qo(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quintupleo", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, **kwargs)


@pytest.mark.parametrize(("text", "said"), BAD_SETTINGS)
def test_a_bad_settings_file_is_one_line_naming_the_file_and_key(tmp_path, text, said):
    path = tmp_path / "bmc.yaml"
    path.write_text(text)
    result = qo("bmc", "serve", "--config", str(path), "--state-dir", str(tmp_path / "s"),
                env={"COLUMNS": "40"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert said in lines[0]
    assert "Traceback" not in result.stderr


def test_a_bad_flag_value_names_the_flag(tmp_path):
    result = qo("bmc", "serve", "--fake-nodes", "0", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --fake-nodes: must be between 1 and 100000"


def commands(group=None, path=()):
    """Every command of the CLI, as its words."""
    import typer
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


@functools.cache
def help_texts() -> dict[tuple[str, ...], str]:
    """Every command's `--help`, as a user's terminal of 200 columns shows it (read once, four
    at a time: each is a process of its own)."""
    every = list(commands())
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = pool.map(lambda words: qo(*words, "--help", env={"COLUMNS": "200"}).stdout,
                         every)
        return dict(zip(every, texts, strict=True))


def test_help_says_every_default_and_names_no_python_type():
    seen = 0
    for words, text in help_texts().items():
        assert "Usage:" in text, words
        for internal in ("<int>", "<str>", "<bool>", "<float>", "<path>", "list[", "Optional"):
            assert internal not in text, (words, internal, text)
        for line in text.splitlines():     # a help text's own "[default: …]" survives
            assert "default: ]" not in line and "[default: ." not in line, (words, line)
            assert not line.rstrip().endswith(" ."), (words, line)    # an eaten default
        seen += 1
    assert seen >= 20
    up = " ".join(qo("devcloud", "up", "--help").stdout.split())
    assert "[default: 19000]" in up and "--vms / --no-vms" in up
    serve = " ".join(qo("bmc", "serve", "--help").stdout.split())
    assert "--fake-nodes NODES" in serve and "[default: 2]" in serve
    assert "--log-format text|json" in serve and "[default: text]" in serve


def test_flags_are_spelled_one_way_across_groups():
    spelled = {}
    for words, text in help_texts().items():
        for flag in ("--output", "--out ", "--format", "--kind"):
            if flag in text:
                spelled.setdefault(flag.strip(), []).append(" ".join(words))
    assert "--out" not in spelled, spelled["--out"]
    assert "env nodes" in spelled["--kind"] and "env nodes" not in spelled["--format"]
    for listing in ("env list", "env show", "env status", "lab status", "lab list",
                    "devcloud status", "check", "image build"):
        assert listing in spelled["--format"], listing


def test_lists_in_json_and_yaml_carry_the_table_keys(tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path), "QUINTUPLEO_HOME": str(tmp_path / "qo")}
    assert json.loads(qo("env", "list", "-f", "json", env=env).stdout) == []
    assert qo("lab", "list", "--format", "yaml", env=env).stdout.strip() == "[]"
    table = qo("env", "list", env=env).stdout
    for column in ("name", "cloud", "state", "nodes", "resources"):
        assert column in table


def test_errors_are_one_line_whatever_the_width(tmp_path):
    long_name = "an-environment-whose-name-is-much-longer-than-forty-columns-of-a-terminal"
    result = qo("env", "show", long_name, env={"COLUMNS": "40", "XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and long_name in result.stderr


@pytest.mark.devcloud
def test_a_piped_table_is_never_cut(devcloud):
    table = qo("devcloud", "status", env={"COLUMNS": "60"}).stdout
    rows = json.loads(qo("devcloud", "status", "-f", "json").stdout)["services"]
    for row in rows:
        assert row["log"] in table                       # the whole path, on one line
    header = next(line for line in table.splitlines() if "state" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == list(rows[0])


def test_bmc_logs_json_lines_to_a_file_and_serves_metrics(bmc_server, config):
    bmc = bmc_server("--fake-nodes", "2", *config(account_lockout_threshold=2))
    port, state = bmc.port_base + 10, bmc.state_dir.parent / "json-state"
    log_file = state / f"bmc-{port}.log"          # the file the test's process harness reads
    json_bmc = bmc_server("--fake-nodes", "1", "--log-format", "json", "--log-file",
                          str(log_file), state_dir=state, port_base=port)
    lines = log_file.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert any(e["message"].startswith("ready:") and e["level"] == "info" for e in entries)
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    json_bmc.stop()

    bmc.ipmitool("power", "on")
    bmc.ipmitool("chassis", "bootdev", "pxe")
    cert = str(bmc.state_dir / "redfish-cert.pem")
    made = requests.post(f"{bmc.redfish_url}/redfish/v1/AccountService/Accounts",
                         auth=("admin", "password"), verify=cert, timeout=10,
                         json={"UserName": "ops", "Password": "ops-pw", "RoleId": "Operator"})
    assert made.status_code == 201
    for guess in ("a", "b", "c"):            # the third is refused by the lockout
        requests.get(f"{bmc.redfish_url}/redfish/v1/Systems", auth=("ops", guess),
                     verify=cert, timeout=10)
    assert requests.get(f"{bmc.redfish_url}/metrics", verify=cert, timeout=10
                        ).status_code == 401                    # behind the same login
    requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/fake-0", auth=("admin", "password"),
                 verify=cert, timeout=10)
    scraped = requests.get(f"{bmc.redfish_url}/metrics", auth=("admin", "password"),
                           verify=cert, timeout=10)
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0)
    assert value("quintupleo_bmc_requests_total", protocol="ipmi", command="chassis_control",
                 outcome="ok") == 1
    assert value("quintupleo_bmc_requests_total", protocol="redfish",
                 command="GET /redfish/v1/Systems/{node}", outcome="200") == 1
    assert value("quintupleo_bmc_request_seconds_count", protocol="ipmi") >= 5
    assert value("quintupleo_bmc_nodes", power_state="on") == 1
    assert value("quintupleo_bmc_nodes", power_state="off") == 1
    assert value("quintupleo_bmc_pending_actions") == 0
    assert value("quintupleo_bmc_sessions", protocol="redfish") == 0
    assert value("quintupleo_bmc_refresh_seconds_count") >= 1
    assert value("quintupleo_bmc_logins_locked_out_total", protocol="redfish") == 1
    assert value("quintupleo_bmc_logins_locked_out_total", protocol="ipmi") == 0
