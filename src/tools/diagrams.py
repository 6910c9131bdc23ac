"""Architecture diagrams of model configs, untrained, on one real data sample (NSMT's
``td``, ``tds``, ``tda``, ``tdss``; configs/diagrams.yaml).

The text diagram is ``make summary``'s per-layer table; the graphical one is
torchview's layer graph rendered by Graphviz; the comparison puts several model
configs side by side on the very same sample: parameters, shapes and FLOPs.
torchview and Graphviz are imported only for the graphs.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rootutils
import torch
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.tools.summary import example_data, example_model, summarize  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def hydra_node() -> Any:
    """Hydra's own config of this run (choices, overrides), or None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def model_name(cfg: DictConfig) -> str:
    """The model config's name (``vimh_cnn_64k``), as chosen on the command line."""
    node = hydra_node()
    choice = node.runtime.choices.get("model") if node is not None else None
    return str(choice or cfg.model._target_.rsplit(".", 1)[-1])


def example_inputs(model: Any) -> tuple[torch.Tensor, ...]:
    inputs = model.example_input_array
    return inputs if isinstance(inputs, tuple) else (inputs,)


def shapes(value: Any) -> str:
    """``[2, 1, 32, 32]``, or ``name [2, 88]`` per entry of a dict of outputs."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {list(v.shape)}" for k, v in value.items())
    if isinstance(value, tuple | list):
        return ", ".join(shapes(v) for v in value)
    return str(list(value.shape))


@contextmanager
def countable_attention() -> Iterator[None]:
    """Attention as plain matrix products, which torch's FLOP counter sees: neither
    nn.MultiheadAttention's fused fast path (eval mode, no grad) nor the CPU's fused
    attention kernel is counted, so a ViT would count only its linear layers."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def check_dot() -> None:
    if shutil.which("dot") is None:
        raise UserInputError(
            "Graphical diagrams need Graphviz's `dot` program, which is not on PATH. "
            "Install it with `make graphviz` (Debian/Ubuntu: apt-get install graphviz; "
            "macOS: brew install graphviz), or draw the text diagram: diagram=text."
        )


def draw_graph(model: Any, name: str, out_dir: Path, depth: int, formats: list[str]) -> list[Path]:
    """torchview's graph of the net on the example inputs, written as ``<name>.<format>``."""
    check_dot()
    import torchview

    graph = torchview.draw_graph(
        model.net,
        input_data=list(example_inputs(model)),
        graph_name=name,
        depth=depth,
        expand_nested=True,
        save_graph=False,
        device="cpu",
    )
    graph.visual_graph.attr(label=f"{name} ({type(model.net).__name__})", labelloc="t")
    written = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        path.write_bytes(graph.visual_graph.pipe(format=fmt))
        written.append(path)
    return written


def write_text(cfg: DictConfig, model: Any, name: str, out_dir: Path) -> Path:
    with countable_attention():
        table = summarize(cfg, model)
    with torch.no_grad():
        outputs = model(*example_inputs(model))
    text = (
        f"{name}: {type(model.net).__name__}\n"
        f"input  {shapes(example_inputs(model))}\noutput {shapes(outputs)}\n\n{table}\n"
    )
    path = out_dir / f"{name}.txt"
    path.write_text(text)
    return path


def measure(model: Any) -> dict[str, Any]:
    """Parameters, shapes, layers and FLOPs per sample of the model on its example inputs."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = example_inputs(model)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), countable_attention(), counter:
        outputs = model(*inputs)
    leaves = [m for m in model.net.modules() if not any(m.children())]
    return {
        "net": type(model.net).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": len(leaves),
        "input": shapes(inputs),
        "output": shapes(outputs),
        "mflops_per_sample": counter.get_total_flops() / len(inputs[0]) / 1e6,
    }


def architecture_cfg(arch: str) -> DictConfig:
    """This run's config with model config ``arch`` instead (its other overrides kept)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    node = hydra_node()
    task = list(node.overrides.task) if node is not None else []
    overrides = [o for o in task if not o.lstrip("+~").startswith(("model=", "model/"))]
    overrides.append(f"model={arch}")
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="diagrams.yaml", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="diagrams.yaml", overrides=overrides)


def model_configs() -> str:
    return ", ".join(sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))


def architectures(cfg: DictConfig) -> dict[str, Any]:
    """Every model of ``cfg.architectures``, built on one data module and fed one batch."""
    unknown = [a for a in cfg.architectures if not (CONFIGS / "model" / f"{a}.yaml").is_file()]
    if unknown:
        raise UserInputError(
            f"architectures names {', '.join(unknown)}, which is not a model config "
            f"(no configs/model/<name>.yaml). Model configs: {model_configs()}."
        )
    data = example_data(cfg)
    return {
        arch: example_model(cfg, architecture_cfg(arch).model, data, name=arch)
        for arch in cfg.architectures
    }


def write_comparison(rows: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """``compare.csv``, ``compare.md`` (a table) and ``compare.png`` (parameters and FLOPs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    columns = ["architecture", *next(iter(rows.values()))]
    table = [{"architecture": arch, **row} for arch, row in rows.items()]
    with (out_dir / "compare.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(table)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table:
        cells = [
            f"{v:,}" if isinstance(v, int) else f"{v:.3f}" if isinstance(v, float) else v
            for v in row.values()
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    (out_dir / "compare.md").write_text("\n".join(lines) + "\n")
    names = list(rows)
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.5), sharey=True)
    for ax, key, label in (
        (axes[0], "parameters", "parameters"),
        (axes[1], "mflops_per_sample", "MFLOPs per sample"),
    ):
        values = [rows[n][key] for n in names]
        ax.barh(names, values, color="tab:blue" if key == "parameters" else "tab:orange")
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 3, max(values) * 4)  # room for the value labels
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{label} (log scale)")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.0f}" if key == "parameters" else f" {v:.2f}", va="center")
    axes[0].invert_yaxis()
    sample = next(iter(rows.values()))["input"]
    figure.suptitle(f"Architectures on the same example batch (inputs {sample})")
    figure.tight_layout()
    figure.savefig(out_dir / "compare.png", dpi=120)
    plt.close(figure)
    return [out_dir / f"compare.{ext}" for ext in ("csv", "md", "png")]


def draw(cfg: DictConfig) -> list[Path]:
    """Write the diagrams ``cfg.diagram`` asks for; returns the files written."""
    if cfg.diagram not in ("text", "graph", "all", "compare"):
        raise UserInputError(f"diagram={cfg.diagram} must be text, graph, all or compare.")
    formats = list(cfg.formats)
    if cfg.diagram in ("graph", "all"):
        check_dot()  # before any work
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.diagram in ("text", "graph"):
        name = model_name(cfg)
        model = example_model(cfg, name=name)
        if cfg.diagram == "text":
            path = write_text(cfg, model, name, out_dir)
            print(path.read_text())
            return [path]
        return draw_graph(model, name, out_dir, cfg.graph_depth, formats)
    models = architectures(cfg)
    if cfg.diagram == "compare":
        written = write_comparison({a: measure(m) for a, m in models.items()}, out_dir)
        print(written[1].read_text())
        return written
    written = []
    for arch, model in models.items():
        written.append(write_text(cfg, model, arch, out_dir))
        written += draw_graph(model, arch, out_dir, cfg.graph_depth, formats)
    return written


@entry_point("diagrams.yaml")
def main(cfg: DictConfig) -> None:
    for path in draw(cfg):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
