"""The delegate's per-layer kernel tuning record, stored in the LR.

The LR keeps it as opaque bytes per layer (``LRLayer.tuning``); the delegate
(``delegate/kernel_tuning.h``) reads it, and ``cocopie tune-kernels`` writes
it. One entry per SIMD target, so a file tuned on several kinds of CPU keeps
each one's choice. Little-endian layout:

* ``u8 version`` (1), ``u8 num_entries`` (1 to 16);
* per entry, 24 bytes: ``char target[16]`` (Highway target name such as
  ``"AVX3"`` or ``"NEON"``, NUL-padded, printable ASCII, unique),
  ``u8 kernel`` (0 = rows, 1 = block), ``u8 channel_block`` (8, 16, 32),
  ``u8 tile_pixels`` (1..32), ``u8 tiles_per_task`` (1..64),
  ``u16 chunk_kib`` (input-channel chunk, 0 = one chunk), ``u8 loop_order``
  (0 = channel blocks outer, 1 = pixels outer), ``u8 threads`` (threads it was
  tuned with, advisory). A rows entry has zeros in every block field.

The delegate ignores a record that breaks any rule (with one message) and
falls back to its cache or built-in choice: a bad record costs speed, never
correctness.

Example:

    >>> entry = TuningEntry("AVX3", "block", channel_block=32, tile_pixels=12)
    >>> decode(encode([entry]))[0].tile_pixels
    12
"""

import dataclasses
import struct

VERSION = 1
MAX_ENTRIES = 16
TARGET_BYTES = 16
MAX_TILES_PER_TASK = 64
MAX_TILE_PIXELS = 32
CHANNEL_BLOCKS = (8, 16, 32)
LOOP_ORDERS = ("blocks", "pixels")
# Chunk limits of the block kernel, in KiB (kMinChunkBytes / kMaxChunkBytes).
MIN_CHUNK_KIB = 1
MAX_CHUNK_KIB = 4096

_ENTRY = struct.Struct("<16sBBBBHBB")


class TuningFormatError(ValueError):
    """Raised when tuning-record bytes or an entry break the format's rules."""


@dataclasses.dataclass
class TuningEntry:
    """One SIMD target's kernel choice for a layer.

    Attributes:
        target: Highway target name (``"AVX3"``, ``"AVX2"``, ``"NEON"``...).
        kernel: ``"block"`` or ``"rows"``.
        channel_block: output channels per block (block kernel).
        tile_pixels: output pixels per micro-kernel tile (block kernel).
        tiles_per_task: tiles per thread-pool task (block kernel).
        chunk_bytes: input-channel chunk budget, a multiple of 1024; 0 = one
            chunk (block kernel).
        loop_order: ``"blocks"`` or ``"pixels"`` outer (block kernel).
        threads: threads the choice was timed with (0 = unknown).
    """

    target: str
    kernel: str = "block"
    channel_block: int = 0
    tile_pixels: int = 0
    tiles_per_task: int = 4
    chunk_bytes: int = 24 * 1024
    loop_order: str = "blocks"
    threads: int = 0

    def describe(self):
        """Short human form, e.g. ``"AVX3 block 12x32 t4 c24K blocks"``."""
        if self.kernel == "rows":
            return f"{self.target} rows"
        chunk = f"c{self.chunk_bytes // 1024}K" if self.chunk_bytes else "c-"
        return (f"{self.target} block {self.tile_pixels}x{self.channel_block} "
                f"t{self.tiles_per_task} {chunk} {self.loop_order}")

    def as_dict(self):
        return dataclasses.asdict(self)


def _check(entry):
    where = f"tuning entry for {entry.target!r}"
    target = entry.target if isinstance(entry.target, str) else ""
    if not (0 < len(target) < TARGET_BYTES and all(0x21 <= ord(c) <= 0x7E for c in target)):
        raise TuningFormatError(
            f"Expected a target name of 1 to {TARGET_BYTES - 1} printable ASCII "
            f"characters. Received: target={entry.target!r}")
    if entry.kernel == "rows":
        return
    if entry.kernel != "block":
        raise TuningFormatError(
            f"{where}: expected kernel 'block' or 'rows'. Received: kernel={entry.kernel!r}")
    if entry.channel_block not in CHANNEL_BLOCKS:
        raise TuningFormatError(
            f"{where}: expected channel_block in {CHANNEL_BLOCKS}. "
            f"Received: channel_block={entry.channel_block}")
    if not 1 <= entry.tile_pixels <= MAX_TILE_PIXELS:
        raise TuningFormatError(
            f"{where}: expected tile_pixels in [1, {MAX_TILE_PIXELS}]. "
            f"Received: tile_pixels={entry.tile_pixels}")
    if not 1 <= entry.tiles_per_task <= MAX_TILES_PER_TASK:
        raise TuningFormatError(
            f"{where}: expected tiles_per_task in [1, {MAX_TILES_PER_TASK}]. "
            f"Received: tiles_per_task={entry.tiles_per_task}")
    kib, rest = divmod(entry.chunk_bytes, 1024)
    if rest or not (kib == 0 or MIN_CHUNK_KIB <= kib <= MAX_CHUNK_KIB):
        raise TuningFormatError(
            f"{where}: expected chunk_bytes 0 or a multiple of 1024 up to "
            f"{MAX_CHUNK_KIB} KiB. Received: chunk_bytes={entry.chunk_bytes}")
    if entry.loop_order not in LOOP_ORDERS:
        raise TuningFormatError(
            f"{where}: expected loop_order in {LOOP_ORDERS}. "
            f"Received: loop_order={entry.loop_order!r}")


def encode(entries):
    """Serializes ``TuningEntry`` objects to record bytes (``b""`` for none).

    Raises:
        TuningFormatError: if an entry breaks a rule or targets repeat.
    """
    entries = list(entries)
    if not entries:
        return b""
    if len(entries) > MAX_ENTRIES:
        raise TuningFormatError(
            f"Expected at most {MAX_ENTRIES} entries. Received: {len(entries)}")
    targets = [e.target for e in entries]
    if len(set(targets)) != len(targets):
        raise TuningFormatError(f"Expected one entry per target. Received: {targets}")
    out = [bytes([VERSION, len(entries)])]
    for e in entries:
        _check(e)
        block = e.kernel == "block"
        out.append(_ENTRY.pack(
            e.target.encode("ascii"), int(block),
            e.channel_block if block else 0, e.tile_pixels if block else 0,
            e.tiles_per_task if block else 0, e.chunk_bytes // 1024 if block else 0,
            LOOP_ORDERS.index(e.loop_order) if block else 0,
            max(0, min(255, int(e.threads)))))
    return b"".join(out)


def decode(data):
    """Parses record bytes into ``TuningEntry`` objects (``[]`` for ``b""``).

    Raises:
        TuningFormatError: with a one-line reason when a rule is broken.
    """
    data = bytes(data)
    if not data:
        return []
    if len(data) < 2:
        raise TuningFormatError("tuning record is truncated")
    version, count = data[0], data[1]
    if version != VERSION:
        raise TuningFormatError(
            f"tuning record version {version} is not supported (expected {VERSION})")
    if not 1 <= count <= MAX_ENTRIES:
        raise TuningFormatError(f"tuning record has {count} entries (expected 1 to {MAX_ENTRIES})")
    if len(data) != 2 + count * _ENTRY.size:
        raise TuningFormatError(
            f"tuning record has {len(data)} bytes, expected {2 + count * _ENTRY.size} "
            f"for {count} entries")
    entries = []
    for i in range(count):
        (raw, kernel, block, tile, tiles, kib, order,
         threads) = _ENTRY.unpack_from(data, 2 + i * _ENTRY.size)
        name, nul, padding = raw.partition(b"\0")
        if not nul or padding.strip(b"\0") or not name:
            raise TuningFormatError(f"tuning record entry {i}: malformed target name")
        if not all(0x21 <= c <= 0x7E for c in name):
            raise TuningFormatError(f"tuning record entry {i}: target name is not ASCII")
        if kernel == 0:
            if block or tile or tiles or kib or order:
                raise TuningFormatError(
                    f"tuning record entry {i}: a rows-kernel entry has block-kernel fields")
            entry = TuningEntry(name.decode(), "rows", 0, 0, 0, 0, "blocks", threads)
        elif kernel == 1:
            if order >= len(LOOP_ORDERS):
                raise TuningFormatError(f"tuning record entry {i}: loop order {order} is unknown")
            entry = TuningEntry(name.decode(), "block", block, tile, tiles, kib * 1024,
                                LOOP_ORDERS[order], threads)
            try:
                _check(entry)
            except TuningFormatError as error:
                raise TuningFormatError(f"tuning record entry {i}: {error}") from None
        else:
            raise TuningFormatError(f"tuning record entry {i}: kernel {kernel} is unknown")
        if any(e.target == entry.target for e in entries):
            raise TuningFormatError(f"tuning record entry {i}: target {entry.target} repeats")
        entries.append(entry)
    return entries


def merge(record, entry):
    """``record`` bytes with ``entry`` replacing its target's entry (or added).

    A malformed ``record`` is replaced rather than kept: the delegate would
    ignore it anyway.
    """
    try:
        entries = decode(record)
    except TuningFormatError:
        entries = []
    entries = [e for e in entries if e.target != entry.target][:MAX_ENTRIES - 1]
    return encode(entries + [entry])


def entry_from_report(report):
    """The ``TuningEntry`` in one item of ``delegate.kernel_tunings(...)``."""
    if report["kernel"] == "rows":
        return TuningEntry(report["target"], "rows", 0, 0, 0, 0, "blocks",
                           int(report.get("threads", 0)))
    return TuningEntry(report["target"], "block", int(report["channel_block"]),
                       int(report["tile_pixels"]), int(report["tiles_per_task"]),
                       int(report["chunk_bytes"]), report["loop_order"],
                       int(report.get("threads", 0)))


def describe(record):
    """``{"entries": [dicts]}`` for a record, or ``{"entries": [], "error": msg}``."""
    try:
        return {"entries": [e.as_dict() for e in decode(record)]}
    except TuningFormatError as error:
        return {"entries": [], "error": str(error)}
