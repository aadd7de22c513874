"""Dataset-level fits as JSON + numpy arrays, one explicit codec per kind of value.

The served app keeps the dataset-level interpreters' fits (the linear probe's
`ProbeState`, TX-Ray's `txray.ShiftResult`, the whole-dataset summaries of
Salience Faithfulness and Trust Checks as pandas DataFrames) in its output
store (`lit_plugins.util.store`), whose rows are flat dicts of JSON values and
numpy arrays read back with ``allow_pickle=False``. Each kind of value is turned
into such a dict and back by the codec registered for its exact type here; a
value of any other type has no codec and stays in memory only. Nothing is ever
pickled.

Round trips are exact: arrays keep their dtype and bytes (float32 stays
float32), Python floats go through JSON's shortest repr (float64 exact, NaN and
infinities included), sparse matrices keep their CSR arrays.

`register` adds a codec for another type (e.g. a new interpreter's fit).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lit_plugins import txray
from lit_plugins.lit.probe_state import ProbeState
from lit_plugins.probing import persistence

Payload = dict[str, Any]  # names -> JSON values or numpy arrays (no object dtype)

# The envelope's own entries; payload names never start with "_".
CODEC_FIELD = "_codec"
VERSION_FIELD = "_codec_version"


class FitCodecError(ValueError):
    """A stored fit that cannot be decoded (damaged, or from another codec version)."""


@dataclasses.dataclass(frozen=True)
class FitCodec:
    """How one type of fit becomes a payload and back. `version` changes when the
    payload's layout does: rows of another version are not decoded."""

    name: str
    version: int
    value_type: type
    encode: Callable[[Any], Payload]
    decode: Callable[[Mapping[str, Any]], Any]


_BY_TYPE: dict[type, FitCodec] = {}
_BY_NAME: dict[str, FitCodec] = {}


def register(codec: FitCodec) -> None:
    """Makes values of exactly `codec.value_type` storable (replacing a codec of
    the same name)."""
    _BY_TYPE[codec.value_type] = codec
    _BY_NAME[codec.name] = codec


def codec_for(value: Any) -> FitCodec | None:
    """The codec of `value`'s exact type, or None (the value stays in memory)."""
    return _BY_TYPE.get(type(value))


def encode_fit(value: Any) -> Payload | None:
    """The stored form of `value` (payload + envelope), or None when its type has
    no codec or the codec cannot represent this value (e.g. an object column)."""
    codec = codec_for(value)
    if codec is None:
        return None
    try:
        payload = codec.encode(value)
    except _Unencodable:
        return None
    bad = [k for k in payload if k.startswith("_")]
    if bad:
        raise ValueError(f"Codec {codec.name!r}: payload names must not start with '_': {bad}.")
    return {CODEC_FIELD: codec.name, VERSION_FIELD: codec.version, **payload}


def decode_fit(row: Mapping[str, Any]) -> Any:
    """The value `encode_fit` stored; FitCodecError if the row cannot be read."""
    codec = _BY_NAME.get(str(row.get(CODEC_FIELD)))
    if codec is None:
        raise FitCodecError(f"no codec named {row.get(CODEC_FIELD)!r}")
    if row.get(VERSION_FIELD) != codec.version:
        raise FitCodecError(
            f"codec {codec.name!r} version {row.get(VERSION_FIELD)!r}, this one reads "
            f"{codec.version}"
        )
    payload = {k: v for k, v in row.items() if not k.startswith("_")}
    try:
        return codec.decode(payload)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise FitCodecError(f"codec {codec.name!r}: {type(e).__name__}: {e}") from e


class _Unencodable(Exception):
    """This value of a known type has a part the codec cannot store."""


# ------------------------------------------------------------- DataFrames
def _frame_encode(frame: pd.DataFrame) -> Payload:
    """Columns in order: numeric, bool and datetime columns as arrays, string
    columns (pandas' `str` / `string` dtypes) and object columns as JSON lists
    (object values must be JSON: strings, numbers, None). Only a default index
    (0..n-1) is kept; another index, or a categorical column, is not encodable."""
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise _Unencodable
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names) or list(frame.columns) != names:
        raise _Unencodable  # non-string or repeated column names
    payload: Payload = {"columns": names, "rows": len(frame)}
    for i, name in enumerate(names):
        column = frame[name]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufcmM":
            payload[f"array/{i}"] = column.to_numpy()
            continue
        if isinstance(column.dtype, pd.StringDtype):
            values = [None if pd.isna(v) else str(v) for v in column.tolist()]
            payload[f"dtype/{i}"] = str(column.dtype)  # 'str' or 'string': which missing value
        elif column.dtype == object:
            values = [v.item() if isinstance(v, np.generic) else v for v in column.tolist()]
        else:  # categorical, nullable integers, ...
            raise _Unencodable
        try:
            json.dumps(values, allow_nan=True)
        except (TypeError, ValueError):
            raise _Unencodable from None
        payload[f"list/{i}"] = values
    return payload


def _frame_decode(payload: Mapping[str, Any]) -> pd.DataFrame:
    names = list(payload["columns"])
    columns = {}
    for i, name in enumerate(names):
        if f"array/{i}" in payload:
            columns[name] = pd.Series(np.asarray(payload[f"array/{i}"]))
        elif f"dtype/{i}" in payload:
            dtype = pd.api.types.pandas_dtype(payload[f"dtype/{i}"])
            if not isinstance(dtype, pd.StringDtype):
                raise ValueError(f"column {name!r}: not a string dtype")
            columns[name] = pd.Series(list(payload[f"list/{i}"]), dtype=dtype)
        else:
            columns[name] = pd.Series(list(payload[f"list/{i}"]), dtype=object)
    frame = pd.DataFrame(columns, columns=names)
    if len(frame) != int(payload["rows"]):
        raise ValueError(f"{len(frame)} rows, the header says {payload['rows']}")
    return frame


# ------------------------------------------------------------ probe state
def _pairs(mapping: Mapping | None) -> list | None:
    """{layer: score} as [[layer, score], ...]: JSON keeps int layers ints."""
    return None if mapping is None else [[k, float(v)] for k, v in mapping.items()]


def _mapping(pairs: list | None) -> dict | None:
    return None if pairs is None else {k: float(v) for k, v in pairs}


def _probe_encode(state: ProbeState) -> Payload:
    """The sweep as `probing.persistence` saves it (every array predict reads),
    the rest as JSON; `state.model` (the live model) is not stored."""
    payload: Payload = {
        "label_field": state.label_field,
        "level": state.level,
        "task_type": state.task_type,
        "pooling": state.pooling,
        "layers": list(state.layers),
        "scores": _pairs(state.scores),
        "best_layer": state.best_layer,
        "control_scores": _pairs(state.control_scores),
        "selectivity": _pairs(state.selectivity),
        "metric": state.metric,
        "num_train": int(state.num_train),
        "num_held_out": int(state.num_held_out),
        "num_items": int(state.num_items),
        "text_field": state.text_field,
        "seconds": float(state.seconds),
    }
    for name, array in persistence.sweep_arrays(state.sweep).items():
        payload[f"sweep/{name}"] = array
    return payload


def _probe_decode(payload: Mapping[str, Any]) -> ProbeState:
    arrays = {k.split("/", 1)[1]: v for k, v in payload.items() if k.startswith("sweep/")}
    return ProbeState(
        label_field=payload["label_field"],
        level=payload["level"],
        task_type=payload["task_type"],
        pooling=payload["pooling"],
        layers=list(payload["layers"]),
        sweep=persistence.sweep_from_arrays(arrays, "the stored probe"),
        scores=_mapping(payload["scores"]),
        best_layer=payload["best_layer"],
        control_scores=_mapping(payload["control_scores"]),
        selectivity=_mapping(payload["selectivity"]),
        metric=payload["metric"],
        num_train=int(payload["num_train"]),
        num_held_out=int(payload["num_held_out"]),
        num_items=int(payload["num_items"]),
        text_field=payload["text_field"],
        seconds=float(payload["seconds"]),
    )


# ------------------------------------------------------------ TX-Ray shift
_CSR_PARTS = ("data", "indices", "indptr")


def _shift_encode(result: txray.ShiftResult) -> Payload:
    """Every field of the dataclass: arrays as arrays, CSR matrices as their three
    arrays and shape, the rest (numbers, strings, feature names, None) as JSON."""
    payload: Payload = {}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise _Unencodable
            payload[f"array/{field.name}"] = value
        elif sp.issparse(value):
            csr = sp.csr_matrix(value)
            for part in _CSR_PARTS:
                payload[f"csr/{field.name}/{part}"] = getattr(csr, part)
            payload[f"csr/{field.name}/shape"] = list(csr.shape)
        else:
            if isinstance(value, np.generic):
                value = value.item()
            elif isinstance(value, (list, tuple)):
                value = [v.item() if isinstance(v, np.generic) else v for v in value]
            payload[f"json/{field.name}"] = value
    try:
        json.dumps({k: v for k, v in payload.items() if k.startswith("json/")}, allow_nan=True)
    except (TypeError, ValueError):
        raise _Unencodable from None
    return payload


def _shift_decode(payload: Mapping[str, Any]) -> txray.ShiftResult:
    values = {}
    for field in dataclasses.fields(txray.ShiftResult):
        name = field.name
        if f"array/{name}" in payload:
            values[name] = np.asarray(payload[f"array/{name}"])
        elif f"csr/{name}/shape" in payload:
            data, indices, indptr = (payload[f"csr/{name}/{part}"] for part in _CSR_PARTS)
            shape = tuple(int(n) for n in payload[f"csr/{name}/shape"])
            values[name] = sp.csr_matrix((data, indices, indptr), shape=shape)
        else:
            values[name] = payload[f"json/{name}"]
    return txray.ShiftResult(**values)


register(FitCodec("pandas.DataFrame", 1, pd.DataFrame, _frame_encode, _frame_decode))
register(FitCodec("lit_plugins.ProbeState", 1, ProbeState, _probe_encode, _probe_decode))
register(
    FitCodec("lit_plugins.txray.ShiftResult", 1, txray.ShiftResult, _shift_encode, _shift_decode)
)
