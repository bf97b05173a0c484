"""Nova's libvirt driver with two fixes the devcloud's real host needs.

- **UEFI on Debian 12's libvirt 9.0.** Nova 34 describes a UEFI guest with firmware
  autoselection (`<os firmware='efi'>` and a `<firmware><feature name='secure-boot'/>` element)
  and also `<loader secure='no|yes'/>`, which libvirt before 9.2 refuses beside autoselection
  ("loader attribute 'secure' cannot be specified when firmware autoselection is enabled"). The
  feature element says the same thing, so the attribute is left out; libvirt then picks OVMF
  from QEMU's firmware descriptors.
- **A rescued guest keeps its serial port.** With `[serial_console] enabled`, Nova adds the TCP
  serial ports only when the domain has none yet (so a migration keeps its ports); a rescue
  defines the rescue domain while the old one is still there, so the rescued guest gets no
  serial device at all: no console log, no serial console, while it network-boots. Here a
  rescue's config gets its ports like a fresh guest's.
"""

from nova.virt.libvirt import driver


class LibvirtDriver(driver.LibvirtDriver):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rescue_configs = set()   # instances whose rescue domain is being described

    def _get_guest_config(self, instance, network_info, image_meta, disk_info, rescue=None,
                          *args, **kwargs):
        if rescue:
            self._rescue_configs.add(instance.uuid)
        try:
            guest = super()._get_guest_config(instance, network_info, image_meta, disk_info,
                                              rescue, *args, **kwargs)
        finally:
            self._rescue_configs.discard(instance.uuid)
        if guest.os_firmware == "efi" and guest.os_loader is None:
            guest.os_loader_secure = None
        return guest

    def _serial_ports_already_defined(self, instance):
        if instance.uuid in self._rescue_configs:
            return False
        return super()._serial_ports_already_defined(instance)
