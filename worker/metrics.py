"""The worker's Prometheus metrics (served by bot/contract/health.py on PAINTBOT_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("paintbot_worker_jobs", "Jobs finished by this worker", ["op", "outcome"])
STAGE_SECONDS = Histogram("paintbot_worker_stage_seconds", "Time spent in each stage of a job", ["stage"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
MODEL_LOAD_SECONDS = Gauge("paintbot_worker_model_load_seconds", "Time taken to load the models at start-up")
QUEUE_DEPTH = Gauge("paintbot_queue_depth", "Jobs waiting in the queue")
GPU_MEMORY_BYTES = Gauge("paintbot_worker_gpu_memory_bytes", "CUDA memory allocated by this worker")


def watch(queue, device) -> None:
    """Gauges read at scrape time: the queue's depth, and GPU memory when on CUDA."""
    QUEUE_DEPTH.set_function(lambda: queue.count)
    if device.type == "cuda":
        import torch

        GPU_MEMORY_BYTES.set_function(lambda: torch.cuda.memory_allocated(device))
