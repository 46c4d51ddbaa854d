"""A fake ``nvidia-smi``: an executable script answering the queries GPM's fallback source makes.

It stands for the driver's ``nvidia-smi`` when NVML cannot be loaded: GPM's ``SmiSource`` runs it
as a real subprocess (``--query-gpu=...``, ``--query-compute-apps=...``, ``pmon``, ``-q -x``) and
parses what it prints. Each fake is one of the behaviours below, written into a test's directory::

    exe, calls = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, pmon_fails=True)
    snap = SmiSource(exe, timeout=10.0).poll(1.0)
    assert [c[0] for c in calls_of(calls)] == [...]   # tests.fakes.fake_command.calls_of

The keyword arguments are the scenario, which the behaviour reads as ``SCENARIO``:
``extra_fields`` (more ``--query-gpu`` fields it accepts), ``pmon_fails``, ``q_x`` (a file whose
content ``-q -x`` prints, e.g. a capture from tests/fixtures/nvidia-smi; without it ``-q -x``
fails), ``q_x_hangs``, ``pids`` (where ``HANGS`` writes its own pid and its child's).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.fake_command import fake_command

# Answers like a 2-GPU box on an older driver: clocks_event_reasons.active and the ECC fields
# are rejected the way nvidia-smi rejects them; clocks_throttle_reasons.active works. ``-q -x``
# prints the scenario's ``q_x`` file, or fails as nvidia-smi does when a GPU cannot be read.
TWO_GPUS_OLD_DRIVER = """
GPUS = [
    {"index": "0", "uuid": "GPU-aaaa", "name": "NVIDIA GeForce RTX 4090", "utilization.gpu": "97",
     "utilization.memory": "40", "memory.total": "24564", "memory.used": "20000",
     "memory.free": "4564", "temperature.gpu": "71", "power.draw": "301.52",
     "power.limit": "450.00", "fan.speed": "55", "clocks.current.graphics": "2520",
     "clocks.current.sm": "2520", "clocks.current.memory": "10501", "pstate": "P2",
     "utilization.encoder": "0", "utilization.decoder": "3",
     "clocks_throttle_reasons.active": "0x0000000000000004"},
    {"index": "1", "uuid": "GPU-bbbb", "name": "NVIDIA GeForce RTX 3060", "utilization.gpu": "0",
     "utilization.memory": "0", "memory.total": "12288", "memory.used": "300",
     "memory.free": "11988", "temperature.gpu": "38", "power.draw": "[N/A]",
     "power.limit": "170.00", "fan.speed": "[N/A]", "clocks.current.graphics": "210",
     "clocks.current.sm": "210", "clocks.current.memory": "405", "pstate": "P8",
     "utilization.encoder": "[Not Supported]", "utilization.decoder": "0",
     "clocks_throttle_reasons.active": "0x0000000000000001"},
]
if args[0].startswith("--query-gpu="):
    for field in args[0].split("=", 1)[1].split(","):
        if field not in GPUS[0] and field not in SCENARIO.get("extra_fields", []):
            print(f'Field "{field}" is not a valid field to query.')
            sys.exit(2)
    fields = args[0].split("=", 1)[1].split(",")
    for gpu in GPUS:
        print(", ".join(gpu.get(f, "0") for f in fields))
elif args[0].startswith("--query-compute-apps="):
    print("GPU-aaaa, 4242, /usr/bin/ollama, 8000")
    print("GPU-aaaa, 5151, python -c train(a, b), 1000")
elif args[0] == "pmon":
    if SCENARIO.get("pmon_fails"):
        print("Failed to start monitoring: not supported", file=sys.stderr)
        sys.exit(3)
    print("# gpu   pid  type  sm  mem  enc  dec  command")
    print("# Idx     #   C/G   %    %    %    %  name")
    print("    0  4242     C  90   40    -    -  ollama")
    print("    1  6000     G  10    5    -    -  game.exe")
elif args == ["-q", "-x"]:
    if SCENARIO.get("q_x_hangs"):
        time.sleep(120)
    if "q_x" not in SCENARIO:
        print("Unable to determine the device handle for GPU0000:01:00.0: Unknown Error")
        sys.exit(15)
    with open(SCENARIO["q_x"]) as fh:
        sys.stdout.write(fh.read())
"""

# Hangs, with a child of its own, until it is killed.
HANGS = """
import subprocess
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(SCENARIO["pids"], "a") as fh:
    fh.write(f"{os.getpid()} {child.pid}\\n")
time.sleep(120)
"""

# Fails the way nvidia-smi fails on a machine without a usable GPU.
NO_DEVICES = """
print("No devices were found")
sys.exit(6)
"""

# One GPU line whatever it is asked: enough for open_gpu_source to pick it.
ONE_GPU = """
print("0, GPU-x")
"""


def fake_nvidia_smi(directory: Path, behaviour: str, **scenario: object) -> tuple[str, Path]:
    """Write ``directory/nvidia-smi`` acting out ``behaviour``; its path and its call log."""
    calls = directory / "calls.log"
    body = f"SCENARIO = json.loads({json.dumps(scenario)!r})\n{behaviour}"
    return str(fake_command(directory / "nvidia-smi", calls, body)), calls
