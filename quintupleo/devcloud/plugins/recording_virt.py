"""Nova's fake hypervisor, writing down what Nova asks it to boot.

The devcloud has no real VMs, so tests check what a real hypervisor would act on: the image a
rescue boots (and its properties), the image a rebuild spawns, power changes. One JSON line
per event in `<nova state_path>/virt-events.jsonl`.

Fault injection for tests: a rescue or a spawn from an image whose name holds `qo-fault-rescue`
or `qo-fault-spawn` fails as a hypervisor error would. Latency injection: while
`<state_path>/virt-delays.json` holds {"reboot_hard": 3}, say, each such event takes that long.
"""

import json
import os
import time

from nova.compute import power_state
from nova.conf import CONF
from nova.virt import fake


class RecordingFakeDriver(fake.FakeDriverWithoutFakeNodes):
    # as a cloud whose hosts boot with UEFI secure boot: images that ask for it
    # (os_secure_boot=required) are scheduled here (the trait), though nothing boots
    capabilities = {**fake.FakeDriverWithoutFakeNodes.capabilities,  # noqa: RUF012
                    "supports_secure_boot": True}

    def _record(self, event, instance, image_meta=None):
        entry = {"time": time.time(), "event": event, "instance": instance.uuid}
        if image_meta is not None:
            entry["image"] = getattr(image_meta, "id", None)
            entry["disk_format"] = getattr(image_meta, "disk_format", None)
            properties = getattr(image_meta, "properties", None)
            entry["properties"] = properties.obj_to_primitive()["nova_object.data"] \
                if properties is not None else {}
        path = os.path.join(CONF.state_path, "virt-events.jsonl")
        with open(path, "a") as log:
            log.write(json.dumps(entry, default=str) + "\n")

    def _delay(self, event):
        try:
            with open(os.path.join(CONF.state_path, "virt-delays.json")) as delays:
                seconds = float(json.load(delays).get(event, 0))
        except (OSError, ValueError, AttributeError):
            return
        time.sleep(seconds)   # green under nova-compute's eventlet

    def _fail_if_asked(self, event, instance, image_meta):
        if f"qo-fault-{event}" in (getattr(image_meta, "name", None) or ""):
            self._record(f"{event}_failed", instance, image_meta)
            raise RuntimeError(f"injected {event} failure (image named qo-fault-{event})")

    def spawn(self, context, instance, image_meta, *args, **kwargs):
        self._fail_if_asked("spawn", instance, image_meta)
        super().spawn(context, instance, image_meta, *args, **kwargs)
        self._record("spawn", instance, image_meta)

    def rescue(self, context, instance, network_info, image_meta, *args, **kwargs):
        self._fail_if_asked("rescue", instance, image_meta)
        super().rescue(context, instance, network_info, image_meta, *args, **kwargs)
        # a hypervisor boots the rescue image, also of a stopped server (Nova's fake leaves
        # such a guest shut down, which a BMC reads as a rescued guest that powered off)
        self.instances[instance.uuid].state = power_state.RUNNING
        self._record("rescue", instance, image_meta)

    def unrescue(self, *args, **kwargs):
        super().unrescue(*args, **kwargs)
        instance = kwargs.get("instance") or args[1]
        self._record("unrescue", instance)

    def power_on(self, context, instance, *args, **kwargs):
        super().power_on(context, instance, *args, **kwargs)
        self._record("power_on", instance)

    def power_off(self, instance, *args, **kwargs):
        super().power_off(instance, *args, **kwargs)
        self._record("power_off", instance)

    def reboot(self, context, instance, network_info, reboot_type, *args, **kwargs):
        self._delay(f"reboot_{reboot_type.lower()}")
        super().reboot(context, instance, network_info, reboot_type, *args, **kwargs)
        self._record(f"reboot_{reboot_type.lower()}", instance)
