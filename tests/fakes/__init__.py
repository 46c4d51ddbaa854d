"""Everything the tests stand up for GPM to talk to, one module per real thing it stands for.

Fakes (``fake_*``): what cannot exist on a test machine, or not on demand.

- fake_nvml.py (+ fake_nvml.c): the NVIDIA driver's ``libnvidia-ml.so.1``, compiled from C and
  driven by a scenario file, loaded by the real nvidia-ml-py bindings.
- fake_nvidia_smi.py: the driver's ``nvidia-smi``, for the fallback source.
- fake_ollama.py: an Ollama server speaking its exact wire format.
- fake_webhook.py: the HTTP endpoint alerts are posted to.
- fake_otlp_collector.py: an OpenTelemetry collector receiving OTLP/gRPC metrics.
- fake_systemctl.py: ``systemctl --user``, for the systemd units and install.sh.
- fake_desktop_notify.py: ``notify-send`` and ``gdbus``, for desktop alerts.
- fake_workloads.py: processes that look like a game, an LLM server or a trainer.
- fake_gpm.py: the installed ``gpm``, for scripts/start-all.sh and stop-all.sh.
- fake_command.py: the recording executable the command-line fakes are built on.

Real servers, kept here because the tests start them the same way, for GPM to talk to:

- prometheus_server.py: Debian's ``prometheus`` scraping GPM's exporter.
- llama_server.py (+ tiny_model.py, the GGUF model it serves): llama.cpp's OpenAI-compatible
  server behind GPM's proxy.

Waiting for any of them goes through ``tests.conftest.wait_for`` / ``wait_for_async``.
"""
