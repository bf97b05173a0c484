"""The newc cpio format the Linux kernel unpacks an initramfs from, written here (no cpio
binary needed); every entry owned by root, time 0: the same entries give the same bytes."""

from __future__ import annotations

Entry = tuple[str, int, bytes, tuple[int, int]]   # name, mode, data, (rdev major, minor)


def newc(entries: list[Entry]) -> bytes:
    out = bytearray()
    for inode, (name, mode, data, (major, minor)) in enumerate(
            [*entries, ("TRAILER!!!", 0, b"", (0, 0))], 1):
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(encoded), 0)
        out += b"070701" + b"".join(f"{f:08X}".encode() for f in fields) + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)
