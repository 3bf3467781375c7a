"""A reader of TensorFlow checkpoints (the "tensor bundle" format) that needs no TensorFlow.

A checkpoint with prefix ``P`` is two files:

- ``P.index``: a LevelDB-style sorted table (SSTable). Keys are tensor names; the value of the empty key
  is a ``BundleHeaderProto`` (number of shards, endianness), every other value a ``BundleEntryProto``
  (dtype, shape, shard, offset, size, CRC32C of the bytes).
- ``P.data-00000-of-0000N``: the raw little-endian tensor bytes, concatenated.

Both are parsed here with a few lines of protobuf wire-format decoding; every block of the table and every
tensor read is checked against its CRC32C, so a corrupt or truncated file raises :class:`DataError`
naming the file instead of yielding wrong weights.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from brain2music.errors import DataError, DataFileNotFoundError

__all__ = ["TensorEntry", "CheckpointReader", "crc32c"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # compression type (1 byte) + masked CRC32C (4 bytes)
_MASK_DELTA = 0xA282EAD8

#: TensorFlow DataType enum -> numpy dtype (the numeric types a checkpoint of weights holds)
_DTYPES = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
    17: np.dtype("<u2"),
    19: np.dtype("<f2"),
    22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}


# -- CRC32C (Castagnoli), vectorised ----------------------------------------------------------------------
def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()
_CHUNK = 1024  # bytes per lane of the vectorised CRC


@lru_cache(maxsize=1)
def _shift_tables() -> np.ndarray:
    """``(4, 256)`` tables: the CRC state after ``_CHUNK`` zero bytes, by each byte of the start state.

    The raw (init 0, no final xor) CRC update is linear over GF(2), so advancing a state by ``_CHUNK``
    zero bytes is the xor of the advances of its four bytes.
    """
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    for _ in range(_CHUNK):
        basis = _TABLE[basis & 0xFF] ^ (basis >> 8)
    values = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for bit in range(8):
            tables[k] ^= np.where((values >> bit) & 1, basis[8 * k + bit], 0).astype(np.uint32)
    return tables


def _raw_crc(data: np.ndarray) -> int:
    """Raw CRC32C state (init 0, no final xor) of a uint8 array."""
    n = data.size
    if n < 4 * _CHUNK:
        s = 0
        table = _TABLE.tolist()
        for b in data.tolist():
            s = table[(s ^ b) & 0xFF] ^ (s >> 8)
        return s
    # Leading zero bytes leave a zero state unchanged: pad in front, then run all chunks side by side and
    # fold them left to right with the zero-byte shift.
    n_chunks = -(-n // _CHUNK)
    padded = np.zeros(n_chunks * _CHUNK, dtype=np.uint8)
    padded[n_chunks * _CHUNK - n :] = data
    lanes = padded.reshape(n_chunks, _CHUNK).T.copy()
    states = np.zeros(n_chunks, dtype=np.uint32)
    for column in lanes:
        states = _TABLE[(states ^ column) & 0xFF] ^ (states >> 8)
    t0, t1, t2, t3 = (t.tolist() for t in _shift_tables())
    c = 0
    for s in states.tolist():
        c = t0[c & 0xFF] ^ t1[(c >> 8) & 0xFF] ^ t2[(c >> 16) & 0xFF] ^ t3[c >> 24] ^ s
    return c


def crc32c(data: bytes | np.ndarray) -> int:
    """CRC-32C (Castagnoli) of ``data``, as ``crc32c.crc32c`` or TensorFlow's ``crc32c::Value``."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buf = np.ascontiguousarray(buf).view(np.uint8).ravel()
    if buf.size == 0:
        return 0
    # An initial state of 0xFFFFFFFF equals xoring 0xFF into the first four bytes (reflected CRC).
    head = buf[:4] ^ np.uint8(0xFF)
    if buf.size < 4:
        s = 0xFFFFFFFF
        for b in buf.tolist():
            s = int(_TABLE[(s ^ b) & 0xFF]) ^ (s >> 8)
        return s ^ 0xFFFFFFFF
    return _raw_crc(np.concatenate([head, buf[4:]])) ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# -- protobuf wire format ---------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """``[(field_number, value)]`` of a serialised protobuf message (ints for varint/fixed, bytes else)."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = bytes(buf[pos : pos + length])
            if len(value) != length:
                raise ValueError("truncated length-delimited field")
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives in the data shard (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool = False


def _entry(name: str, value: bytes) -> TensorEntry:
    dtype_code, shape, shard, offset, size, crc, sliced = 0, [], 0, 0, 0, None, False
    for number, v in _fields(value):
        if number == 1:
            dtype_code = int(v)
        elif number == 2:
            for n2, dim in _fields(v):
                if n2 == 2:
                    size_fields = [int(x) for n3, x in _fields(dim) if n3 == 1]
                    shape.append(size_fields[0] if size_fields else 0)
        elif number == 3:
            shard = int(v)
        elif number == 4:
            offset = int(v)
        elif number == 5:
            size = int(v)
        elif number == 6:
            crc = int(v)
        elif number == 7:
            sliced = True
    return TensorEntry(name, _DTYPES.get(dtype_code), tuple(shape), shard, offset, size, crc, sliced)


# -- the sorted table -------------------------------------------------------------------------------------
def _block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    end = offset + size + _BLOCK_TRAILER
    if offset < 0 or end > len(data):
        raise DataError(f"checkpoint index {path} is truncated: a block ends at byte {end} of {len(data)}")
    contents = data[offset : offset + size]
    kind, masked = struct.unpack_from("<BI", data, offset + size)
    if crc32c(data[offset : offset + size + 1]) != _unmask(masked):
        raise DataError(
            f"checkpoint index {path} is corrupt: checksum mismatch in the block at byte {offset}"
        )
    if kind != 0:
        raise DataError(
            f"checkpoint index {path} uses block compression {kind}; only uncompressed tables "
            "(what TensorFlow writes for checkpoints) are supported"
        )
    return contents


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 * (n_restarts + 1)
    if limit < 0:
        raise ValueError("bad restart array")
    out: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    return out


def _read_table(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise DataError(f"checkpoint index {path} is {len(data)} bytes, too short to be a TensorFlow index")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise DataError(f"{path} is not a TensorFlow checkpoint index (bad magic number in its footer)")
    try:
        pos = 0
        for _ in range(2):  # skip the metaindex handle
            _, pos = _varint(footer, pos)
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        entries: list[tuple[bytes, bytes]] = []
        for _, handle in _block_entries(_block(data, index_offset, index_size, path)):
            offset, p = _varint(handle, 0)
            size, _ = _varint(handle, p)
            entries.extend(_block_entries(_block(data, offset, size, path)))
    except (ValueError, struct.error, IndexError) as exc:
        raise DataError(f"checkpoint index {path} is corrupt: {exc}") from None
    return entries


class CheckpointReader:
    """Read tensors of a TensorFlow (v2 bundle) checkpoint by name.

    Parameters
    ----------
    prefix : str or path
        The checkpoint prefix ``P`` (files ``P.index`` and ``P.data-*``), or a folder holding one
        checkpoint (TF1's ``saver.save(sess, "dir/")`` writes ``dir/.index``; any single ``*.index`` in the
        folder is accepted).

    Attributes
    ----------
    entries : dict
        ``{name: TensorEntry}`` of every tensor in the checkpoint.
    """

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = _resolve_prefix(Path(prefix))  # a string: TF1's "dir/" prefix ends in a slash
        self.index_path = Path(self.prefix + ".index")
        table = _read_table(self.index_path)
        n_shards = 1
        self.entries: dict[str, TensorEntry] = {}
        try:
            for key, value in table:
                if key == b"":
                    header = dict(_fields(value))
                    n_shards = int(header.get(1, 1))
                    if int(header.get(2, 0)) != 0:
                        raise DataError(
                            f"checkpoint {self.index_path} is big-endian; only little-endian is supported"
                        )
                    continue
                name = key.decode("utf-8")
                self.entries[name] = _entry(name, value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"checkpoint index {self.index_path} is corrupt: {exc}") from None
        self.n_shards = n_shards
        self._shards: dict[int, bytes] = {}

    def shard_path(self, shard: int) -> Path:
        """The data file of shard ``shard``: ``<prefix>.data-<shard>-of-<n_shards>`` (5 digits each)."""
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.n_shards:05d}")

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        """Tensor names, sorted."""
        return sorted(self.entries)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of every tensor."""
        return {name: e.shape for name, e in sorted(self.entries.items())}

    def _shard(self, shard: int) -> bytes:
        if shard not in self._shards:
            path = self.shard_path(shard)
            if not path.is_file():
                raise DataFileNotFoundError(
                    f"checkpoint data file {path} is missing (named by {self.index_path})"
                )
            self._shards[shard] = path.read_bytes()
        return self._shards[shard]

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a numpy array of its shape and dtype (checksum verified)."""
        if name not in self.entries:
            raise DataError(f"checkpoint {self.index_path} has no tensor {name!r}")
        e = self.entries[name]
        if e.dtype is None or e.sliced:
            raise DataError(f"tensor {name!r} of {self.index_path} is not a plain numeric tensor")
        data = self._shard(e.shard)
        path = self.shard_path(e.shard)
        if e.offset + e.size > len(data):
            raise DataError(
                f"checkpoint data file {path} is truncated: tensor {name!r} needs bytes "
                f"{e.offset}-{e.offset + e.size}, the file has {len(data)}"
            )
        expected = int(np.prod(e.shape, dtype=np.int64)) * e.dtype.itemsize
        if expected != e.size:
            raise DataError(f"tensor {name!r} of {self.index_path}: {e.size} bytes for shape {e.shape}")
        raw = np.frombuffer(data, dtype=np.uint8, count=e.size, offset=e.offset)
        if e.crc32c is not None and crc32c(raw) != _unmask(e.crc32c):
            raise DataError(f"checkpoint data file {path} is corrupt: checksum mismatch in tensor {name!r}")
        return raw.view(e.dtype).reshape(e.shape).copy()


def _resolve_prefix(path: Path) -> str:
    if path.is_dir():
        found = sorted(path.glob("*.index")) + ([path / ".index"] if (path / ".index").is_file() else [])
        found = sorted(set(found))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise DataFileNotFoundError(
                f"expected one TensorFlow checkpoint (a *.index file) in {path}, found {what}"
            )
        return str(found[0])[: -len(".index")]
    index = Path(str(path) + ".index")
    if not index.is_file():
        raise DataFileNotFoundError(f"checkpoint index {index} not found")
    return str(path)
