"""The fake agent's pure parts: what it reads from Ironic's iPXE config, what it answers."""

from __future__ import annotations

import pytest

from quintupleo.backends.agent import commands
from quintupleo.backends.agent.node import BootConfig, inspection_data
from quintupleo.backends.fake import FakeBackend

IPXE_DEPLOY = (
    "#!ipxe\n:deploy\nimgfree\n"
    "kernel --timeout 60000 http://127.0.0.1:8089/3f8c/deploy_kernel selinux=0 "
    "ipa-api-url=http://127.0.0.1:6385 "
    "ipa-inspection-callback-url=http://127.0.0.1:6385/v1/continue_inspection "
    "coreos.configdrive=0 initrd=deploy_ramdisk || goto retry\n"
    "initrd --timeout 60000 http://127.0.0.1:8089/3f8c/deploy_ramdisk || goto retry\nboot\n")


def test_the_agent_boots_only_from_a_config_that_names_it():
    config = BootConfig.parse(IPXE_DEPLOY)
    assert config == BootConfig("http://127.0.0.1:6385",
                                "http://127.0.0.1:6385/v1/continue_inspection")
    assert BootConfig.parse("#!ipxe\nsanboot --no-describe --drive 0x80\n") is None


def test_steps_and_commands_as_ipa_answers_them():
    steps = commands.run("clean.get_clean_steps", {}).result
    names = {s["step"] for s in steps["clean_steps"]["GenericHardwareManager"]}
    assert {"erase_devices", "erase_devices_metadata"} <= names
    write = commands.run("deploy.execute_deploy_step", {"step": {"step": "write_image"}})
    assert write.slow and write.result == {"deploy_result": None,
                                           "deploy_step": {"step": "write_image"}}
    assert commands.run("standby.power_off", {}).then == "power off"
    with pytest.raises(commands.UnknownCommand, match=r"Unknown command: bogus\.thing"):
        commands.run("bogus.thing", {})


def test_inspection_data_is_the_fake_node():
    info = FakeBackend(3).infos[2]
    data = inspection_data(info)
    assert [i["mac_address"] for i in data["inventory"]["interfaces"]] == list(info.macs)
    assert data["inventory"]["memory"]["physical_mb"] == info.memory_mb
    assert data["root_disk"]["size"] == info.local_gb * 1024**3
