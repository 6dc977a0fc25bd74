"""Model names -> model folders -> configuration, without loading weights.

In: what the user passes as ``--model`` (nothing, an embedded model's name, or a local
folder). Out: the model's folder and its ``ModelConfig`` / ``Geometry``. Reading a config
never imports torch's model code or touches weights, so ``tpdoc inspect`` stays cheap.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tpdoc.errors import ConfigError, ModelFormatError, ModelNotFoundError, UsageError
from tpdoc.model.config import CONFIG_FILE, MODEL_TYPE, Geometry, ModelConfig, read_config_json

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "embedded"
DEFAULT_MODEL = "tpdoc-tiny"


def embedded_models() -> dict[str, Path]:
    """Models shipped inside the package, by name."""
    if not EMBEDDED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(EMBEDDED_DIR.iterdir()) if (p / CONFIG_FILE).is_file()}


def resolve_model(spec: str | Path | None = None, *, weights: bool = False) -> Path:
    """The folder of the model named by ``spec`` (default: the embedded model).

    A hub id (``org/name``) that is no local folder resolves to its snapshot in the
    Hugging Face cache (``tpdoc.weights.hub``): its config alone, or with ``weights`` everything
    needed to load it, downloaded when online.
    """
    name = DEFAULT_MODEL if spec is None or str(spec) == "" else str(spec)
    embedded = embedded_models()
    if name in embedded:
        return embedded[name]
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ModelFormatError(f"{path}: not a model folder (no {CONFIG_FILE})")
        return path
    if path.exists():
        raise ModelFormatError(f"{path}: a model is a folder with {CONFIG_FILE}, not a file")
    from tpdoc.weights.hub import hub_model_folder, looks_like_hub_id

    if looks_like_hub_id(name):
        return hub_model_folder(name, weights=weights)
    raise ModelNotFoundError(
        f"{name}: no such model folder or embedded model "
        f"(embedded: {', '.join(embedded) or 'none'})"
    )


def load_config(spec: str | Path | None = None, *, max_tiles: int | None = None) -> ModelConfig:
    """The ``ModelConfig`` of a tpdoc-format or published (LLaVA-format) model.

    ``max_tiles`` overrides the model's tile cap: a published HD checkpoint's ``patch_num``
    (which then need not be one tpdoc supports), or lowers a tpdoc model's; above a tpdoc
    model's own cap it is a ``UsageError``.
    """
    folder = resolve_model(spec)
    data = read_config_json(folder)
    kind = data.get("model_type")
    if kind != MODEL_TYPE:
        from tpdoc.weights.published.config import read_published_config
        from tpdoc.weights.published.format import config_format, format_error

        if config_format(data) == "llava":  # the published TokenPacker / LLaVA-1.5 layout
            return read_published_config(folder, data, max_tiles=max_tiles).config
        if config_format(data) == "transformers-llava":
            raise format_error(folder, data)
        raise ModelFormatError(
            f"{folder}: model_type {kind!r} is not a format tpdoc reads yet (expected "
            f"{MODEL_TYPE!r})"
        )
    try:
        config = ModelConfig.from_dict(data)
    except (ModelFormatError, ConfigError) as exc:
        raise ModelFormatError(f"{folder}: {exc}") from exc
    if max_tiles is None:
        return config
    capped = replace(config, max_tiles=max_tiles)  # a cap tpdoc has no grids for: ConfigError
    if max_tiles > config.max_tiles:  # more tiles than the model was made for
        raise UsageError(
            f"--max-tiles {max_tiles}: model {config.name} takes at most {config.max_tiles} tiles "
            f"(max_tiles in its {CONFIG_FILE}); ask with --max-tiles {config.max_tiles} or fewer"
        )
    return capped


def load_geometry(spec: str | Path | None = None, *, max_tiles: int | None = None) -> Geometry:
    """Tile size, patch grid, scale and tile cap (``max_tiles`` overrides it) of a model,
    from its config alone."""
    return load_config(spec, max_tiles=max_tiles).geometry
