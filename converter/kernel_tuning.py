"""The delegate's per-layer kernel tuning record, stored in the LR.

The record is the schema's ``TuningRecord`` table (``schema/cocopie_lr.fbs``):
one ``TuningEntry`` per SIMD target, so a file tuned on several kinds of CPU
keeps each one's choice. In the LR each layer holds it as a table; on its own
(``LRLayer.tuning``, the delegate's tuning cache and its ``"record"`` report)
it is a size-prefixed FlatBuffer with the identifier ``CPTR``, which
``encode`` and ``decode`` write and read. The delegate
(``delegate/tuning/kernel_tuning.h``) reads it, and ``cocopie tune-kernels`` writes it.

Rules on the entries (1 to 16 of them):

* ``target``: Highway target name such as ``"AVX3"`` or ``"NEON"``, 1 to 15
  printable ASCII characters, unique in the record;
* ``kernel``: rows, block or stock; a rows or stock entry has zeros in
  every block field. Stock means the stock runtime was timed faster on the
  layer (``cocopie tune-kernels`` measures both), so the delegate leaves
  the layer to it;
* block fields: ``channel_block`` 8, 16 or 32, ``tile_pixels`` 1..32,
  ``tiles_per_task`` 1..64, ``chunk_kib`` (input-channel chunk, 0 = one
  chunk) 0 or 1..4096, ``loop_order`` blocks or pixels outer;
* ``threads``: threads it was tuned with, advisory.

The delegate ignores a record that breaks any rule (with one message) and
falls back to its cache or built-in choice: a bad record costs speed, never
correctness.

Example:

    >>> entry = TuningEntry("AVX3", "block", channel_block=32, tile_pixels=12)
    >>> decode(encode([entry]))[0].tile_pixels
    12
"""

import collections
import dataclasses

import flatbuffers

from cocopie_keras.converter import lr_schema as schema

MAX_ENTRIES = 16
TARGET_BYTES = 16
"""A target name has fewer characters than this (it was a NUL-padded field)."""
MAX_TILES_PER_TASK = 64
MAX_TILE_PIXELS = 32
CHANNEL_BLOCKS = (8, 16, 32)
LOOP_ORDERS = ("blocks", "pixels")
KERNELS = ("rows", "block", "stock")
"""Kernel kinds in schema order (the schema's ``KernelKind`` values)."""
KERNELS_WITHOUT_PARAMS = ("rows", "stock")
# Chunk limits of the block kernel, in KiB (kMinChunkBytes / kMaxChunkBytes).
MIN_CHUNK_KIB = 1
MAX_CHUNK_KIB = 4096

# One entry's fields as the schema stores them, before any rule is applied.
RawEntry = collections.namedtuple(
    "RawEntry", "target kernel channel_block tile_pixels tiles_per_task chunk_kib "
    "loop_order threads")
# Vtable slots of the fields read by hand (schema field index i: 4 + 2 * i).
_ENTRIES_SLOT = 4
_TARGET_SLOT = 4


class TuningFormatError(ValueError):
    """Raised when tuning-record bytes or an entry break the format's rules."""


@dataclasses.dataclass
class TuningEntry:
    """One SIMD target's kernel choice for a layer.

    Attributes:
        target: Highway target name (``"AVX3"``, ``"AVX2"``, ``"NEON"``...).
        kernel: ``"block"``, ``"rows"`` or ``"stock"`` (left to the stock
            runtime, which was timed faster on this layer).
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
        if self.kernel in KERNELS_WITHOUT_PARAMS:
            return f"{self.target} {self.kernel}"
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
    if entry.kernel in KERNELS_WITHOUT_PARAMS:
        return
    if entry.kernel != "block":
        raise TuningFormatError(
            f"{where}: expected kernel 'block', 'rows' or 'stock'. "
            f"Received: kernel={entry.kernel!r}")
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


def write_record(builder, raw_entries):
    """Writes a ``TuningRecord`` table of ``RawEntry`` items; its offset.

    Fields are written as given (no rule is applied): the LR keeps whatever
    record a layer carries, and the delegate judges it.
    """
    tables = []
    for raw in raw_entries:
        target = builder.CreateString(raw.target)
        # Fields in the order of the generated C++ CreateTuningEntry (widest
        # first), so that both languages write the same bytes.
        t = schema.TuningEntry
        t.Start(builder)
        t.AddTarget(builder, target)
        t.AddChunkKib(builder, raw.chunk_kib)
        t.AddThreads(builder, raw.threads)
        t.AddLoopOrder(builder, raw.loop_order)
        t.AddTilesPerTask(builder, raw.tiles_per_task)
        t.AddTilePixels(builder, raw.tile_pixels)
        t.AddChannelBlock(builder, raw.channel_block)
        t.AddKernel(builder, raw.kernel)
        tables.append(t.End(builder))
    entries = schema.table_vector(builder, schema.TuningRecord.StartEntriesVector, tables)
    schema.TuningRecord.Start(builder)
    schema.TuningRecord.AddEntries(builder, entries)
    return schema.TuningRecord.End(builder)


def read_record(record, what="tuning record"):
    """The ``RawEntry`` items of a ``TuningRecord`` table, bounds-checked.

    Raises:
        lr_schema.SchemaBufferError: when the table does not fit its buffer.
    """
    schema.checked_table(record, what)
    count = schema.checked_length(record, _ENTRIES_SLOT, 4, what)
    raws = []
    for i in range(count):  # at most a quarter of the buffer's bytes
        e = schema.checked_table(record.Entries(i), f"{what} entry {i}")
        raws.append(RawEntry(
            schema.checked_string(e, _TARGET_SLOT, f"{what} entry {i}"), e.Kernel(),
            e.ChannelBlock(), e.TilePixels(), e.TilesPerTask(), e.ChunkKib(),
            e.LoopOrder(), e.Threads()))
    return raws


def pack(raw_entries):
    """A lone record buffer (size-prefixed, identifier ``CPTR``); no rules applied."""
    builder = flatbuffers.Builder(64)
    root = write_record(builder, raw_entries)
    return schema.finish(builder, root, schema.TUNING_IDENTIFIER)


def unpack(data):
    """The ``RawEntry`` items of a lone record buffer (``[]`` for ``b""``).

    Raises:
        TuningFormatError: when the bytes are not a well-formed record buffer.
    """
    data = bytes(data)
    if not data:
        return []
    try:
        record = schema.open_root(data, schema.TUNING_IDENTIFIER, schema.TuningRecord.TuningRecord,
                                  "tuning record")
        return read_record(record)
    except schema.SchemaBufferError as error:
        raise TuningFormatError(str(error)) from None
    except schema.READ_ERRORS as error:
        raise TuningFormatError(f"tuning record is malformed ({error})") from None


def _raw(entry):
    block = entry.kernel == "block"
    return RawEntry(
        entry.target.encode("ascii"), KERNELS.index(entry.kernel),
        entry.channel_block if block else 0, entry.tile_pixels if block else 0,
        entry.tiles_per_task if block else 0, entry.chunk_bytes // 1024 if block else 0,
        LOOP_ORDERS.index(entry.loop_order) if block else 0,
        max(0, min(255, int(entry.threads))))


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
    for e in entries:
        _check(e)
    return pack([_raw(e) for e in entries])


def _entry(raw, i):
    """The ``TuningEntry`` of ``raw`` (entry ``i``), after every rule."""
    where = f"tuning record entry {i}"
    name = raw.target
    if not name or len(name) >= TARGET_BYTES:
        raise TuningFormatError(
            f"{where}: target name of {len(name)} bytes (expected 1 to {TARGET_BYTES - 1})")
    if not all(0x21 <= c <= 0x7E for c in name):
        raise TuningFormatError(f"{where}: target name is not ASCII")
    kernel = KERNELS[raw.kernel] if raw.kernel < len(KERNELS) else None
    if kernel in KERNELS_WITHOUT_PARAMS:
        if raw.channel_block or raw.tile_pixels or raw.tiles_per_task or raw.chunk_kib or \
                raw.loop_order:
            what = "a rows-kernel" if kernel == "rows" else "a stock"
            raise TuningFormatError(f"{where}: {what} entry has block-kernel fields")
        return entry_without_params(name.decode(), kernel, raw.threads)
    if kernel != "block":
        raise TuningFormatError(f"{where}: kernel {raw.kernel} is unknown")
    if raw.loop_order >= len(LOOP_ORDERS):
        raise TuningFormatError(f"{where}: loop order {raw.loop_order} is unknown")
    entry = TuningEntry(name.decode(), "block", raw.channel_block, raw.tile_pixels,
                        raw.tiles_per_task, raw.chunk_kib * 1024,
                        LOOP_ORDERS[raw.loop_order], raw.threads)
    try:
        _check(entry)
    except TuningFormatError as error:
        raise TuningFormatError(f"{where}: {error}") from None
    return entry


def decode(data):
    """Parses record bytes into ``TuningEntry`` objects (``[]`` for ``b""``).

    Raises:
        TuningFormatError: with a one-line reason when a rule is broken.
    """
    raws = unpack(data)
    if not data:
        return []
    if not 1 <= len(raws) <= MAX_ENTRIES:
        raise TuningFormatError(
            f"tuning record has {len(raws)} entries (expected 1 to {MAX_ENTRIES})")
    entries = []
    for i, raw in enumerate(raws):
        entry = _entry(raw, i)
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


def entry_without_params(target, kernel, threads=0):
    """A rows or stock entry (no block-kernel fields)."""
    return TuningEntry(target, kernel, 0, 0, 0, 0, "blocks", int(threads))


def entry_from_report(report):
    """The ``TuningEntry`` in one item of ``delegate.kernel_tunings(...)``."""
    if report["kernel"] in KERNELS_WITHOUT_PARAMS:
        return entry_without_params(report["target"], report["kernel"],
                                    report.get("threads", 0))
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
