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


# ---- clouds.yaml entries named for their home ------------------------------------------------
@pytest.fixture
def running_keystone():
    """Something answering HTTP on loopback, as another devcloud's Keystone would."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(300)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v3"
    server.shutdown()


def test_entries_are_named_for_their_home(tmp_path, monkeypatch):
    monkeypatch.setenv("QUINTUPLEO_HOME", str(tmp_path / "default"))
    path = tmp_path / "clouds.yaml"
    default = Layout(tmp_path / "default" / "devcloud")
    assert clouds_yaml.claim_name(default, State(), path) == "devcloud"
    other = Layout(tmp_path / "Second Cloud")
    assert clouds_yaml.claim_name(other, State(port_base=19100), path) == "devcloud-second-cloud"
    nested = Layout(tmp_path / "b" / "devcloud")
    assert clouds_yaml.claim_name(nested, State(), path) == "devcloud-b"
    # Once chosen it stays, whatever the home is called later.
    assert clouds_yaml.claim_name(other, State(cloud_name="devcloud-x"), path) == "devcloud-x"


def test_an_entry_of_another_running_cloud_is_never_repointed(tmp_path, monkeypatch,
                                                              running_keystone):
    monkeypatch.setenv("QUINTUPLEO_HOME", str(tmp_path / "default"))
    path = tmp_path / "clouds.yaml"
    theirs = State(port_base=19000, cloud_name="devcloud-b")
    clouds_yaml.merge(theirs, path)
    document = YAML().load(path.read_text())
    document["clouds"]["devcloud-b"]["auth"]["auth_url"] = running_keystone
    YAML().dump(document, path)
    ours = Layout(tmp_path / "b")                      # a second home of the same name
    name = clouds_yaml.claim_name(ours, State(port_base=19100), path)
    assert name == "devcloud-b-19100"
    with pytest.raises(DevcloudError, match="belongs to another devcloud, running at"):
        clouds_yaml.merge(State(port_base=19100, cloud_name="devcloud-b"), path)
    clouds_yaml.merge(State(port_base=19100, cloud_name=name), path)
    clouds = YAML().load(path.read_text())["clouds"]
    assert clouds["devcloud-b"]["auth"]["auth_url"] == running_keystone   # untouched
    assert clouds["devcloud-b-19100-admin"]["auth"]["auth_url"].endswith(":19100/v3")


def test_an_entry_of_a_stopped_cloud_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setenv("QUINTUPLEO_HOME", str(tmp_path / "default"))
    path = tmp_path / "clouds.yaml"
    clouds_yaml.merge(State(port_base=1, cloud_name="devcloud-b"), path)   # nothing listens
    assert clouds_yaml.claim_name(Layout(tmp_path / "b"), State(port_base=19100),
                                  path) == "devcloud-b"


# ---- the L2 agent's port security ------------------------------------------------------------
def test_port_security_rules_allow_own_and_pair_addresses_only():
    from quintupleo.devcloud.plugins.l2_agent import Port, ruleset
    port = Port("p1", "n1", "fa:16:3e:00:00:01", True, ["198.51.100.10", "fd00::10"],
                [("", "198.51.100.77"), ("fa:16:3e:00:00:99", "10.0.0.0/24")])
    text = ruleset("t", {"tapp1": port})
    assert 'iifname "tapp1" jump from_tapp1' in text
    assert "ether saddr != { fa:16:3e:00:00:01, fa:16:3e:00:00:99 } drop" in text
    assert "ip saddr != { 10.0.0.0/24, 198.51.100.10/32, 198.51.100.77/32 } drop" in text
    assert "fd00::10/128" in text
    # No address at all: IPv4 only as a DHCP client.
    bare = ruleset("t", {"tapp2": Port("p2", "n1", "fa:16:3e:00:00:02", True)})
    assert "ether type ip drop" in bare
    assert text.startswith("table bridge t\ndelete table bridge t\n")   # replaced atomically
