"""Composing the project's Hydra configs outside ``@hydra.main`` (demo, tests, notebooks), the
resolvers the configs use, and the data mixtures.

``data=kubric+hoi4d`` (any ``+``-joined set of the sources in :data:`SOURCES`) is composed on
demand by :class:`MixtureSource`, a Hydra config source that ``train.yaml`` puts on its search
path (``hydra.searchpath: [moseg-mixture://data]``): no file per combination exists.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

from hydra._internal.sources_registry import SourcesRegistry
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import DictConfig, ListConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent / "conf"  # installed with the package

# every data source, in the order mixture names use (`data=kubric+hoi4d`, not hoi4d+kubric)
SOURCES = ("kubric", "dynamic_replica", "hoi4d", "davis", "synthetic")


def _isatty() -> bool:
    return sys.stderr.isatty()


def _default_precision() -> str:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def weights_dir() -> Path:
    """Where the models' weight files (SAM2, TAPIR, CoTracker) are looked for, as an absolute
    path that does not depend on the folder a command runs from: ``$MOSEG_WEIGHTS``, else
    ``$MOSEG_ROOT/checkpoints``, else the source checkout's ``checkpoints/`` (next to the
    package, like the shipped classifier in ``moseg/checkpoints/``), else (an installed
    package) ``~/.cache/moseg/checkpoints``."""
    if os.environ.get("MOSEG_WEIGHTS"):
        return Path(os.environ["MOSEG_WEIGHTS"]).expanduser().resolve()
    if os.environ.get("MOSEG_ROOT"):
        return (Path(os.environ["MOSEG_ROOT"]).expanduser() / "checkpoints").resolve()
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").is_file():
        return repo / "checkpoints"
    return Path.home() / ".cache" / "moseg" / "checkpoints"


def _weights(name: str) -> str:
    return str(weights_dir() / name)


def register_resolvers() -> None:
    """``${moseg.isatty:}`` (progress bars only on a terminal), ``${moseg.precision:}``
    (bf16-mixed on a CUDA GPU that supports it, else 32-true) and ``${moseg.weights:NAME}``
    (the absolute path of a weight file, :func:`weights_dir`)."""
    for name, fn in (
        ("moseg.isatty", _isatty),
        ("moseg.precision", _default_precision),
        ("moseg.weights", _weights),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


def to_plain(x: Any) -> Any:
    """OmegaConf containers -> plain (resolved) dicts and lists; anything else unchanged."""
    if isinstance(x, DictConfig | ListConfig):
        return OmegaConf.to_container(x, resolve=True)
    return x


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``moseg/conf/<config_name>.yaml`` with ``overrides``, as the command line would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not CONF_DIR.is_dir():
        raise FileNotFoundError(
            f"{CONF_DIR}: config folder not found; reinstall moseg (`pip install .`)"
        )
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides or [])


def mixture_yaml(names: tuple[str, ...]) -> str:
    """The config of the mixture ``data=<names joined by +>`` (YAML text)."""
    name = "+".join(names)
    lines = [
        f"# The mixture {name} (moseg.config.MixtureSource).",
        "# Override a weight with data.sources.<source>.weight=...; weight 0 drops a source.",
        "defaults:",
        "  - _loader",
        *[f"  - /source@sources.{n}: {n}" for n in names],
        "  - _self_",
        f"name: {name}",
        f"feature_dim: ${{data.sources.{names[0]}.feature_dim}}",
    ]
    if "synthetic" in names and len(names) > 1:
        # synthetic scenes made with the mixture's feature width, beside the default ones
        lines += [
            "sources:",
            "  synthetic:",
            "    prepare:",
            "      root: ${paths.data_dir}/synthetic-f${data.feature_dim}",
            "      generator:",
            "        feature_dim: ${data.feature_dim}",
        ]
    return "\n".join([*lines, ""])


def mixture_names() -> list[str]:
    """Every mixture ``data=`` accepts in the canonical order of :data:`SOURCES` (every
    non-empty subset but ``synthetic`` alone, which is the hand-written ``data/synthetic.yaml``).
    Any order of the same sources is accepted too."""
    out = []
    for k in range(1, len(SOURCES) + 1):
        for combo in itertools.combinations(SOURCES, k):
            if combo != ("synthetic",):
                out.append("+".join(combo))
    return out


def parse_mixture(name: str) -> tuple[str, ...] | None:
    """The sources of a mixture name, or None when ``name`` is not one (unknown or repeated
    sources; ``synthetic`` alone is a file of its own)."""
    parts = tuple(name.split("+"))
    if not all(p in SOURCES for p in parts) or len(set(parts)) != len(parts):
        return None
    return None if parts == ("synthetic",) else parts


class MixtureSource(ConfigSource):
    """Serves ``data/<a>+<b>[+...]`` from :func:`mixture_yaml`; every other path is not here."""

    GROUP = "data"

    @staticmethod
    def scheme() -> str:
        return "moseg-mixture"

    def _name(self, config_path: str) -> str | None:
        group, _, leaf = config_path.partition("/")
        if group != self.GROUP or not leaf:
            return None
        return leaf[: -len(".yaml")] if leaf.endswith(".yaml") else leaf

    def load_config(self, config_path: str) -> ConfigResult:
        name = self._name(config_path)
        parts = parse_mixture(name) if name else None
        if parts is None:
            raise ConfigLoadError(f"{config_path}: not a data mixture of {'+'.join(SOURCES)}")
        return ConfigResult(
            config=OmegaConf.create(mixture_yaml(parts)),
            path=self.full_path(),
            provider=self.provider,
            header={"package": None},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path in ("", self.GROUP)

    def is_config(self, config_path: str) -> bool:
        name = self._name(config_path)
        return bool(name) and parse_mixture(name) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path == "" and results_filter in (None, ObjectType.GROUP):
            return [self.GROUP]
        if config_path == self.GROUP and results_filter in (None, ObjectType.CONFIG):
            return sorted(mixture_names())
        return []


SourcesRegistry.instance().register(MixtureSource)
