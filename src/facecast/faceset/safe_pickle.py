"""A restricted unpickler: rebuilds plain data and numpy arrays, refuses everything else.

Why: DeepFaceLab stores face metadata as Python pickles, and `pickle.loads` on a file a stranger sent
runs whatever that file asks (`os.system` via `__reduce__` is one line). Facesets are shared online, so
facecast never unpickles freely. Plain containers and scalars (dict, list, tuple, str, bytes, int,
float, bool, None) are pickle opcodes and need no lookup at all; every *global* a pickle names goes
through `find_class`, which here returns only our own stand-ins:

- numpy arrays: `numpy.core.multiarray._reconstruct(ndarray, shape, b'b')` then BUILD with
  (version, shape, dtype, is_fortran, raw bytes) -> `_ArrayStub`, rebuilt with `np.frombuffer` after the
  load; `numpy.dtype(code, align, copy)` then BUILD with (version, byteorder, ...) -> `_DTypeStub`,
  which accepts only plain numeric/bool/string type codes (never object, void/records, or
  sub-arrays). The same names under `numpy._core` (numpy 2 pickles) and protocol 5's
  `numpy.core.numeric._frombuffer` map to the same stand-ins.
- numpy scalars (`numpy.core.multiarray.scalar(dtype, bytes)`), which DeepFaceLab's numpy maths leaves
  in rects and floats: rebuilt from their raw bytes.
- `_codecs.encode(text, 'latin1')`: how protocol 2 stores bytes; only that one codec.
- `samplelib.Sample.SampleType(n)` and `facelib.FaceType.FaceType(n)`: DeepFaceLab's IntEnums inside
  `faceset.pak` sample configs; each becomes the plain int n.

Any other global (os.system, subprocess.*, builtins.eval, any class) raises `PickleRefused` from
`find_class`, i.e. before the pickle can call anything. Our stand-ins never call into numpy with
attacker-chosen callables; they only copy bytes into arrays of a vetted dtype.

Resource limits (denial of service), all enforced before the allocation they guard, each failing with
`PickleInvalid` (one line) well under a second:
- A pre-scan (`pickletools.genops`, pure Python, reads only bytes that exist) before the C unpickler
  runs: at most MAX_OPCODES opcodes, MAX_MEMO memo entries and memo indices below MAX_MEMO (the C
  unpickler grows its memo array to the largest index it sees), no bytes/str argument over
  MAX_ARRAY_BYTES, and every declared length (BINBYTES8, FRAME, ...) present in the data: CPython
  allocates a counted bytes object at its declared size *before* reading it, so a 12 GB declaration in a
  63 MB file is refused here instead. Out-of-band buffers (protocol 5) are refused.
- Shared references: a 400-byte pickle can reference one list from ten places at each of thirty levels
  ("billion laughs"); loading keeps the sharing, but turning it into plain data expands it. The expanded
  size is computed first over unique objects (memoised, microseconds) and must stay within
  max(MIN_NODES, NODES_PER_BYTE x pickle size): real data needs at least one opcode byte per node, so only
  shared-reference bombs reach the bound; `_finish` counts again while it builds, as a second guard.
- Arrays: shape products in exact integers, checked against MAX_ARRAY_BYTES and the raw bytes present
  before numpy sees them.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import pickletools
import re
from typing import Any

import numpy as np

MAX_ARRAY_BYTES = 64 * 1024 * 1024  # no face metadata array comes near this; refuse memory bombs
MAX_OPCODES = 5_000_000  # a 10k-face DeepFaceLab sample table is ~1M opcodes
MAX_MEMO = 1_000_000
MIN_NODES = 200_000
NODES_PER_BYTE = 2
_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_INDEX_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}
_REFUSED_OPS = {"NEXT_BUFFER", "READONLY_BUFFER", "PERSID", "BINPERSID"}


class PickleRefused(Exception):
    """The pickle names a global outside the allow-list (message: what it asked for)."""


class PickleInvalid(Exception):
    """The pickle is corrupt or holds malformed numpy state."""


_DTYPE_CODE = re.compile(r"^[<>=|]?(b1|\?|[iu][1248]|f[248]|c(8|16)|[SU]\d{1,6})$")


class _Frozen(type):
    """Metaclass refusing attribute writes: a pickle's BUILD (slot state) can `setattr` on any object it
    holds, and must not be able to rewire our stand-ins for later loads."""

    def __setattr__(cls, key: str, value: Any) -> None:
        raise PickleRefused(f"setting attribute {key!r} on {cls.__name__}")


class _Call:
    """An allowed function behind an object without `__dict__` whose attributes cannot be set."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Any) -> None:
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, key: str, value: Any) -> None:
        raise PickleRefused(f"setting attribute {key!r} on an allowed function")

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


class _NDArrayToken(metaclass=_Frozen):
    """What `numpy.ndarray` resolves to: only a marker handed back to `_reconstruct`."""


class _DTypeStub(metaclass=_Frozen):
    def __init__(self, code: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(code, str) or not _DTYPE_CODE.match(code):
            raise PickleInvalid(f"numpy dtype {code!r} is not a plain numeric type")
        self.code = code
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5:
            raise PickleInvalid("malformed numpy dtype state")
        byteorder, subarray, names, fields = state[1], state[2], state[3], state[4]
        if subarray is not None or names is not None or fields is not None:
            raise PickleInvalid("numpy record or sub-array dtypes are not plain data")
        if byteorder not in ("<", ">", "=", "|"):
            raise PickleInvalid(f"bad numpy byte order {byteorder!r}")
        self.byteorder = byteorder

    def resolve(self) -> np.dtype:
        dt = np.dtype(self.code)
        if self.byteorder in ("<", ">"):
            dt = dt.newbyteorder(self.byteorder)
        if dt.kind not in "biufcSU" or dt.hasobject:
            raise PickleInvalid(f"numpy dtype {dt} is not plain data")
        return dt


def _as_dtype(d: Any) -> np.dtype:
    if not isinstance(d, _DTypeStub):
        raise PickleInvalid("numpy array without a plain dtype")
    return d.resolve()


def _array_from_bytes(raw: Any, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise PickleInvalid("numpy array data is not raw bytes (object arrays are refused)")
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(isinstance(v, int) and v >= 0 for v in shape):
        raise PickleInvalid("malformed numpy array shape")
    nbytes = math.prod(shape) * dtype.itemsize  # exact integers: no int64 wrap-around
    if nbytes > MAX_ARRAY_BYTES:
        raise PickleInvalid(f"numpy array of shape {shape} needs {nbytes} bytes (limit {MAX_ARRAY_BYTES})")
    if nbytes != len(raw):
        raise PickleInvalid("numpy array data size does not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class _ArrayStub(metaclass=_Frozen):
    """Result of `_reconstruct`; BUILD fills it; `_finish` swaps it for a real ndarray."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise PickleInvalid("malformed numpy array state")
        if len(state) == 5:
            state = state[1:]  # drop the version
        shape, dtype, fortran, raw = state
        self.array = _array_from_bytes(raw, _as_dtype(dtype), shape, bool(fortran))


def _reconstruct(cls: Any, shape: Any = (0,), typecode: Any = b"b") -> _ArrayStub:
    if cls is not _NDArrayToken:
        raise PickleRefused("numpy _reconstruct of a class other than ndarray")
    return _ArrayStub()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array_from_bytes(buf, _as_dtype(dtype), tuple(shape), order == "F")


def _scalar(dtype: Any, data: Any = None) -> Any:
    dt = _as_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise PickleInvalid("malformed numpy scalar")
    return np.frombuffer(data, dtype=dt)[0].item()


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused("_codecs.encode with anything but latin1 text")
    return text.encode("latin1")


def _int_enum(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PickleInvalid("enum value is not an int")
    return value


_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _Call(_reconstruct)
    _ALLOWED[(_mod, "scalar")] = _Call(_scalar)
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _Call(_frombuffer)
_ALLOWED[("numpy", "ndarray")] = _NDArrayToken
_ALLOWED[("numpy", "dtype")] = _DTypeStub
_ALLOWED[("_codecs", "encode")] = _Call(_latin1_encode)
_ALLOWED[("samplelib.Sample", "SampleType")] = _Call(_int_enum)
_ALLOWED[("facelib.FaceType", "FaceType")] = _Call(_int_enum)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        # Python 2 names (protocol < 3 writes `__builtin__`, `copy_reg`...) are renamed as pickle itself
        # would, only so that lookups and messages use today's names; nothing is imported.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise PickleRefused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("a persistent id")


def _prescan(data: bytes) -> None:
    """Opcode, memo and declared-length limits, checked before the C unpickler allocates anything."""
    ops = memo = 0
    try:
        for op, arg, _pos in pickletools.genops(data):
            ops += 1
            if ops > MAX_OPCODES:
                raise PickleInvalid(f"more than {MAX_OPCODES} pickle opcodes")
            name = op.name
            if name in _REFUSED_OPS:
                raise PickleRefused(f"pickle opcode {name}")
            if name in _MEMO_OPS:
                memo += 1
                if memo > MAX_MEMO:
                    raise PickleInvalid(f"more than {MAX_MEMO} memo entries")
            if name in _MEMO_INDEX_OPS and isinstance(arg, int) and not 0 <= arg < MAX_MEMO:
                raise PickleInvalid(f"memo index {arg} out of range")
            if name == "FRAME" and arg > len(data):
                raise PickleInvalid(f"frame of {arg} bytes in a {len(data)}-byte pickle")
            if isinstance(arg, (bytes, bytearray, str)) and len(arg) > MAX_ARRAY_BYTES:
                raise PickleInvalid(f"a {len(arg)}-byte string (limit {MAX_ARRAY_BYTES})")
    except (ValueError, TypeError, EOFError) as err:  # genops: a declared length that is not there, a bad opcode
        raise PickleInvalid(str(err)[:200]) from None


class _Budget:
    __slots__ = ("left",)

    def __init__(self, nodes: int) -> None:
        self.left = nodes


def _finish(obj: Any, budget: _Budget, depth: int = 0) -> Any:
    """Swap array stubs for arrays; anything that is not plain data at this point is refused."""
    if depth > 64:
        raise PickleInvalid("nesting too deep")
    budget.left -= 1
    if budget.left < 0:
        raise PickleInvalid("too many objects for the pickle's size (shared references expanding: a pickle bomb)")
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise PickleInvalid("numpy array without data")
        return obj.array
    if isinstance(obj, dict):
        return {_finish(k, budget, depth + 1): _finish(v, budget, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finish(v, budget, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_finish(v, budget, depth + 1) for v in obj)
    if isinstance(obj, (set, frozenset)):
        budget.left -= len(obj)
        if budget.left < 0:
            raise PickleInvalid("too many objects for the pickle's size")
        return obj
    if obj is None or isinstance(obj, (str, bytes, bytearray, int, float, complex, bool, np.ndarray)):
        return obj
    raise PickleInvalid(f"unexpected {type(obj).__name__} object")


def _expanded_size(obj: Any, limit: int, memo: dict[int, int], depth: int = 0) -> int:
    """How many nodes `_finish` would produce, computed over *unique* objects (memoised by id), so a
    shared-reference bomb is measured in microseconds instead of being expanded to find out."""
    if depth > 64:
        raise PickleInvalid("nesting too deep")
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, dict):
        size = 1 + sum(_expanded_size(k, limit, memo, depth + 1) + _expanded_size(v, limit, memo, depth + 1)
                       for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        size = 1 + sum(_expanded_size(v, limit, memo, depth + 1) for v in obj)
    elif isinstance(obj, (set, frozenset)):
        size = 1 + len(obj)
    else:
        size = 1
    if size > limit:
        raise PickleInvalid("too many objects for the pickle's size (shared references expanding: a pickle bomb)")
    memo[key] = size
    return size


def safe_loads(data: bytes) -> Any:
    """Unpickle plain data and numpy arrays only; raises PickleRefused / PickleInvalid otherwise."""
    data = bytes(data)
    try:
        _prescan(data)
        limit = max(MIN_NODES, NODES_PER_BYTE * len(data))
        obj = _Unpickler(io.BytesIO(data)).load()
        _expanded_size(obj, limit, {})  # refuse a bomb before expanding it
        return _finish(obj, _Budget(limit))
    except (PickleRefused, PickleInvalid):
        raise
    except RecursionError:
        raise PickleInvalid("nesting too deep") from None
    except Exception as err:  # UnpicklingError, EOFError, TypeError from a wrong call, ...
        raise PickleInvalid(f"{type(err).__name__}: {err}") from None
