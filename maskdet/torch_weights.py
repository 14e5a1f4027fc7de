"""Reading PyTorch's legacy (pre-zip) `.pth` weight files with numpy alone: torch is not needed.

The format: five pickles in a row (magic number, protocol version, system info, the state dict with a
persistent id for each storage, the list of storage keys), then each storage's raw little-endian bytes
after an 8-byte element count. Only the names a state dict needs are allowed to unpickle, so a weight
file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightFileError(ValueError):
    """A file that is not a legacy PyTorch state dict this reader understands."""


class _Storage:
    def __init__(self, key: str, dtype):
        self.key, self.dtype, self.array = key, dtype, None


class _Tensor:
    """A tensor waiting for its storage's bytes, which come after the pickles."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        base = self.storage.array
        item = base.itemsize
        if not self.size:
            return base[self.offset].copy()
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :], shape=self.size, strides=[s * item for s in self.stride], writeable=False
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(tensor, requires_grad=False, backward_hooks=None, *_):
    return tensor


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return name
        raise WeightFileError(f"refused to unpickle {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _size = pid[:5]
        if kind != "storage" or storage_type not in _DTYPES:
            raise WeightFileError(f"unsupported storage {pid[:2]!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, _DTYPES[storage_type])
        return self.storages[key]


def read_state_dict(path: str | Path) -> collections.OrderedDict[str, np.ndarray]:
    """The tensors of a legacy `.pth` state dict as numpy arrays, in the file's order."""
    path = Path(path)
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
        except Exception:
            magic = None
        if magic != MAGIC_NUMBER:
            raise WeightFileError(f"{path}: not a legacy PyTorch weight file (no magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info: little-endian, type sizes
        state = _Unpickler(f, storages).load()
        keys = _Unpickler(f, storages).load()
        for key in keys:
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            storage = storages[key]
            raw = f.read(count * np.dtype(storage.dtype).itemsize)
            if len(raw) != count * np.dtype(storage.dtype).itemsize:
                raise WeightFileError(f"{path}: truncated (storage {key})")
            storage.array = np.frombuffer(raw, np.dtype(storage.dtype).newbyteorder("<"))
    if not isinstance(state, dict):
        raise WeightFileError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return collections.OrderedDict(
        (k, v.array() if isinstance(v, _Tensor) else np.asarray(v)) for k, v in state.items()
    )
