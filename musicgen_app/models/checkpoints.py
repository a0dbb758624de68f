"""One self-describing safetensors file per model; loaded strictly, never with pickle.

Metadata (all strings, as safetensors requires):
    format          "musicgen-checkpoint"
    format_version  FORMAT_VERSION
    kind            "lstm" | "vae" | "latent_gan" | "code_bank"
    config          JSON of the model's config dataclass
    encoding        tokens.ENCODING_VERSION the model was trained with
    data_fingerprint, train_steps, metrics (JSON), created
    weights_sha256  digest of every tensor's bytes, so an edited file is caught on load
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import tokens as tk
from ..errors import CheckpointError
from .code_bank import CodeBank, CodeBankConfig
from .digest import weights_digest
from .latent_gan import LatentGAN, LatentGANConfig
from .lstm import LSTMConfig, MelodyLSTM
from .vae import MelodyVAE, VAEConfig

FORMAT = "musicgen-checkpoint"
FORMAT_VERSION = "1"
KINDS = {"lstm": (MelodyLSTM, LSTMConfig), "vae": (MelodyVAE, VAEConfig), "latent_gan": (LatentGAN, LatentGANConfig),
         "code_bank": (CodeBank, CodeBankConfig)}
REQUIRED = ("format", "format_version", "kind", "config", "encoding", "weights_sha256")


def build_model(kind: str, config: dict) -> torch.nn.Module:
    if kind not in KINDS:
        raise CheckpointError(f"Unknown model kind {kind!r}; expected one of {sorted(KINDS)}.")
    model_cls, config_cls = KINDS[kind]
    try:
        cfg = config_cls(**config)
    except TypeError as exc:
        raise CheckpointError(f"The {kind} config {config!r} does not fit this code: {exc}.") from None
    return model_cls(cfg)


def save_checkpoint(path: str | Path, model: torch.nn.Module, *, data_fingerprint: str = "",
                    train_steps: int = 0, metrics: dict | None = None, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": model.kind,
        "config": json.dumps(model.config.to_dict()), "encoding": tk.ENCODING_VERSION,
        "data_fingerprint": data_fingerprint, "train_steps": str(train_steps),
        "metrics": json.dumps(metrics or {}), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights_sha256": weights_digest(tensors),
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)  # atomic: a crash mid-save never leaves a half-written checkpoint
    return path


def resave_checkpoint(path: str | Path, model: torch.nn.Module, metrics: dict | None = None) -> Path:
    """Write ``model`` over the checkpoint at ``path``, keeping its training record (data
    fingerprint, steps, command, time) and, unless given, its metrics."""
    meta = read_metadata(path)
    kept = {k: meta[k] for k in ("train_command", "train_seconds", "vae_weights_sha256") if k in meta}
    return save_checkpoint(path, model, data_fingerprint=meta["data_fingerprint"], train_steps=int(meta["train_steps"]),
                           metrics=json.loads(meta["metrics"]) if metrics is None else metrics, extra=kept)


def read_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; train one with "
                              "`python -m musicgen_app.training.train lstm|vae` or restore it from git.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Checkpoint {path} is not a readable safetensors file ({exc}); "
                              "it may be truncated or corrupted: restore it from git.") from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing or meta.get("format") != FORMAT:
        raise CheckpointError(f"Checkpoint {path} lacks musicgen metadata {missing or ['format']}; "
                              "it was not written by musicgen_app.models.checkpoints.save_checkpoint.")
    if meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"Checkpoint {path} has format version {meta['format_version']!r}; "
                              f"this code reads version {FORMAT_VERSION!r}.")
    if meta["encoding"] != tk.ENCODING_VERSION:
        raise CheckpointError(f"Checkpoint {path} was trained with encoding {meta['encoding']!r}, but this code "
                              f"uses {tk.ENCODING_VERSION!r}; retrain it.")
    return meta


def load_checkpoint(path: str | Path, kind: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from the file alone; strict: any mismatch raises CheckpointError."""
    path = Path(path)
    meta = read_metadata(path)
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(f"Checkpoint {path} holds a {meta['kind']!r} model, not the {kind!r} expected.")
    try:
        config = json.loads(meta["config"])
    except json.JSONDecodeError:
        raise CheckpointError(f"Checkpoint {path} has an unreadable config {meta['config'][:80]!r}.") from None
    model = build_model(meta["kind"], config)
    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                tensors[name] = f.get_tensor(name)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"Checkpoint {path} could not be read ({exc}); restore it from git.") from None
    if weights_digest(tensors) != meta["weights_sha256"]:
        raise CheckpointError(f"Checkpoint {path}: the weights do not match their recorded sha256; the file "
                              "was modified after saving. Restore it from git or retrain.")
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"Checkpoint {path} does not fit its {meta['kind']} config: "
                              f"{str(exc).splitlines()[0]}") from None
    model.eval()
    meta = dict(meta, config=config, metrics=json.loads(meta.get("metrics") or "{}"))
    return model, meta
