#!/usr/bin/env bash
# GPU smoke test for a machine with a real NVIDIA GPU.
#
# Captures what nvidia-smi and NVML report (the same queries GPM's nvidia-smi fallback runs,
# with and without headers and units), then runs `gpm status --json` through NVML and through
# the forced nvidia-smi fallback. Every step's output goes to its own file; a failing step is
# recorded in SUMMARY.txt and the script carries on. Exit status: 0 when every step passed,
# 1 otherwise.
#
# Usage: scripts/gpu-smoke.sh [OUTPUT_DIR]     (default ./gpu-smoke-out)
#        PYTHON=/path/to/python scripts/gpu-smoke.sh   (default: the repo's .venv, else python3)
#        STEP_TIMEOUT=60 scripts/gpu-smoke.sh          (seconds allowed per step)

set -u

out=${1:-./gpu-smoke-out}
repo=$(cd "$(dirname "$0")/.." && pwd)
step_timeout=${STEP_TIMEOUT:-60}
smi=${NVIDIA_SMI:-nvidia-smi}

if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
elif [ -x "$repo/.venv/bin/python" ]; then
    py=$repo/.venv/bin/python
else
    py=python3
fi

mkdir -p "$out" || { echo "cannot create $out" >&2; exit 1; }
out=$(cd "$out" && pwd)
summary=$out/SUMMARY.txt
: >"$summary"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

# step NAME FILE COMMAND [ARGS...]: run COMMAND with a timeout, stdout to FILE, stderr beside it.
step() {
    local name=$1 file=$2 rc=0
    shift 2
    if command -v timeout >/dev/null 2>&1; then
        timeout "$step_timeout" "$@" >"$out/$file" 2>"$out/$file.stderr" || rc=$?
    else
        "$@" >"$out/$file" 2>"$out/$file.stderr" || rc=$?
    fi
    [ -s "$out/$file.stderr" ] || rm -f "$out/$file.stderr"
    if [ "$rc" -eq 0 ]; then
        echo "ok     $name -> $file" | tee -a "$summary"
    else
        echo "FAILED $name (exit $rc) -> $file" | tee -a "$summary"
    fi
}

# The field lists GPM's fallback asks for, from the code itself so the capture matches it.
fields_py='from gpm.gpu.smi import APP_FIELDS, CORE_GPU_FIELDS, OPTIONAL_GPU_FIELDS
import sys
print(",".join({"core": CORE_GPU_FIELDS, "optional": OPTIONAL_GPU_FIELDS, "apps": APP_FIELDS}[sys.argv[1]]))'
core_fields=$("$py" -c "$fields_py" core 2>/dev/null) ||
    core_fields=index,uuid,name,utilization.gpu,utilization.memory,memory.total,memory.used,memory.free,temperature.gpu,power.draw,power.limit,fan.speed,clocks.current.graphics,clocks.current.sm,clocks.current.memory,pstate
optional_fields=$("$py" -c "$fields_py" optional 2>/dev/null) ||
    optional_fields=utilization.encoder,utilization.decoder,clocks_event_reasons.active,ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total
app_fields=$("$py" -c "$fields_py" apps 2>/dev/null) ||
    app_fields=gpu_uuid,pid,process_name,used_gpu_memory

step "system" system.txt uname -a
step "nvidia-smi" nvidia-smi.txt "$smi"
step "nvidia-smi -L" nvidia-smi-L.txt "$smi" -L
step "driver version" driver.csv "$smi" --query-gpu=index,name,driver_version,vbios_version --format=csv

# Which optional fields this driver accepts: a rejected one fails its step, and is left out of
# the full queries below, as the fallback itself does.
gpu_fields=$core_fields
IFS=, read -r -a probes <<<"$optional_fields,clocks_throttle_reasons.active"
for field in "${probes[@]}"; do
    step "field $field" "field-$field.csv" "$smi" --query-gpu="index,$field" --format=csv
    if ! grep -q "^FAILED field $field " "$summary"; then
        case $field in
        clocks_throttle_reasons.active) [[ ,$gpu_fields, == *,clocks_event_reasons.active,* ]] ||
            gpu_fields=$gpu_fields,$field ;;
        *) gpu_fields=$gpu_fields,$field ;;
        esac
    fi
done

step "query-gpu (csv)" query-gpu.csv "$smi" --query-gpu="$gpu_fields" --format=csv
step "query-gpu (noheader,nounits)" query-gpu-nounits.csv \
    "$smi" --query-gpu="$gpu_fields" --format=csv,noheader,nounits
step "query-compute-apps (csv)" query-compute-apps.csv \
    "$smi" --query-compute-apps="$app_fields" --format=csv
step "query-compute-apps (noheader,nounits)" query-compute-apps-nounits.csv \
    "$smi" --query-compute-apps="$app_fields" --format=csv,noheader,nounits
step "pmon -c 1" pmon.txt "$smi" pmon -c 1
step "dmon -c 1" dmon.txt "$smi" dmon -c 1
step "nvidia-smi -q -x" nvidia-smi-q.xml "$smi" -q -x

versions_py='import pynvml
pynvml.nvmlInit()
try:
    print("nvml", pynvml.nvmlSystemGetNVMLVersion())
    print("driver", pynvml.nvmlSystemGetDriverVersion())
    print("cuda_driver", pynvml.nvmlSystemGetCudaDriverVersion_v2())
    print("nvidia-ml-py", getattr(pynvml, "__version__", "unknown"))
finally:
    pynvml.nvmlShutdown()'
step "NVML versions" nvml-versions.txt "$py" -c "$versions_py"

poll_py='import pprint, sys, time
from gpm.gpu.nvml import NvmlSource
from gpm.gpu.smi import SmiSource
source = NvmlSource(None) if sys.argv[1] == "nvml" else SmiSource(sys.argv[2])
try:
    pprint.pprint(source.poll(time.time()), width=100)
finally:
    source.close()'
step "NVML poll (NvmlSource)" nvml-poll.txt "$py" -c "$poll_py" nvml
step "nvidia-smi poll (SmiSource)" smi-poll.txt "$py" -c "$poll_py" smi "$smi"

# `gpm status --json` prints the /api/realtime shape, through NVML and then through nvidia-smi.
step "gpm status --json (NVML)" gpm-status-nvml.json \
    env GPM_GPU_ENABLE_NVML=true GPM_GPU_FALLBACK_TO_NVIDIA_SMI=false \
    "$py" -m gpm status --json
step "gpm status read NVML" check-status-nvml.txt grep -q '"source": "nvml"' "$out/gpm-status-nvml.json"
step "gpm status --json (nvidia-smi fallback)" gpm-status-smi.json \
    env GPM_GPU_ENABLE_NVML=false GPM_GPU_FALLBACK_TO_NVIDIA_SMI=true GPM_GPU_NVIDIA_SMI_PATH="$smi" \
    "$py" -m gpm status --json

step "gpm status read nvidia-smi" check-status-smi.txt grep -q '"source": "nvidia-smi"' "$out/gpm-status-smi.json"

failed=$(grep -c '^FAILED' "$summary")
echo
echo "Outputs are in $out ($failed step(s) failed; see $summary)."
echo "Captures can be copied to tests/fixtures/nvidia-smi/ as parser fixtures; add a line per"
echo "file to tests/fixtures/README.md saying which GPU and driver produced it."
[ "$failed" -eq 0 ]
