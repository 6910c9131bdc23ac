#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run on a lent GPU machine:
#
#   make gpu-wheels              here: the packages such a machine lacks, as wheels in .whl/
#   bash benchmarks/gpu.sh       there, from the repository root (.whl/ carried along)
#
# Parts, most telling first (a run cut short still leaves the earlier parts' logs):
#   environment  the GPU, the driver and the Python packages the run imports
#   train_gpu    python src/train.py trainer=gpu, bf16-mixed, model.compile=true: a real
#                digits run through fit and test (StopOnDivergence reads on the device)
#   lora, qlora  the LoRA demo on a GPU-trained base, with and without 4-bit base weights
#                (model.lora.quantize=4bit, bitsandbytes): both test accuracies
#   ddp          trainer=ddp on every GPU, when the machine has more than one
#   epoch_speed  benchmarks/epoch_speed.py --device cuda: the template (trainer=gpu,
#                bf16-mixed, compile) against a compiled bf16 plain loop
# Each part's output goes to $OUT/<part>.log ($OUT: the device tool's folder; logs/gpu
# where it is unset), runs to $RUNS; a summary ends the output. Exits non-zero when a
# part failed. TRAINER=cpu runs the same commands here, in the project's .venv (make
# install), to check the script itself (the GPU-only parts then fail, as they should).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = wheels ]; then  # here: the wheels, their versions those of uv.lock
    uv=${UV:-uv}
    rm -rf .whl && mkdir -p .whl
    versions=$(python3 - <<'EOF'
import tomllib
lock = {p["name"]: p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"]}
wheels = ["hydra-core", "omegaconf", "hydra-colorlog", "colorlog", "rootutils",
          "python-dotenv", "bitsandbytes"]
print(" ".join(f"{name}=={lock[name]}" for name in wheels))
print(f"antlr4-python3-runtime=={lock['antlr4-python3-runtime']}")
EOF
    ) || exit 1
    { read -r -a wheels; read -r source; } <<<"$versions"
    platforms=()
    for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
        platforms+=(--platform "${p}_x86_64")
    done
    # the machine's Python is 3.12; antlr4-python3-runtime is published as a source archive
    # only (pure Python): built into a wheel here
    "$uv" tool run --from pip pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl "${wheels[@]}" \
        && "$uv" tool run --from pip pip wheel -q --no-deps -w .whl "$source" || exit 1
    ls -l .whl
    exit 0
fi

out=${OUT:-logs/gpu}
runs=${RUNS:-/tmp/gpu_runs}
trainer=${TRAINER:-gpu}
if [ "$trainer" = gpu ]; then
    py=${PYTHON:-python3}  # the GPU machine's Python, which holds its PyTorch
else
    py=${PYTHON:-.venv/bin/python}
fi
mkdir -p "$out" "$runs"
if [ "$trainer" = gpu ] && compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
failed=()

part() {  # part NAME SECONDS COMMAND...: run it with a time limit, its output to $out/NAME.log
    local name=$1 seconds=$2 start=$SECONDS status
    shift 2
    echo "== $name: ${*%%$'\n'*}"
    timeout "$seconds" "$@" >"$out/$name.log" 2>&1
    status=$?
    if [ $status -eq 0 ]; then
        echo "   ok in $((SECONDS - start)) s"
    else
        echo "   FAILED (exit $status after $((SECONDS - start)) s); the end of $out/$name.log:"
        tail -n 25 "$out/$name.log" | sed 's/^/   | /'
        failed+=("$name")
    fi
}

run_dir() { echo "hydra.run.dir=$runs/$1"; }

part environment 120 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $py - <<'EOF'
import importlib.metadata as md, torch
for name in ['torch', 'lightning', 'torchmetrics', 'torchvision', 'hydra-core', 'omegaconf',
             'peft', 'bitsandbytes']:
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, 'MISSING')
print('cuda available:', torch.cuda.is_available(), 'devices:', torch.cuda.device_count())
EOF"

part train_gpu 300 "$py" src/train.py trainer="$trainer" trainer.max_epochs=3 \
    trainer.precision=bf16-mixed model.compile=true "$(run_dir train_gpu)"

# the LoRA demo's base (digits 0-4), trained once on this machine, then adapted to 5-9
part lora_base 300 "$py" src/train.py experiment=lora_digits_base trainer="$trainer" \
    trainer.max_epochs=10 "$(run_dir lora_base)"
lora=(experiment=lora_digits trainer="$trainer" trainer.max_epochs=10
    model.lora.base_ckpt="$runs/lora_base")
part lora 300 "$py" src/train.py "${lora[@]}" "$(run_dir lora)"
part qlora 300 "$py" src/train.py "${lora[@]}" model.lora.quantize=4bit "$(run_dir qlora)"

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "${gpus:-0}" -gt 1 ]; then
    part ddp 300 "$py" src/train.py trainer=ddp trainer.devices="$gpus" trainer.max_epochs=3 \
        "$(run_dir ddp)"
else
    echo "== ddp: skipped, ${gpus:-0} GPU(s) on this machine"
fi

device=cuda
[ "$trainer" = gpu ] || device=cpu
part epoch_speed 420 "$py" benchmarks/epoch_speed.py --device "$device" --repeats 2 --skip-startup

echo "== summary"
for name in train_gpu lora_base lora qlora ddp; do
    [ -f "$out/$name.log" ] && grep -h "^Test metrics:" "$out/$name.log" | sed "s/^/   $name: /"
done
[ -f "$out/epoch_speed.log" ] && grep -E "^(device:|one epoch|ratios|  [^ ])" "$out/epoch_speed.log" | sed 's/^/   /'
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "every part passed"
