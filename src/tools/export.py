"""Export a trained net to ONNX with a dynamic batch dimension, and check it.

``python src/tools/export.py run_dir=<run>`` (or ``ckpt_path=... model=...``):

1. rebuilds the model (as ``eval.py`` does) and loads the checkpoint;
2. exports ``model.net`` with torch's ONNX exporter, the batch dimension left
   free, into ``<export run>/model.onnx``;
3. checks the graph with ``onnx.checker``;
4. runs onnxruntime and PyTorch on every test batch and compares them (max
   absolute difference, argmax agreement);
5. times both at batch size 1 and a large batch;
6. writes everything to ``<export run>/export_report.json``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import hydra
import rootutils
import torch
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.errors import UserInputError, exit_on_user_error  # noqa: E402
from src.utils.extras import extras  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402
from src.utils.training_run import TrainingRun  # noqa: E402


def output_names(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[str]:
    """``output``, or a multihead net's head names: the graph's outputs say what they are."""
    with torch.no_grad():
        result = net(*inputs)
    return list(result) if isinstance(result, dict) else ["output"]


def export_onnx(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, opset: int):
    """Export with the batch dimension free; a failure names the net and the exporter's reason."""
    batch = torch.export.Dim("batch", min=1)
    try:
        torch.onnx.export(
            net,
            inputs,
            path,
            input_names=[f"input_{i}" for i in range(len(inputs))],
            output_names=output_names(net, inputs),
            dynamic_shapes=tuple({0: batch} for _ in inputs),
            opset_version=opset,
            dynamo=True,
        )
    except Exception as error:
        reason = "\n".join(str(error).strip().splitlines()[:6])
        raise UserInputError(
            f"{type(net).__name__} cannot be exported to ONNX: the exporter stopped at "
            f"{type(error).__name__}: {reason}"
        ) from error


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


@task_wrapper
def export(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import onnx
    import onnxruntime

    run = TrainingRun.of(cfg, "export")
    datamodule = run.datamodule()
    model = run.model(datamodule)
    net = model.net.eval()
    datamodule.prepare_data()
    datamodule.setup("test")
    batches = [model.net_inputs(batch) for batch in datamodule.test_dataloader()]

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    export_onnx(net, batches[0], path, cfg.opset)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run_onnx(inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        feed = {name: t.numpy() for name, t in zip(names, inputs, strict=True)}
        return [torch.from_numpy(a) for a in session.run(None, feed)]

    max_diff, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for inputs in batches:
            expected, got = net_outputs(net(*inputs)), run_onnx(inputs)
            if len(expected) != len(got):
                raise RuntimeError(
                    f"The ONNX graph has {len(got)} outputs, the net {len(expected)}."
                )
            for want, have in zip(expected, got, strict=True):
                max_diff = max(max_diff, float((want - have).abs().max()))
                if want.ndim == 2 and want.shape[1] > 1:  # class scores: compare the argmax
                    agree += int((want.argmax(1) == have.argmax(1)).sum())
                    total += len(want)

    pool = torch.cat([b[0] for b in batches])
    timings = {}
    with torch.no_grad():
        for size in cfg.bench_batch_sizes:
            inputs = tuple(
                torch.cat([b[i] for b in batches])[:size] for i in range(len(batches[0]))
            )
            torch_s = median_seconds(lambda inputs=inputs: net(*inputs), cfg.bench_repeats)
            onnx_s = median_seconds(lambda inputs=inputs: run_onnx(inputs), cfg.bench_repeats)
            timings[str(len(inputs[0]))] = {
                "torch_ms": 1000 * torch_s,
                "onnxruntime_ms": 1000 * onnx_s,
                "speedup": torch_s / onnx_s,
            }
    report = {
        "checkpoint": str(run.checkpoint_path),
        "onnx_file": str(path),
        "opset": cfg.opset,
        "test_samples": len(pool),
        "max_abs_diff": max_diff,
        "outputs": [o.name for o in session.get_outputs()],
        "argmax_agreement": agree / total if total else None,
        "timings": timings,
    }
    (out / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return {"max_abs_diff": max_diff}, {"cfg": cfg, "model": model, "report": report}


@hydra.main(version_base="1.3", config_path="../../configs", config_name="export.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    extras(cfg)
    export(cfg)


if __name__ == "__main__":
    main()
