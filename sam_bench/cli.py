"""Command line: `run`, `score`, `status`, `report`, `leaderboard`, `list`, `data check`, `detect`, `--demo`
(also installed as `sam-bench`)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from .errors import SamBenchError


def parse_task_options(extra: Sequence[str]) -> dict[str, str]:
    """`--name value`, `--name=value` and bare `--flag` (true) after the known flags -> task options."""
    options: dict[str, str] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--"):
            raise SamBenchError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value, i = extra[i + 1], i + 1
            else:
                value = "true"
        options[name.replace("-", "_")] = value
        i += 1
    return options


NOTHING_RAN = 3  # exit status of a suite whose every task was skipped (no data found): not a success


def bootstrap_resamples(text: str) -> int:
    """`--ci N|off`: N resamples, off = 0."""
    if text.lower() == "off":
        return 0
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of resamples or 'off', got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    from .launch.settings import add_launch_arguments

    parser = argparse.ArgumentParser(prog="sam-bench", description=__doc__)
    parser.add_argument("--demo", action="store_true", help="run every task on a synthetic dataset")
    parser.add_argument("--out", help="output directory for --demo (default results/demo)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps or auto")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a suite, or one task on one dataset, with one model",
                         description="Further --name value pairs are task options (see `list tasks`).")
    run.add_argument("--suite", help="a suite or task definition of tasks/ (see `list suites`)")
    run.add_argument("--data-dir", dest="data_dir", help="with --suite: dataset NAME is looked up at DIR/NAME")
    run.add_argument("--tasks", help="with --suite: only these task definitions (a,b,...)")
    run.add_argument("--task", help="the protocol to run: point, edges, proposals, instances, text, miou (`list tasks`)")
    run.add_argument("--model", help="a registered model (`list models`), e.g. sam, sam2, tiny")
    run.add_argument("--dataset", help="a registered dataset (`list datasets`)")
    run.add_argument("--checkpoint", help="the model's weights file (official layout)")
    run.add_argument("--model-args", dest="model_args", help="key=value,... handed to the model factory")
    run.add_argument("--data-root", dest="data_root", action="append",
                     help="the dataset's folder; with --suite NAME=PATH (repeatable) overrides DIR/NAME")
    run.add_argument("--split", help="the dataset's split (default: the dataset's own default)")
    run.add_argument("--out", help="results folder (default results/run; with --suite results/SUITE)")
    run.add_argument("--limit", type=int, help="only the first N images (per dataset with --suite)")
    run.add_argument("--config", help="YAML run config; flags override it")
    run.add_argument("--cache-dir", dest="cache_dir", help="on-disk embedding cache shared by runs")
    run.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto (default)")
    run.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="model precision (default fp32)")
    run.add_argument("--batch-size", dest="batch_size", type=int, help="prompts per decoder call")
    run.add_argument("--compile", action="store_true", default=None,
                     help="torch.compile the encoder and decoder once per process")
    run.add_argument("--encode-batch", dest="encode_batch", type=int,
                     help="images per encoder call (GPUs; same results as 1)")
    run.add_argument("--workers", type=int, help="image-loading worker processes (default 1; 0: none)")
    run.add_argument("--seed", type=int, help="seed of random prompts and subsampling (default 0)")
    run.add_argument("--ci", type=bootstrap_resamples, metavar="N|off",
                     help="bootstrap resamples for the 95%% intervals (default 1000; off: none)")
    run.add_argument("--label", help="column name for this run in reports")
    run.add_argument("--fresh", action="store_true", default=None,
                     help="discard an interrupted run's progress instead of resuming")
    run.add_argument("--score", choices=["end", "later"], default="end",
                     help="later: store the per-image records, score them with `sam-bench score OUT`")
    add_launch_arguments(run, shards=True)

    score = sub.add_parser("score", help="score the tasks stored by `run --score later` (on CPUs)")
    score.add_argument("out")
    add_launch_arguments(score, shards=False)
    status = sub.add_parser("status", help="each task x dataset x shard of OUT: planned ... scored (exit 0: all scored)")
    status.add_argument("out")

    rep = sub.add_parser("report", help="rebuild the report from run directories")
    rep.add_argument("dirs", nargs="+", help="run directories, or folders holding them (all are reported)")
    rep.add_argument("--format", choices=["md", "html", "latex", "csv"],
                     help="default: from the --out extension (.md .html .tex .csv), else md")
    rep.add_argument("--out", help="report path (default DIR/report.<ext> for one run, ./report.<ext> for several)")

    board = sub.add_parser("leaderboard", help="one self-contained HTML page: a sortable table per suite")
    board.add_argument("dirs", nargs="+", help="run directories, or folders holding them")
    board.add_argument("--out", default="leaderboard.html")

    lst = sub.add_parser("list", help="list registered tasks, task definitions, suites, datasets or models")
    lst.add_argument("what", choices=["tasks", "definitions", "suites", "datasets", "models"])

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser("check", help="validate a download against the expected layout")
    check.add_argument("dataset")
    check.add_argument("--data-root", dest="data_root", required=True)
    check.add_argument("--split")

    det = sub.add_parser("detect", help="write a COCO results (boxes) file from a detector, for instances --detections")
    det.add_argument("detector", help="torchvision:NAME (with --weights), transformers:DIR or detectron2:CONFIG (with --weights)")
    det.add_argument("--weights", help="local weights file (torchvision state dict, detectron2 checkpoint)")
    det.add_argument("--dataset", required=True)
    det.add_argument("--data-root", dest="data_root", required=True)
    det.add_argument("--split")
    det.add_argument("--limit", type=int)
    det.add_argument("--out", required=True, help="results json to write (a <stem>.source.json note goes beside it)")
    det.add_argument("--label", help="box-source label printed beside AP (e.g. ViTDet-H); default: the detector spec")
    det.add_argument("--device")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if extra and args.command != "run":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return dispatch(parser, args, extra)
    except SamBenchError as exc:
        print(f"sam-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sam-bench: interrupted; finished images are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


def dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> int:
    from .plugins import load_plugins

    if not (args.command == "list" and args.what == "tasks"):  # listing tasks reads their source: fast
        load_plugins()
    if args.demo:
        from .demo import run_demo

        report = run_demo(args.out or "results/demo", device=args.device or "auto")
        print(f"demo finished: report at {report}; per-task results under {report.parent}")
        return 0
    if args.command == "run" and args.suite:
        return run_suite_command(args, extra)
    if args.command == "run":
        from .config import load_run_config, parse_model_args
        from .runner import run

        from .launch.settings import launch_settings

        if args.data_dir or args.tasks or launch_settings(args):
            raise SamBenchError("--data-dir, --tasks and --launcher go with --suite")
        args.data_root = args.data_root[-1] if args.data_root else None
        overrides = {k: getattr(args, k) for k in (
            "task", "model", "dataset", "checkpoint", "data_root", "split", "out", "limit", "cache_dir",
            "device", "precision", "batch_size", "compile", "encode_batch", "workers", "seed", "ci", "label",
            "fresh")}
        overrides["options"] = parse_task_options(extra)
        overrides["model_args"] = parse_model_args(args.model_args)
        cfg = load_run_config(args.config, overrides)
        from .io import finite
        from .reporting.terminal import metric_lines

        metrics = run(cfg, score=args.score == "end")
        if args.score == "later":
            print(f"stored: {Path(cfg.out) / cfg.result_name / cfg.dataset}; score with: sam-bench score {cfg.out}")
            return 0
        print("\n".join(metric_lines(finite(metrics))))
        print(f"results: {Path(cfg.out) / cfg.result_name / cfg.dataset}; report: {Path(cfg.out) / 'report.md'}")
        return 0
    if args.command in ("score", "status"):
        from .launch.commands import score_command, status_command

        return score_command(args) if args.command == "score" else status_command(args)
    if args.command == "report":
        from .api import report

        print(f"report written to {report(args.dirs, args.out, args.format)}")
        return 0
    if args.command == "leaderboard":
        from .api import run_directories
        from .reporting.leaderboard import write_leaderboard

        print(f"leaderboard written to {write_leaderboard(run_directories(args.dirs), args.out)}")
        return 0
    if args.command == "detect":
        from .detect import run_detect

        path = run_detect(args.detector, args.dataset, args.data_root, args.out, args.weights, args.split,
                          args.limit, args.device or "auto", args.label)
        print(f"detections written to {path}; use: run --task instances --detections {path}")
        return 0
    if args.command == "list":
        return list_entries(args.what)
    if args.command == "data":
        from .data.check import check_dataset

        return check_dataset(args.dataset, args.data_root, args.split)
    parser.print_help()
    return 1


def run_suite_command(args: argparse.Namespace, extra: list[str]) -> int:
    """`run --suite NAME`: the suite's task definitions, skips and failures summed up at the end."""
    from .config import parse_model_args
    from .launch.settings import launch_settings
    from .reporting.writer import write_report
    from .suite_runner import SuiteSettings, run_suite, summary_lines

    if extra:
        raise SamBenchError(f"with --suite the task options come from tasks/*.yaml; unexpected: {' '.join(extra)}")
    for flag in ("task", "dataset", "split", "config"):
        if getattr(args, flag):
            raise SamBenchError(f"--{flag} does not go with --suite (the suite's task definitions fix it)")
    if not args.model:
        raise SamBenchError("--suite needs --model")
    roots = {}
    for item in args.data_root or []:
        name, eq, path = item.partition("=")
        if not eq or not name:
            raise SamBenchError(f"--data-root with --suite takes NAME=PATH, got {item!r}")
        roots[name] = Path(path)
    out = Path(args.out or f"results/{args.suite}")
    run_settings = {k: getattr(args, k) for k in ("checkpoint", "cache_dir", "device", "precision", "batch_size",
                                                  "seed", "ci", "label", "fresh") if getattr(args, k) is not None}
    run_settings["model_args"] = parse_model_args(args.model_args)
    settings = SuiteSettings(suite=args.suite, out=out, model=args.model,
                             data_dir=Path(args.data_dir) if args.data_dir else None, data_roots=roots,
                             tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None,
                             limit=args.limit, run=run_settings, score=args.score)
    launch = launch_settings(args)
    if launch is None:
        outcomes = run_suite(settings)
    else:
        from .launch.driver import launch_suite

        outcomes = launch_suite(settings, launch)
    print("\n".join(summary_lines(args.suite, outcomes)))
    if (out / "run.json").exists():  # nothing ran ever: no report
        print(f"report: {write_report([out], out / 'report.md')}")
    if any(o.status == "failed" for o in outcomes):
        return 1
    if all(o.status == "skipped" for o in outcomes):
        print(f"nothing ran: all {len(outcomes)} tasks of suite '{args.suite}' were skipped (see above)")
        return NOTHING_RAN
    return 0


def _option_type(annotation: str) -> str:
    """`Literal['a', 'b']` -> `a|b`; `Optional[int]` -> `int or none`."""
    import ast

    if annotation.startswith("Literal["):
        return "|".join(str(v) for v in ast.literal_eval(f"[{annotation[8:-1]}]"))
    if annotation.startswith("Optional["):
        return f"{_option_type(annotation[9:-1])} or none"
    return annotation


def list_entries(what: str) -> int:
    from .registry import MODELS

    if what in ("definitions", "suites"):
        from .taskdefs import catalog, expand

        definitions, suites = catalog()
        if what == "suites":
            for name, suite in sorted(suites.items()):
                print(f"{name:<14} {suite.title}  [{len(expand(name))} tasks]")
        for name, d in sorted(definitions.items()) if what == "definitions" else []:
            print(f"{name:<32} {d.protocol:<10} {d.dataset:<14} {d.split or '-':<10} {d.options}")
    elif what == "datasets":
        from .data.registry import dataset_names, load_dataset_config

        for name in dataset_names():
            cfg = load_dataset_config(name)
            print(f"{name:<14} {cfg.title}  [reader: {cfg.reader}]")
    elif what == "models":
        from .models.backends import backend_status

        for name in MODELS.names():
            print(f"{name:<14} {MODELS.describe(name)} {backend_status(name)}".rstrip())
    else:
        list_tasks()
    return 0


def list_tasks() -> None:
    """Built-in tasks from their source (no torch import); plugin tasks, if any, from the registry."""
    from importlib.metadata import entry_points

    from .catalog import OptionDoc, builtin_tasks

    docs = builtin_tasks()
    if entry_points(group="sam_bench.tasks"):
        from dataclasses import MISSING, fields

        from .catalog import TaskDoc
        from .plugins import load_plugins
        from .registry import TASKS

        load_plugins()
        for name in sorted(set(TASKS.names()) - {d.name for d in docs}):
            task = TASKS.get(name)
            docs.append(TaskDoc(name, task.title, TASKS.describe(name), [
                OptionDoc(f.name, getattr(f.type, "__name__", str(f.type)),
                          repr(f.default if f.default is not MISSING else f.default_factory()), "")  # type: ignore[misc]
                for f in fields(task.Options)]))
    for doc in docs:
        print(f"{doc.name:<12} {doc.title}")
        if doc.help:
            print(f"{'':<12} {doc.help}")
        for opt in doc.options:
            print(f"    --{opt.name.replace('_', '-'):<24} {_option_type(opt.type):<16} default {opt.default:<10} "
                  f"{opt.help}".rstrip())


if __name__ == "__main__":
    sys.exit(main())
