"""Damage done to a checkpoint file on disk, as a bad sector or a stray write would do it."""

from __future__ import annotations

import struct
from pathlib import Path


def flip_tensor_byte(file: Path) -> None:
    """Flip the bits of the last byte of the file's tensor data: past the 8-byte header length and the header, so
    the file still loads (safetensors checks the header, not the values) with one weight changed."""
    data = bytearray(file.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    assert len(data) > start, f"{file}: holds no tensor data"
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
