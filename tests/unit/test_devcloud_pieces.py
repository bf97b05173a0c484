"""Pure pieces of the devcloud: clouds.yaml merging, state, config rendering, process control."""

from __future__ import annotations

import stat
import sys
import time

import psutil
import pytest
from ruamel.yaml import YAML

from quintupleo.devcloud import clouds_yaml, processes
from quintupleo.devcloud.configs import render_ini
from quintupleo.devcloud.layout import Layout, State
from quintupleo.errors import DevcloudError

EXISTING = """\
# my clouds
clouds:
  production:   # do not touch
    auth:
      auth_url: https://cloud.example/v3
      username: alice
    region_name: North
  devcloud:
    auth:
      auth_url: http://stale/v3
"""


def test_merge_replaces_ours_and_keeps_the_rest(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(EXISTING)
    state = State(port_base=21000)
    clouds_yaml.merge(state, path)
    text = path.read_text()
    assert "# my clouds" in text and "# do not touch" in text
    clouds = YAML(typ="safe").load(text)["clouds"]
    assert clouds["production"] == {"auth": {"auth_url": "https://cloud.example/v3",
                                             "username": "alice"}, "region_name": "North"}
    assert clouds["devcloud"]["auth"]["auth_url"] == "http://127.0.0.1:21000/v3"
    assert clouds["devcloud"]["auth"]["username"] == "demo"
    assert clouds["devcloud-admin"]["auth"]["password"] == state.admin_password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_merge_creates_the_file(tmp_path):
    path = tmp_path / "sub" / "clouds.yaml"
    clouds_yaml.merge(State(), path)
    assert set(YAML(typ="safe").load(path.read_text())["clouds"]) == {"devcloud",
                                                                       "devcloud-admin"}


def test_state_round_trips_and_hides_passwords(tmp_path):
    layout = Layout(tmp_path)
    state = State(port_base=20000)
    state.save(layout)
    assert State.load(layout) == state
    assert state.admin_password not in repr(state)
    assert stat.S_IMODE(layout.state_file.stat().st_mode) == 0o600
    assert state.port("nova") == 20001


def test_corrupt_state_file_is_a_clear_error(tmp_path):
    layout = Layout(tmp_path)
    layout.state_file.write_text("{not json")
    with pytest.raises(DevcloudError, match="corrupt"):
        State.load(layout)


def test_render_ini():
    text = render_ini({"DEFAULT": {"debug": False, "workers": 2}, "db": {"url": "sqlite://"}})
    assert text == "[DEFAULT]\ndebug = false\nworkers = 2\n\n[db]\nurl = sqlite://\n"


def test_stop_terms_the_whole_group_and_ignores_a_recycled_pid(tmp_path):
    layout = Layout(tmp_path)
    # A parent that ignores nothing and a child in its group: both must go.
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    pid = processes.spawn(layout, "demo", [sys.executable, "-c", script], {"PATH": "/usr/bin"})
    time.sleep(0.5)
    group = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    assert len(group) == 2
    assert processes.running(layout, "demo").pid == pid
    assert processes.stop(layout, "demo", timeout=5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group)
    assert processes.running(layout, "demo") is None
    # A PID file whose process started at another time is not ours: never signalled.
    layout.pid_file("other").write_text(f"{psutil.Process().pid} 12345.0\n")
    assert processes.running(layout, "other") is None
    assert not processes.stop(layout, "other")


def test_stop_kills_what_ignores_term(tmp_path):
    layout = Layout(tmp_path)
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pid = processes.spawn(layout, "stubborn", [sys.executable, "-c", script], {})
    time.sleep(0.5)
    assert processes.stop(layout, "stubborn", timeout=1)
    assert f"still alive 1 s after TERM, killed: {pid}" in layout.log("stubborn").read_text()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
