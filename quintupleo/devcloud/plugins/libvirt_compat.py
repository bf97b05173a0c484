"""Nova's libvirt driver, fitted to Debian 12's libvirt 9.0 for UEFI guests.

Nova 34 describes a UEFI guest with firmware autoselection (`<os firmware='efi'>` and a
`<firmware><feature name='secure-boot'/>` element) and also `<loader secure='no|yes'/>`, which
libvirt before 9.2 refuses beside autoselection ("loader attribute 'secure' cannot be specified
when firmware autoselection is enabled"). The feature element says the same thing, so the
attribute is left out; libvirt then picks OVMF from QEMU's firmware descriptors.
"""

from nova.virt.libvirt import driver


class LibvirtDriver(driver.LibvirtDriver):
    def _get_guest_config(self, *args, **kwargs):
        guest = super()._get_guest_config(*args, **kwargs)
        if guest.os_firmware == "efi" and guest.os_loader is None:
            guest.os_loader_secure = None
        return guest
