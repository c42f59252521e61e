"""One training configuration: field names = CLI long option names (with ``_``) = YAML keys.

No TensorFlow here: the CLI builds and validates a :class:`TrainConfig` before importing it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from geoseg.errors import ConfigError, InvalidParameterError
from geoseg.runtime.tensorflow import PRECISIONS

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "poly", "exponential", "step", "cosine_restarts", "constant")
NORMALIZATIONS = ("meanstd", "percentile", "none")
MONITORS = ("val_loss", "val_miou")
CLASS_WEIGHT_MODES = ("auto", "sqrt", "median", "none")
LOSSES = ("ce", "bce", "dice", "focal", "lovasz", "jaccard")
LOSS_ALIASES = {"crossentropy": "ce", "cce": "ce", "lovasz_softmax": "lovasz", "iou": "jaccard"}
#: ``--jit-compile``: XLA compilation of the train and test steps (``auto`` = Keras' own choice).
JIT_COMPILE = ("auto", "on", "off")
#: Old spelling of ``precision: mixed`` (``--mixed-precision``, YAML ``mixed-precision: true``).
LEGACY_MIXED = "mixed_precision"


@dataclass
class TrainConfig:
    """Everything :func:`geoseg.training.fit` needs. See ``geoseg/training/README.md`` for the defaults.

    Attributes:
        dataset: tiled dataset folder (``index.csv`` + ``dataset.json``).
        out: bundle folder to write (``model.keras``, ``geoseg.json``, checkpoints, logs, curves).
        model: model zoo name (``geoseg.models``), e.g. ``unet``, ``deeplabv3plus``.
        backbone: encoder name for models that take one.
        weights: ``imagenet``, a ``.keras`` / ``.weights.h5`` file or a bundle folder, or None.
        model_args: extra keyword arguments for the model builder.
        epochs: number of epochs (passes of ``steps_per_epoch`` batches); with ``time_budget``
            the number of epochs is fitted to the budget instead.
        time_budget: wall-clock seconds for the whole run (``"90s"``, ``"10m"``, ``"1.5h"`` or a
            number of seconds): the first epochs are timed, the epoch count and the LR schedule
            are fitted so that training, the final validation and the bundle end within it.
        batch_size: patches per step (global batch over all replicas).
        lr: peak learning rate (reached after warm-up).
        loss: ``ce``, ``bce``, ``dice``, ``focal``, ``lovasz``, ``jaccard`` or a weighted sum
            such as ``ce+dice`` or ``0.5*ce+dice``.
        optimizer: ``adam``, ``adamw``, ``sgd`` (momentum, nesterov) or ``rmsprop``.
        momentum: momentum of sgd / rmsprop.
        weight_decay: decoupled weight decay of adamw (and sgd's L2 via Keras' ``weight_decay``).
        schedule: learning-rate schedule, see :mod:`geoseg.training.schedules`.
        warmup_epochs: linear warm-up length in epochs (may be fractional).
        class_weights: ``auto`` (inverse square-root frequency), ``median`` (median frequency),
            ``none`` (unweighted: calibrated probabilities, higher OA), or one weight per class
            (``"1,5"`` or a list).
        normalization: ``meanstd`` or ``percentile`` (p2/p98 min-max) from ``dataset.json``; ``none`` = raw.
        ignore_index: label value left out of loss and metrics (nodata pixels are mapped to it).
        augment: dihedral flips/rotations plus per-band brightness/contrast jitter on training batches.
        scale_crop: also random zoom-in crops (scale 1 to 1.5).
        val_from: ``None`` (use the ``val`` split) or ``train`` (spatial holdout from training patches).
        val_fraction: share of each scene's training columns held out with ``val_from=train``.
        train_list, val_list: files of patch ids (one a line, e.g. ``DATASET/train.txt``) that are
            exactly the training / validation patches (:mod:`geoseg.training.lists`).
        early_stopping_patience: epochs without improvement of the smoothed ``monitor`` before
            stopping, never before half of the planned epochs; 0 = off.
        balance: share of training draws taken from patches that hold a rare class (pixel share
            below half of ``1/K``); 0 = plain shuffling. Only ever oversamples.
        monitor: ``val_miou`` (maximized) or ``val_loss`` (minimized); picks the best checkpoint.
        precision: ``float32`` or ``mixed`` (float16 compute with float32 variables and loss
            scaling, GPU only: without a GPU the run warns and trains in float32). The old
            ``mixed_precision=True`` (``--mixed-precision``) means ``mixed``.
        jit_compile: ``auto`` (Keras decides: off on CPU and under a distribution strategy),
            ``on`` or ``off``: XLA compilation of the train/test steps (``model.compile(jit_compile=...)``).
        seed: random seed (weights, shuffling, augmentation); CPU runs are reproducible.
        steps_per_epoch: batches per epoch; default one pass over the training patches.
        cache: read patches once into an ``.npy`` memmap shard per split (reused on rerun).
        tensorboard: write TensorBoard logs under ``OUT/logs``.
        debug_samples: per epoch, write ``OUT/debug/epoch_<epoch>.png`` showing this many of the
            epoch's training samples as fed (image, label, prediction); 0 = off.
        overwrite: replace an existing bundle.
        resume: continue from ``OUT/checkpoints`` (weights, optimizer state, epoch).
        quiet: no progress bars.
        verbose: debug logging.
    """

    dataset: str = ""
    out: str = ""
    model: str = "unet"
    backbone: str | None = None
    weights: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 40
    time_budget: float | None = None
    batch_size: int = 8
    lr: float = 1e-3
    loss: str = "ce+dice"
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    class_weights: str | list[float] = "auto"
    normalization: str = "meanstd"
    ignore_index: int = 255
    augment: bool = True
    scale_crop: bool = False
    val_from: str | None = None
    val_fraction: float = 0.2
    train_list: str | None = None
    val_list: str | None = None
    early_stopping_patience: int = 10
    balance: float = 0.0
    monitor: str = "val_miou"
    precision: str = "float32"
    jit_compile: str = "auto"
    seed: int = 0
    steps_per_epoch: int | None = None
    cache: bool = True
    tensorboard: bool = True
    debug_samples: int = 0
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def keys(cls) -> list[str]:
        """Valid keys (field names)."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping whose keys are field names (``-`` or ``_``); unknown keys are rejected.

        Raises:
            ConfigError: unknown keys (the message lists the valid ones).
        """
        valid = set(cls.keys())
        norm = {str(k).replace("-", "_"): v for k, v in values.items()}
        if norm.pop(LEGACY_MIXED, False):  # the old flag: true means precision "mixed"; false leaves it as given
            if norm.get("precision") not in (None, "mixed"):
                raise ConfigError(f"{source}: mixed_precision true contradicts precision {norm['precision']!r}")
            norm["precision"] = "mixed"
        unknown = sorted(k for k in norm if k not in valid)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(cls.keys())}")
        return cls(**norm)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """Read a YAML file (keys = field names); ``overrides`` win."""
        from geoseg.cli.common import load_yaml

        values = load_yaml(path)
        values.update(overrides)
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> None:
        """Coerce loose types (YAML/CLI strings) and check ranges.

        Raises:
            InvalidParameterError: a value out of range or not among the choices.
        """
        self.model_args = parse_model_args(self.model_args)
        self.class_weights = _parse_class_weights(self.class_weights)
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InvalidParameterError(f"--{_opt(name)} must be >= 1, found {getattr(self, name)}")
            setattr(self, name, int(getattr(self, name)))
        self.time_budget = parse_duration(self.time_budget, "--time-budget")
        if not 0.0 <= float(self.balance) < 1.0:
            raise InvalidParameterError(f"--balance must be in [0, 1), found {self.balance}")
        self.balance = float(self.balance)
        if self.steps_per_epoch is not None:
            self.steps_per_epoch = int(self.steps_per_epoch)
            if self.steps_per_epoch < 1:
                raise InvalidParameterError(f"--steps-per-epoch must be >= 1, found {self.steps_per_epoch}")
        if not float(self.lr) > 0:
            raise InvalidParameterError(f"--lr must be > 0, found {self.lr}")
        self.lr = float(self.lr)
        self.warmup_epochs = float(self.warmup_epochs)
        if self.warmup_epochs < 0:
            raise InvalidParameterError(f"--warmup-epochs must be >= 0, found {self.warmup_epochs}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("normalization", self.normalization, NORMALIZATIONS)
        _choice("monitor", self.monitor, MONITORS)
        _choice("precision", self.precision, PRECISIONS)
        self.jit_compile = {True: "on", False: "off"}.get(self.jit_compile, self.jit_compile)  # type: ignore[call-overload]
        _choice("jit_compile", self.jit_compile, JIT_COMPILE)
        if self.val_from not in (None, "", "train", "val"):
            raise InvalidParameterError(f"--val-from must be 'train' (or omitted), found {self.val_from!r}")
        self.val_from = self.val_from if self.val_from == "train" else None
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise InvalidParameterError(f"--val-fraction must be in (0, 1), found {self.val_fraction}")
        if not 0 <= int(self.ignore_index) <= 255:
            raise InvalidParameterError(f"--ignore-index must be in 0..255, found {self.ignore_index}")
        self.ignore_index = int(self.ignore_index)
        if int(self.early_stopping_patience) < 0:
            raise InvalidParameterError(f"--early-stopping-patience must be >= 0, found {self.early_stopping_patience}")
        self.early_stopping_patience = int(self.early_stopping_patience)
        self.seed = int(self.seed)
        if int(self.debug_samples) < 0:
            raise InvalidParameterError(f"--debug-samples must be >= 0, found {self.debug_samples}")
        self.debug_samples = int(self.debug_samples)
        # Validate the loss expression now so that a typo fails before TensorFlow is imported.
        parse_loss_terms(self.loss)


def _opt(name: str) -> str:
    return name.replace("_", "-")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidParameterError(f"--{_opt(name)} must be one of {', '.join(choices)}, found {value!r}")


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, option: str = "--time-budget") -> float | None:
    """Seconds from ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` or a number; None/"" -> None.

    Raises:
        InvalidParameterError: not a positive number with an optional ``s``/``m``/``h`` suffix.
    """
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    unit = _UNITS.get(text[-1:], None)
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise InvalidParameterError(f"{option} must be a duration such as 600, 90s, 10m or 1.5h, "
                                    f"found {value!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidParameterError(f"{option} must be > 0, found {value!r}")
    return seconds


def parse_model_args(value: Any) -> dict[str, Any]:
    """``'{"depth": 3}'`` (JSON), ``"depth=3,filters=16"`` (values parsed as YAML scalars) or a dict.

    Raises:
        InvalidParameterError: neither JSON nor ``key=value`` pairs.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    text = str(value).strip()
    if text.startswith("{"):
        try:
            out = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidParameterError(f"--model-args is not valid JSON: {exc}") from None
        if not isinstance(out, dict):
            raise InvalidParameterError("--model-args JSON must be an object")
        return out
    import yaml

    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise InvalidParameterError(f"--model-args expects JSON or key=value pairs, found {part.strip()!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = yaml.safe_load(v.strip())
    return out


def _parse_class_weights(value: Any) -> str | list[float]:
    if value is None or value is False:
        return "none"
    if isinstance(value, (list, tuple)):
        vals = list(value)
    else:
        text = str(value).strip().lower()
        if text in CLASS_WEIGHT_MODES:
            return text
        vals = [v for v in text.split(",") if v.strip()]
    try:
        weights = [float(v) for v in vals]
    except ValueError:
        raise InvalidParameterError(
            f"--class-weights must be one of {', '.join(CLASS_WEIGHT_MODES)} or comma-separated numbers, "
            f"found {value!r}") from None
    if not weights or any(w < 0 for w in weights):
        raise InvalidParameterError(f"--class-weights must be non-negative numbers, found {value!r}")
    return weights


def default_value(name: str) -> Any:
    """The default of a field (for the CLI's help texts)."""
    f = {f.name: f for f in fields(TrainConfig)}[name]
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def parse_loss_terms(text: str) -> list[tuple[float, str]]:
    """``"0.5*ce+dice"`` -> ``[(0.5, "ce"), (1.0, "dice")]``; names as in :data:`LOSSES`.

    Raises:
        InvalidParameterError: unknown loss name or malformed weight.
    """
    terms = []
    for part in str(text).replace(" ", "").lower().split("+"):
        if not part:
            raise InvalidParameterError(f"--loss {text!r}: empty term; write e.g. 'ce+dice' or '0.5*ce+dice'")
        weight, _, name = part.rpartition("*")
        name = LOSS_ALIASES.get(name, name)
        if name not in LOSSES:
            raise InvalidParameterError(f"--loss {text!r}: unknown loss {name!r}; choose from {', '.join(LOSSES)}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise InvalidParameterError(f"--loss {text!r}: weight {weight!r} is not a number") from None
        terms.append((w, name))
    return terms
