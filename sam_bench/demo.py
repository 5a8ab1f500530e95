"""`--demo`: the `demo` suite (tasks/suites/demo.yaml) on generated data with the models it lists."""
from __future__ import annotations

from pathlib import Path

from .core.preflight import ensure_writable
from .data.synthetic import generate
from .errors import SamBenchError
from .reporting.writer import write_report
from .suite_runner import SuiteSettings, run_suite, summary_lines
from .detect.clip import write_tiny_clip


def run_demo(out: str | Path = "results/demo", device: str = "auto", n_images: int = 4) -> Path:
    """Generate the data, run the demo suite (one run directory per model), write OUT/report.md."""
    out = Path(out)
    ensure_writable(out, "--out")  # an --out that is a file: one line, before any data is generated
    data_dir = out / "demo_data"
    roots = generate(data_dir, n_images=n_images)
    write_tiny_clip(data_dir / "tiny_clip")  # the text task's CLIP (demo_text: ${data_dir}/tiny_clip)
    outcomes = run_suite(SuiteSettings(suite="demo", out=out, data_dir=data_dir, data_roots=roots,
                                       run={"device": device}))
    failed = [o for o in outcomes if o.status in ("failed", "skipped")]
    if failed:
        raise SamBenchError("; ".join(summary_lines("demo", outcomes)))
    models = list(dict.fromkeys(o.model for o in outcomes))
    return write_report([out / m for m in models], out / "report.md")
