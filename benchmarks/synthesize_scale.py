"""An unattended ``xraystudio synthesize`` run at scale: memory, a kill -9 midway, the resume.

Runs the CLI as a child process on a JSRT-style dataset's training split (edit mode, the built-in
model), samples the child's resident memory every 0.2 s, kills it with SIGKILL once ``--kill-at``
images are done, reruns the same command, and checks the finished folder: as many images,
labels and metadata rows as work items, no id twice, no temporary file left. Reports the peak
RSS at 100 and 1000 images (VmHWM of the process so far), rate and time; writes
benchmarks/results/synthesize_scale.json. Usage:
python benchmarks/synthesize_scale.py DATA --out DIR [-n 7] [--kill-at 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def done(out: Path) -> int:
    items = out / "items"
    return sum(1 for _ in items.glob("*.json")) if items.is_dir() else 0


def watch(cmd: list[str], out: Path, marks: list[int], kill_at: int | None) -> dict:
    """Run ``cmd``; the peak RSS when the done count first reaches each mark; kill at kill_at."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[int, float] = {}
    peak = 0
    killed = False
    while proc.poll() is None:
        hwm = status_kb(proc.pid, "VmHWM")
        peak = max(peak, hwm or 0)
        n = done(out)
        for m in marks:
            if m not in seen and n >= m:
                seen[m] = round(peak / 1024, 1)
        if kill_at is not None and n >= kill_at:
            proc.send_signal(signal.SIGKILL)
            killed = True
            proc.wait()
            break
        time.sleep(0.2)
    err = proc.stderr.read() if proc.stderr else ""
    return {"returncode": proc.returncode, "killed": killed, "done_after": done(out),
            "peak_rss_mb": round(peak / 1024, 1), "peak_rss_mb_at": seen,
            "stderr_tail": err[-500:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--out", required=True)
    ap.add_argument("-n", type=int, default=7)
    ap.add_argument("--kill-at", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--result", default=str(Path(__file__).parent / "results" / "synthesize_scale.json"))
    args = ap.parse_args()
    out = Path(args.out)
    cmd = [sys.executable, "-m", "xraystudio", "synthesize", args.data, "--split", "train",
           "-n", str(args.n), "--out", str(out), "--threads", str(args.threads),
           "--batch", str(args.batch)]
    marks = [100, 1000]
    started = time.perf_counter()
    first = watch(cmd, out, marks, args.kill_at)
    second = watch(cmd, out, [m for m in marks if m > first["done_after"]], None)
    seconds = time.perf_counter() - started
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in rows]
    check = {
        "work_items": len(manifest),
        "metadata_rows": len(rows),
        "unique_ids": len(set(ids)),
        "images": sum(1 for _ in (out / "imagesTr").glob("*.png")),
        "labels": sum(1 for _ in (out / "labelsTr").glob("*.png")),
        "temporary_files_left": sum(1 for _ in out.rglob(".*.tmp*")),
    }
    from xraystudio.io.nnunet import check_nnunet_dataset

    report = {
        "command": " ".join(cmd[2:]),
        "threads": args.threads, "cpus": os.cpu_count(),
        "first_run": first, "after_resume": second, "check": check,
        "nnunet_problems": check_nnunet_dataset(out)[:10],
        "seconds_total": round(seconds, 1),
        "images_per_second": round(len(rows) / seconds, 3),
    }
    Path(args.result).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
