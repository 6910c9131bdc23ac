"""Export a trained net to ONNX, deployable as it is, and check it.

``python src/tools/export.py run_dir=<run>`` (or ``ckpt_path=... model=...``; several
runs: ``run_dir='logs/train/runs/*'``, each into ``<export run>/<run name>/``):

1. rebuilds the model (``TrainingRun``) and wraps its net with the run's input
   normalisation and a regression module's inverse target scaling
   (``deployable``): the graph takes raw inputs and gives the model's answers;
2. exports it with torch's ONNX exporter, the batch dimension left free, into
   ``model.onnx`` with its weights inside (external data only past ONNX's 2 GB
   limit), written under a temporary name and renamed;
3. writes the requested ``opset`` (converting with ``onnx.version_converter`` when the
   exporter wrote another); if that fails the report says which was written and why;
4. checks the graph with ``onnx.checker`` and runs onnxruntime on every raw test
   batch against the PyTorch model on the normalised batch (max absolute difference,
   argmax agreement);
5. times both at ``bench_batch_sizes`` with the same thread count (``bench_threads``
   for ``torch.set_num_threads`` and onnxruntime's ``intra_op_num_threads``);
6. writes it all to ``export_report.json`` (atomically).
"""

from __future__ import annotations

import glob
import inspect
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import rootutils
import torch
from omegaconf import DictConfig, open_dict

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.data.regression_datamodule import RegressionDataModule  # noqa: E402
from src.tools.deployable import deployable, raw_test_inputs  # noqa: E402
from src.utils.atomic import write_json  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402
from src.utils.training_run import TrainingRun  # noqa: E402

ONNX_FILE_LIMIT = 2**31  # bytes: protobuf's limit on one .onnx file


def output_names(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[str]:
    """``output``, or a multihead net's head names: the graph's outputs say what they are."""
    with torch.no_grad():
        result = net(*inputs)
    return list(result) if isinstance(result, dict) else ["output"]


def weight_bytes(net: torch.nn.Module) -> int:
    tensors = [*net.parameters(), *net.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def free_batch(net: torch.nn.Module, count: int, batch: Any) -> tuple:
    """torch.export's dynamic shapes: dimension 0 of every input free; a ``forward(*inputs)``
    takes them as one nested tuple."""
    shapes = tuple({0: batch} for _ in range(count))
    kinds = [p.kind for p in inspect.signature(net.forward).parameters.values()]
    return (shapes,) if inspect.Parameter.VAR_POSITIONAL in kinds else shapes


def export_onnx(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, opset: int):
    """Export with the batch dimension free, weights inside the file unless they pass 2 GB
    (written beside and renamed); a failure names the net and the exporter's reason."""
    batch = torch.export.Dim("batch", min=1)
    external = weight_bytes(net) >= ONNX_FILE_LIMIT
    target = path if external else path.with_name(f".{path.stem}.{os.getpid()}.partial.onnx")
    try:
        torch.onnx.export(
            net,
            inputs,
            target,
            input_names=[f"input_{i}" for i in range(len(inputs))],
            output_names=output_names(net, inputs),
            dynamic_shapes=free_batch(net, len(inputs), batch),
            opset_version=opset,
            dynamo=True,
            external_data=external,
            verbose=False,  # no "[torch.onnx] Obtain model graph..." progress lines
        )
    except Exception as error:
        target.unlink(missing_ok=True)
        inner = getattr(net, "net", net)
        reason = "\n".join(str(error).strip().splitlines()[:6])
        raise UserInputError(
            f"{type(inner).__name__} cannot be exported to ONNX: the exporter stopped at "
            f"{type(error).__name__}: {reason}"
        ) from error
    if not external:
        os.replace(target, path)
    return external


def written_opset(model: Any) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def settle_opset(path: Path, requested: int) -> tuple[int, str | None]:
    """Make the file's opset the requested one if the exporter wrote another; returns
    (the opset written, why it is not the requested one, or None)."""
    import onnx
    from onnx import version_converter

    model = onnx.load(path)
    written = written_opset(model)
    if written == requested:
        return written, None
    try:
        converted = version_converter.convert_version(model, requested)
        onnx.checker.check_model(converted, full_check=True)
    except Exception as error:  # the converter raises RuntimeError/ValueError/its own errors
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return written, (
            f"asked for opset {requested}; torch's exporter wrote {written} and "
            f"onnx.version_converter could not convert it ({why}), so {written} was kept"
        )
    partial = path.with_name(f".{path.stem}.{os.getpid()}.opset.onnx")
    onnx.save(converted, partial)
    os.replace(partial, path)
    return requested, None


def median_seconds(run: Any, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def net_outputs(result: Any) -> list[torch.Tensor]:
    """A net's outputs in the order ONNX lists them: one tensor, or one per head."""
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (tuple, list)):
        return list(result)
    return [result]


def onnx_session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def compare(deploy: Any, pairs: list, run_onnx: Any) -> tuple[float, float | None]:
    """Max |ONNX(raw) - model(normalised)| and argmax agreement over the test batches."""
    max_diff, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for raw, normalised in pairs:
            answer = deploy.net(*normalised)
            expected = net_outputs(deploy.finish(answer) if deploy.finish else answer)
            got = run_onnx(raw)
            if len(expected) != len(got):
                raise RuntimeError(
                    f"The ONNX graph has {len(got)} outputs, the net {len(expected)}."
                )
            for want, have in zip(expected, got, strict=True):
                max_diff = max(max_diff, float((want - have).abs().max()))
                if want.ndim == 2 and want.shape[1] > 1:  # class scores: compare the argmax
                    agree += int((want.argmax(1) == have.argmax(1)).sum())
                    total += len(want)
    return max_diff, (agree / total if total else None)


def timings(deploy: Any, pairs: list, run_onnx: Any, cfg: DictConfig) -> dict[str, Any]:
    """Median times of PyTorch and onnxruntime, both on ``bench_threads`` threads."""
    threads = int(cfg.bench_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    found = {}
    try:
        with torch.no_grad():
            for size in cfg.bench_batch_sizes:
                inputs = tuple(
                    torch.cat([raw[i] for raw, _ in pairs])[:size] for i in range(len(pairs[0][0]))
                )
                torch_s = median_seconds(lambda inputs=inputs: deploy(*inputs), cfg.bench_repeats)
                onnx_s = median_seconds(lambda inputs=inputs: run_onnx(inputs), cfg.bench_repeats)
                found[str(len(inputs[0]))] = {
                    "torch_ms": 1000 * torch_s,
                    "onnxruntime_ms": 1000 * onnx_s,
                    "speedup": torch_s / onnx_s,
                }
    finally:
        torch.set_num_threads(before)
    return found


@task_wrapper
def export(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import onnx

    run = TrainingRun.of(cfg, "export")
    datamodule = run.datamodule()
    if isinstance(datamodule, RegressionDataModule):
        run.load_datamodule_state(datamodule)  # the training scaling, from the checkpoint
    model = run.model(datamodule)
    deploy, inputs_are = deployable(model, datamodule)
    pairs = raw_test_inputs(model, datamodule)

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    external = export_onnx(deploy, pairs[0][0], path, cfg.opset)
    opset, opset_note = settle_opset(path, cfg.opset)
    onnx.checker.check_model(str(path), full_check=True)
    session = onnx_session(path, int(cfg.bench_threads))
    names = [i.name for i in session.get_inputs()]

    def run_onnx(inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        feed = {name: t.numpy() for name, t in zip(names, inputs, strict=True)}
        return [torch.from_numpy(a) for a in session.run(None, feed)]

    max_diff, agreement = compare(deploy, pairs, run_onnx)
    report = {
        "checkpoint": str(run.checkpoint_path),
        "onnx_file": str(path),
        "weights": "external data beside model.onnx (over 2 GB)"
        if external
        else "inside model.onnx",
        "inputs": inputs_are,
        "outputs_in": "target units" if deploy.finish else "the net's outputs",
        "opset_requested": int(cfg.opset),
        "opset": opset,
        "opset_note": opset_note,
        "test_samples": sum(len(raw[0]) for raw, _ in pairs),
        "max_abs_diff": max_diff,
        "outputs": [o.name for o in session.get_outputs()],
        "argmax_agreement": agreement,
        "threads": int(cfg.bench_threads),
        "timings": timings(deploy, pairs, run_onnx, cfg),
    }
    write_json(out / "export_report.json", report)
    print(json.dumps(report, indent=2))
    return {"max_abs_diff": max_diff}, {"cfg": cfg, "model": model, "report": report}


def matching_runs(pattern: str) -> list[Path]:
    """The run directories a glob names (those with a saved config), sorted."""
    runs = sorted(Path(p) for p in glob.glob(pattern) if (Path(p) / ".hydra").is_dir())
    if not runs:
        raise UserInputError(
            f"run_dir={pattern} matches no run directory (a folder with .hydra/config.yaml)."
        )
    return runs


def export_all(cfg: DictConfig) -> list[dict[str, Any]]:
    """Export every run ``run_dir`` names (a glob), each into ``<output_dir>/<run name>``."""
    pattern = str(cfg.get("run_dir") or "")
    if not glob.has_magic(pattern):
        return [export(cfg)[1]["report"]]
    reports = []
    for run_dir in matching_runs(pattern):
        one = cfg.copy()
        with open_dict(one):
            one.run_dir = str(run_dir)
            one.paths.output_dir = str(Path(cfg.paths.output_dir) / run_dir.name)
        reports.append({"run_dir": str(run_dir), **export(one)[1]["report"]})
    write_json(Path(cfg.paths.output_dir) / "export_reports.json", reports)
    print(f"Exported {len(reports)} runs into {cfg.paths.output_dir}/<run name>/")
    return reports


@entry_point("export.yaml")
def main(cfg: DictConfig) -> None:
    export_all(cfg)


if __name__ == "__main__":
    main()
