"""Access to the code ``flatc`` generates from ``schema/cocopie_lr.fbs``.

The generated package, ``cocopie_keras.converter.lr_fbs``, is made at build
time (``make install``, ``pip install .``, Bazel) and never kept in the
sources.

FlatBuffers' Python runtime has no verifier: its readers follow whatever
offsets a buffer holds. ``open_root`` and ``checked_*`` below bound every
table, vector and string a reader touches to the buffer, so that a malformed
buffer gives a one-line error instead of garbage, an exception from deep in
the runtime, or a loop over a length of four billion.
"""

import struct

try:
    # Re-exported: lr.py and kernel_tuning.py use them as schema.<Table>.
    from cocopie_keras.converter.lr_fbs import (Layer, LayerwiseRepresentation, PackedValues,
                                                TuningEntry, TuningRecord)
except ImportError as error:  # a source checkout that was never built
    raise ImportError(
        "Expected the module cocopie_keras.converter.lr_fbs, which is generated from "
        "schema/cocopie_lr.fbs by flatc at build time. Received: it is missing "
        f"({error}); run `make install` (or `pip install .`) to generate it"
    ) from None

LR_IDENTIFIER = b"CPLR"
TUNING_IDENTIFIER = b"CPTR"
PACKED_IDENTIFIER = b"CPPV"
# Size prefix, root offset, identifier.
_PREAMBLE = 12
# What reading a malformed buffer can raise inside the FlatBuffers runtime.
READ_ERRORS = (struct.error, IndexError, ValueError, OverflowError, TypeError)


class SchemaBufferError(ValueError):
    """A buffer that is not a well-formed FlatBuffer of the expected kind."""


def table_vector(builder, start_vector, tables):
    """Writes a vector of the already-written ``tables`` (in their order);
    ``start_vector`` is the generated ``Start<Field>Vector`` of the owner."""
    start_vector(builder, len(tables))
    for table in reversed(tables):  # the builder writes back to front
        builder.PrependUOffsetTRelative(table)
    return builder.EndVector()


def finish(builder, root, identifier):
    """The finished, size-prefixed buffer as ``bytes``."""
    builder.FinishSizePrefixed(root, identifier)
    return bytes(builder.Output())


def open_root(data, identifier, root_class, what):
    """The root table of size-prefixed ``data``, after checking its frame.

    Raises:
        SchemaBufferError: truncated, extended, or another kind of buffer.
    """
    if len(data) < _PREAMBLE:
        raise SchemaBufferError(f"{what} is truncated ({len(data)} bytes)")
    (size,) = struct.unpack_from("<I", data, 0)
    if size > len(data) - 4:
        raise SchemaBufferError(f"{what} is truncated: it declares {size + 4} bytes, "
                           f"{len(data)} are there")
    if size < len(data) - 4:
        raise SchemaBufferError(f"{what} has {len(data) - 4 - size} trailing bytes")
    if data[8:12] != identifier:
        raise SchemaBufferError(f"{what} does not carry the identifier "
                           f"{identifier.decode()} (found {bytes(data[8:12])!r})")
    root = root_class()
    root.Init(data, 4 + struct.unpack_from("<I", data, 4)[0])
    checked_table(root, what)
    return root


def checked_table(obj, what):
    """``obj`` (a generated table) if its table and vtable lie in the buffer."""
    tab = obj._tab
    size = len(tab.Bytes)
    if not 0 <= tab.Pos <= size - 4 or tab.Pos % 4:
        raise SchemaBufferError(f"{what}: table offset {tab.Pos} is outside the buffer")
    vtable = tab.Pos - struct.unpack_from("<i", tab.Bytes, tab.Pos)[0]
    if not 0 <= vtable <= size - 4 or vtable % 2:
        raise SchemaBufferError(f"{what}: vtable offset {vtable} is outside the buffer")
    vtable_bytes, table_bytes = struct.unpack_from("<HH", tab.Bytes, vtable)
    if vtable_bytes < 4 or vtable_bytes % 2 or vtable + vtable_bytes > size or \
            tab.Pos + table_bytes > size:
        raise SchemaBufferError(f"{what}: table or vtable runs past the buffer")
    return obj


def checked_length(obj, field_slot, elem_bytes, what):
    """Length of vector field ``field_slot`` (vtable offset; 0 if absent), bounded."""
    tab = obj._tab
    o = tab.Offset(field_slot)
    if o == 0:
        return 0
    start = tab.Vector(o)
    length = tab.VectorLen(o)
    if start < 4 or start + length * elem_bytes > len(tab.Bytes):
        raise SchemaBufferError(f"{what}: a vector of {length} items runs past the buffer")
    return length


def checked_string(obj, field_slot, what):
    """The bytes of string field ``field_slot`` (b"" if absent), bounded."""
    tab = obj._tab
    o = tab.Offset(field_slot)
    if o == 0:
        return b""
    start = tab.Vector(o)
    length = tab.VectorLen(o)
    if start < 4 or start + length + 1 > len(tab.Bytes):
        raise SchemaBufferError(f"{what}: a string of {length} bytes runs past the buffer")
    return bytes(tab.Bytes[start:start + length])
