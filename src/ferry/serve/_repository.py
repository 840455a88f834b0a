"""Triton model repositories: ``NAME/config.pbtxt`` and ``NAME/<version>/model.onnx``, as
``ferry package --target triton`` writes them and Triton Inference Server reads them.

The configuration is protobuf text format (Triton's ``ModelConfig``). ferry reads the few fields
serving needs with the small reader below, so that serving a repository needs neither Triton nor
its client; the tests parse the same files with Triton's own protobuf.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.errors import UserError

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}\[\]:,;<>]|[^\s{}\[\]:,;<>"\']+')

#: config.pbtxt's data types for numpy dtypes (``TYPE_STRING`` has no numpy counterpart here)
CONFIG_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected character {text[pos]!r} at offset {pos}")
        tok = m.group()
        if not (tok[0].isspace() or tok.startswith("#")):
            out.append(tok)
        pos = m.end()
    return out


def _scalar(tok: str) -> Any:
    if tok[0] in "\"'":
        return tok[1:-1].encode().decode("unicode_escape")
    for kind in (int, float):
        try:
            return kind(tok)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(tok, tok)  # enum names stay strings


def _message(toks: list[str], pos: int, end: str | None) -> tuple[dict[str, list[Any]], int]:
    fields: dict[str, list[Any]] = {}
    while pos < len(toks) and toks[pos] != end:
        name = toks[pos]
        pos += 1
        if pos < len(toks) and toks[pos] == ":":
            pos += 1
        values, pos = _value(toks, pos)
        fields.setdefault(name, []).extend(values)
        if pos < len(toks) and toks[pos] in ",;":
            pos += 1
    if end is not None:
        if pos >= len(toks):
            raise ValueError(f"missing {end!r}")
        pos += 1
    return fields, pos


def _value(toks: list[str], pos: int) -> tuple[list[Any], int]:
    if pos >= len(toks):
        raise ValueError("a field without a value at the end")
    tok = toks[pos]
    if tok in "{<":
        msg, pos = _message(toks, pos + 1, "}" if tok == "{" else ">")
        return [msg], pos
    if tok == "[":
        values: list[Any] = []
        pos += 1
        while toks[pos] != "]":
            more, pos = _value(toks, pos)
            values.extend(more)
            if toks[pos] == ",":
                pos += 1
        return values, pos + 1
    return [_scalar(tok)], pos + 1


def parse_text_format(text: str) -> dict[str, list[Any]]:
    """Protobuf text format as nested dicts: every field name maps to the list of its values.

    Raises:
        ValueError: for text that is not protobuf text format.
    """
    toks = _tokens(text)
    fields, pos = _message(toks, 0, None)
    if pos != len(toks):
        raise ValueError(f"unexpected {toks[pos]!r}")
    return fields


@dataclass(frozen=True)
class RepositoryModel:
    """One model of a repository: its name, the version served and its ONNX file."""

    name: str
    version: str
    onnx_path: Path
    max_batch_size: int
    dynamic_batching: bool
    max_queue_delay_us: int | None
    config: dict[str, list[Any]]


def _one(config: dict[str, list[Any]], key: str, default: Any = None) -> Any:
    values = config.get(key) or [default]
    return values[-1]


def read_model(folder: Path) -> RepositoryModel:
    """A model folder of a Triton repository (its newest version).

    Raises:
        UserError: a missing or unreadable config.pbtxt, a backend other than ONNX Runtime, no
            version with the model file.
    """
    path = folder / "config.pbtxt"
    try:
        config = parse_text_format(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    backend = _one(config, "backend", "") or {"onnxruntime_onnx": "onnxruntime"}.get(_one(config, "platform", ""), "")
    if backend != "onnxruntime":
        raise UserError(f'{path}: backend {backend or "(none)"!r}; ferry serves ONNX models (backend: "onnxruntime")')
    name = _one(config, "name", folder.name) or folder.name
    if name != folder.name:
        raise UserError(
            f"{path} names the model {name!r} but its folder is {folder.name!r} (Triton requires them equal)"
        )
    filename = _one(config, "default_model_filename", "model.onnx") or "model.onnx"
    versions = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / filename).is_file())
    if not versions:
        raise UserError(f"{folder} has no version folder with {filename} (e.g. {folder.name}/1/{filename})")
    batching = config.get("dynamic_batching") or []
    delay = _one(batching[-1], "max_queue_delay_microseconds") if batching else None
    return RepositoryModel(
        name=name,
        version=str(versions[-1]),
        onnx_path=folder / str(versions[-1]) / filename,
        max_batch_size=int(_one(config, "max_batch_size", 0)),
        dynamic_batching=bool(batching),
        max_queue_delay_us=int(delay) if delay is not None else None,
        config=config,
    )


def read_repository(root: str | os.PathLike[str]) -> list[RepositoryModel]:
    """Every model folder (one with a config.pbtxt) of a Triton model repository.

    Raises:
        UserError: a missing folder, or one without any model.
    """
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"model repository not found: {base}")
    folders = sorted(p for p in base.iterdir() if p.is_dir() and (p / "config.pbtxt").is_file())
    if not folders:
        raise UserError(
            f"{base} holds no model folder (NAME/config.pbtxt); make one with ferry package --target triton"
        )
    return [read_model(p) for p in folders]
