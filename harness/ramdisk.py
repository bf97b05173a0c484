"""What Ironic boots a lab node into, built by the test (no downloads): an initramfs whose /init
is a 150-byte static x86-64 program that prints a marker on the console and waits, written here
as machine code, in a cpio archive (linux_guest.py)."""

from __future__ import annotations

import struct

from harness.linux_guest import cpio

BASE = 0x400000          # where the program is loaded
HEADERS = 64 + 56        # ELF header and one program header


def init_program(marker: str) -> bytes:
    """A static ELF executable: write(1, marker); then pause() forever (init must not exit)."""
    message = f"\n{marker}\n".encode()
    code = bytes([
        0xB8, 1, 0, 0, 0,                         # mov eax, 1 (write)
        0xBF, 1, 0, 0, 0,                         # mov edi, 1 (stdout: /dev/console)
        0x48, 0x8D, 0x35, 16, 0, 0, 0,            # lea rsi, [rip + 16] (the message)
        0xBA, *struct.pack("<I", len(message)),   # mov edx, len
        0x0F, 0x05,                               # syscall
        0xB8, 34, 0, 0, 0,                        # again: mov eax, 34 (pause)
        0x0F, 0x05,                               # syscall
        0xEB, 0xF7,                               # jmp again
    ])
    body = code + message
    size = HEADERS + len(body)
    elf = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                      2, 0x3E, 1, BASE + HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return elf + program + body


def initramfs(marker: str) -> bytes:
    return cpio([("dev", 0o040755, b"", (0, 0)),
                 ("dev/console", 0o020600, b"", (5, 1)),
                 ("init", 0o100755, init_program(marker), (0, 0))])
