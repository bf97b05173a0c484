"""A UEFI node's variable store (OVMF's edk2 varstore file) set as its BMC's secure boot
settings say, before QEMU starts (QEMU holds the file while it runs).

A node's variables start from Debian's `OVMF_VARS_4M.ms.fd`: Microsoft's keys enrolled (PK,
KEK, db, dbx: user mode). Secure boot is OVMF's `SecureBootEnable` variable, read at every
boot: on, the firmware boots only images those keys signed (an unsigned GRUB is "Access
Denied"). Deleting the keys is setup mode (nothing enforced); restoring them copies the
template's. The code is OVMF_CODE_4M.fd, which enforces secure boot without SMM (a guest could
rewrite its own variables: fine for a test lab, not a security boundary). Parsing and writing
the store is virt-firmware's (the edk2 and QEMU maintainers' tool).
"""

from __future__ import annotations

from pathlib import Path

from virt.firmware.varstore.edk2 import Edk2VarStore

TEMPLATE = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
KEYS = ("PK", "KEK", "db", "dbx")


def set_secure_boot(store_file: Path, enabled: bool, keys: bool) -> bool:
    """Make the store say `enabled` (with `keys` enrolled, or none); whether it changed."""
    store = Edk2VarStore(str(store_file))
    variables = store.get_varlist()
    changed = False
    if keys and "PK" not in variables:
        template = Edk2VarStore(str(TEMPLATE)).get_varlist()
        for name in KEYS:
            if name in template:
                variables[name] = template[name]
        changed = True
    elif not keys and "PK" in variables:
        for name in KEYS:
            variables.pop(name, None)
        changed = True
    current = variables.get("SecureBootEnable")
    if (current is not None and bytes(current.data[:1]) == b"\x01") != (enabled and keys):
        variables.set_bool("SecureBootEnable", enabled and keys)
        changed = True
    if changed:
        store.write_varstore(str(store_file), variables)
    return changed
