"""Images per second of edit-mode synthesis for batch sizes 1, 4 and 16 (and latency per image).

Each batch size makes the same 32 images (8 inputs of a JSRT-style dataset's training split, 4
each, the built-in model) into a fresh folder, after one warm-up unit, in this process through
``factory.run.synthesize``, so the rate includes loading the inputs, sampling layouts, the model
calls, compositing and writing the files. On a GPU (``--device cuda``) the speed-up of batching
is the point; on this CPU a batch mostly saves per-call overhead. Writes
benchmarks/results/synthesize_batch.json. Usage:
python benchmarks/synthesize_batch.py DATA [--device cpu] [--threads 2] [--batches 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--per-input", type=int, default=4)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthesize_batch.json"))
    args = ap.parse_args()

    import torch

    from xraystudio.factory.run import synthesize
    from xraystudio.factory.settings import SynthesisSettings

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = SynthesisSettings(input=Path(args.data), out=Path(tmp) / "warm", split="train",
                                 limit=1, per_input=1, batch=1, device=args.device)
        synthesize(warm)
        for batch in (int(b) for b in args.batches.split(",")):
            s = SynthesisSettings(input=Path(args.data), out=Path(tmp) / f"b{batch}", split="train",
                                  limit=args.inputs, per_input=args.per_input, batch=batch,
                                  device=args.device)
            started = time.perf_counter()
            summary = synthesize(s)
            seconds = time.perf_counter() - started
            rows.append({"batch": batch, "images": summary.made, "seconds": round(seconds, 2),
                         "images_per_second": round(summary.made / seconds, 3),
                         "seconds_per_image": round(seconds / summary.made, 3)})
            print(json.dumps(rows[-1]))
    base = rows[0]["images_per_second"]
    for r in rows:
        r["speedup_vs_batch_1"] = round(r["images_per_second"] / base, 2)
    report = {"device": args.device, "threads": args.threads, "machine": platform.processor()
              or platform.machine(), "rows": rows}
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(args.device)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
