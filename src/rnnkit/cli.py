"""The ``rnnkit`` command: train the ready-made architectures on bundled data or your files, and use the results.

    rnnkit train [TASK] [--cell lstm|gru|rnn] [--epochs N] [--out DIR] [--seed S]
    rnnkit train KIND --data FILE [--test-data FILE] [--text-column C] [--label-column C] ...
    rnnkit predict RUN_DIR [INPUT ...]
    rnnkit generate RUN_DIR [--prompt TEXT] [--length N] [--temperature T] [--top-k K]
    rnnkit translate RUN_DIR INPUT [INPUT ...] [--beam K]
    rnnkit datasets
    rnnkit build
    rnnkit diagnose ...
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .outdir import check_out_dir

# No torch (nor rnnkit's torch-using modules) at import: `main` refuses a bad --out before paying for
# `import torch` (about 1.3 s here). Each command imports what it needs.

_OWN = ("classify-text", "classify-series", "forecast", "tag", "seq2seq", "lm")  # tasks on the user's files
#: Each task-specific option and the tasks it applies to.
_TASK_OPTIONS = {
    "dataset": ("ucr",), "horizon": ("sunspots", "forecast"), "lookback": ("forecast",),
    "attention": ("cmudict", "numbers", "dates", "seq2seq"), "stress": ("cmudict",),
    "data": _OWN, "test_data": tuple(t for t in _OWN if t != "lm"), "format": _OWN,
    "text_column": ("classify-text", "tag", "lm"), "label_column": ("classify-text", "classify-series"),
    "series_column": ("classify-series",), "value_column": ("forecast",), "tags_column": ("tag",),
    "source_column": ("seq2seq",), "target_column": ("seq2seq",),
}
_CUSTOM_LOOP = ("cmudict", "numbers", "dates", "seq2seq")  # trained by fit_seq2seq, not Model.fit


class CommandError(Exception):
    """A mistake in the command line that argparse cannot see; printed without a traceback."""


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def idle_cores(seconds: float = 0.2) -> Optional[float]:
    """How many cores sat idle over the next ``seconds`` (Linux /proc/stat), or None where that cannot be read."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)  # idle + iowait, all

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def default_threads() -> tuple[int, str]:
    """Threads for a run without --threads: torch's default, less the cores that other work keeps busy.

    OpenMP regions end at a barrier: with a thread on a core that another process holds, every
    region waits for that thread's next time slice, and its partner spins meanwhile. On a
    2-core machine with one busy core, `rnnkit train captions` took 74.6 s on two threads against
    6.5 s on one (BENCHMARKS.md), and the regions are torch's own (GEMMs, softmax, the
    optimizer's vector math) as well as the engine's. So count the idle cores first.
    """
    import torch

    asked = torch.get_num_threads()
    idle = idle_cores()
    if idle is None or asked == 1:
        return asked, ""
    threads = max(1, min(asked, int(idle + 0.25)))
    if threads == asked:
        return threads, ""
    return threads, (f"threads: {threads} of {asked} (only {idle:.1f} of {os.cpu_count()} cores idle now; "
                     "--threads N overrides)")


# ---------------------------------------------------------------------------------- train


def _train(args: argparse.Namespace) -> int:
    options = {}
    for option, owners in _TASK_OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if args.task not in owners:
            flag = "--" + option.replace("_", "-")
            raise CommandError(f"{flag} applies to `rnnkit train {' | '.join(owners)}`, not to {args.task!r}")
        options[option] = value
    if args.task in _OWN and args.data is None:
        raise CommandError(f"`rnnkit train {args.task}` trains on your file: give it with --data FILE")
    out = args.out if args.out is not None else Path("runs") / args.task
    check_out_dir(out)  # before anything slow: a bad --out fails at once
    from .models.tasks import TASKS, Context, train_task

    task = TASKS[args.task]
    if args.nproc > 1 and args.task in _CUSTOM_LOOP:
        raise CommandError(f"--nproc trains through fit(); {args.task!r} uses its own teacher-forcing loop "
                           "(rnnkit.models.fit_seq2seq), which runs in one process")
    if args.nproc > 1 and "RANK" not in os.environ:  # start the processes; each runs this command again
        from .keras.training.distributed import launch, without_option

        return launch(args.nproc, ["-m", "rnnkit.cli", *without_option(args.argv, "--nproc")])
    rank = int(os.environ.get("RANK", "0"))  # under `--nproc`, only rank 0 reports and writes the run
    if rank:
        import tempfile

        sys.stdout = open(os.devnull, "w")
        out = Path(tempfile.mkdtemp(prefix=f"rnnkit-rank{rank}-"))
    if args.threads is None and args.nproc == 1:
        import torch

        threads, note = default_threads()
        torch.set_num_threads(threads)
        if note and not args.quiet and not rank:
            print(note, flush=True)
    else:
        _set_threads(args.threads)
    ctx = Context(
        cell=args.cell or task.default_cell, epochs=args.epochs or task.default_epochs, seed=args.seed,
        limit=args.limit, verbose=0 if args.quiet or rank else 1, options=options,
        out=out,
    )
    run, _ = train_task(task, ctx)
    if args.quiet:
        for s in run.scores:
            print(f"{args.task}\t{s.name}\t{s.value:.6g}\tbaseline\t{s.baseline:.6g}")
    return 0


# ------------------------------------------------------------------- using a saved model


def _load(path: Path, allowed: Optional[Sequence[str]], command: str) -> tuple[Any, Any, dict[str, Any]]:
    from .models.tasks import TASKS, load_task_model

    model, extras, name = load_task_model(path)
    if name not in TASKS:
        raise CommandError(f"{str(path)!r} holds a model for task {name!r}, which this rnnkit does not know")
    if allowed is not None and name not in allowed:
        raise CommandError(f"`rnnkit {command}` needs a model trained with `rnnkit train {' | '.join(allowed)}`; "
                           f"{str(path)!r} holds a {name!r} model (use `rnnkit predict`)")
    return TASKS[name], model, extras


def _inputs(items: Sequence[str]) -> list[str]:
    """The positional inputs; "-" stands for the lines of stdin."""
    out: list[str] = []
    for item in items:
        if item == "-":
            out.extend(line.rstrip("\n") for line in sys.stdin if line.strip())
        else:
            out.append(item)
    return out


def _predict(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    task, model, extras = _load(args.model, None, "predict")
    inputs = _inputs(args.inputs)
    if not inputs and task.needs_inputs:
        raise ValueError(f"no input: give {task.name!r} models {task.input_help} as arguments, or '-' to read "
                         "them from stdin, one per line")
    for line in task.predict(model, extras, inputs):
        print(line)
    return 0


def _generate(args: argparse.Namespace) -> int:
    import torch

    from .data import CharVocab

    _set_threads(args.threads)
    _, model, extras = _load(args.model, ("charlm", "lm"), "generate")
    vocab = CharVocab.from_config(extras["vocab"])
    prompt = args.prompt.encode().decode("unicode_escape") if args.escapes else args.prompt
    if not prompt:
        raise CommandError("--prompt must hold at least one character")
    gen = torch.Generator().manual_seed(args.seed)
    ids = model.generate(vocab.encode(prompt), args.length, temperature=args.temperature, top_k=args.top_k,
                         generator=gen)
    print(prompt + vocab.decode(ids))
    return 0


def _translate(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    task, model, extras = _load(args.model, ("cmudict", "numbers", "dates", "seq2seq"), "translate")
    for line in task.translate(model, extras, _inputs(args.inputs), beam=args.beam):
        print(line)
    return 0


# --------------------------------------------------------------------------------- datasets


def _datasets(args: argparse.Namespace) -> int:
    from .datasets import list_datasets

    rows = list_datasets()
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.task}")
        for label, value in (("size", r.size), ("load", f"rnnkit.datasets.{r.loader}"), ("source", r.source),
                             ("licence", r.licence)):
            print(textwrap.fill(value, 100, initial_indent=f"{'':<{width}}  {label:<8}",
                                subsequent_indent=" " * (width + 10)))
    return 0


# ------------------------------------------------------------------------------------ build


def _build(args: argparse.Namespace) -> int:
    """Build (or find) the C++ time loop now, so that the first `rnnkit train` starts at once."""
    import time

    from .engine import kernels

    start = time.perf_counter()
    try:
        module = kernels.load_kernels()
    except kernels.KernelsUnavailableError as exc:  # RNNKIT_REQUIRE_KERNELS=1: no Python loop to fall back on
        print(f"rnnkit build: {exc}", file=sys.stderr)
        return 1
    if module is None:
        print(f"rnnkit build: the C++ time loop is unavailable ({kernels._load_error}); rnnkit will use its "
              "Python loop (same results, slower)", file=sys.stderr)
        return 1
    print(f"C++ time loop ready in {time.perf_counter() - start:.1f} s: {module.__file__}")
    return 0


# ----------------------------------------------------------------------------------- parser


def _task_table() -> str:
    from .models.tasks import BUNDLED_TASKS, DEFAULT_TASK, OWN_DATA_TASKS

    lines = ["tasks on bundled data (default cell / epochs):"]
    for name, t in BUNDLED_TASKS.items():
        mark = "  (default)" if name == DEFAULT_TASK else ""
        lines.append(f"  {name:<15} {t.summary}{mark}")
        lines.append(f"  {'':<15} {t.shape}; {t.default_cell} / {t.default_epochs}")
    lines += ["", "tasks on your own file (--data FILE: .csv, .tsv, .jsonl or .txt, optionally .gz):"]
    for name, t in OWN_DATA_TASKS.items():
        lines.append(f"  {name:<15} {t.summary}")
        lines.append(f"  {'':<15} {t.shape}; {t.default_cell} / {t.default_epochs}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .models._checks import CELLS
    from .models.attention import ATTENTION_KINDS
    from .models.tasks import DEFAULT_TASK, TASKS
    from .datasets.files import FORMATS
    from .models.tasks.classify import UCR_DATASETS

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rnnkit", formatter_class=raw,
        description="Recurrent neural networks on PyTorch: train ready-made architectures on bundled real data.",
        epilog=textwrap.dedent("""\
            examples:
              rnnkit train                      # the main job: sentiment of movie-review sentences
              rnnkit train sunspots --cell lstm --epochs 100 --out runs/sun
              rnnkit predict runs/sentiment "A gorgeous, witty film." "Dull and far too long."
              rnnkit train charlm && rnnkit generate runs/charlm --prompt "The " --temperature 0.7
              rnnkit train cmudict && rnnkit translate runs/cmudict rhythm wednesday --beam 4
              rnnkit train classify-text --data reviews.csv --text-column review --label-column stars
              rnnkit train forecast --data sales.csv --value-column units --horizon 7 --out runs/sales
              rnnkit build                      # compile the C++ time loop ahead of the first run
              rnnkit datasets
            """),
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a ready-made model on bundled data; print its test score and a baseline",
                       formatter_class=raw, description=textwrap.fill(
                           "Train a model on a task's bundled data with progress bars, print its test score beside a "
                           "simple baseline, and save model.safetensors + model.json, curves.png (learning curves) "
                           "and results.json in --out.", 100) + "\n\n" + _task_table())
    p.add_argument("task", nargs="?", default=DEFAULT_TASK, choices=list(TASKS), metavar="TASK",
                   help=f"what to train (default: {DEFAULT_TASK}); one of {', '.join(TASKS)}")
    p.add_argument("--cell", choices=CELLS, help="recurrent cell (default: the task's)")
    p.add_argument("--epochs", type=_positive(int), help="passes over the training data (default: the task's)")
    p.add_argument("--out", type=Path, help="output directory (default: runs/TASK)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--limit", type=_positive(int), metavar="N",
                   help="use at most N training and N test samples (quick checks)")
    p.add_argument("--threads", type=_positive(int),
                   help="torch threads (default: torch's choice, less the cores other work keeps busy)")
    p.add_argument("--quiet", action="store_true", help="no progress bars; one tab-separated line per score")
    p.add_argument("--nproc", type=_positive(int), default=1, metavar="N",
                   help="data-parallel training in N processes (torchrun, gloo; the batch is split between them)")
    p.add_argument("--dataset", choices=UCR_DATASETS, help="ucr only: the bundled set (default: ItalyPowerDemand)")
    p.add_argument("--horizon", type=_positive(int), help="sunspots, forecast: steps to forecast (default: 3)")
    p.add_argument("--attention", choices=ATTENTION_KINDS, help="cmudict/numbers/dates/seq2seq (default: luong)")
    p.add_argument("--stress", action="store_true", default=None,
                   help="cmudict only: keep the vowels' stress digits (AH0/AH1; default: 39 plain phonemes, "
                        "as in the published G2P results)")
    own = p.add_argument_group("your own data (classify-text, classify-series, forecast, tag, seq2seq, lm)")
    own.add_argument("--data", type=Path, metavar="FILE", help="the file to train on (without --test-data, a fifth "
                     "of its rows is the test split; the last fifth for forecast)")
    own.add_argument("--test-data", type=Path, metavar="FILE", help="a separate test file, in the same form")
    own.add_argument("--format", choices=FORMATS, help="the files' format (default: from the extension)")
    own.add_argument("--text-column", metavar="C", help="the texts (classify-text, lm: 'text'; tag: 'tokens', "
                     "space-separated)")
    own.add_argument("--label-column", metavar="C", help="the classes (default: 'label')")
    own.add_argument("--series-column", metavar="C", help="classify-series, JSONL: a list of values (default: "
                     "'series'); CSV/TSV: every column but the label is a step")
    own.add_argument("--value-column", metavar="C", help="forecast: the numeric column (default: the last)")
    own.add_argument("--lookback", type=_positive(int), help="forecast: steps the model reads (default: 12)")
    own.add_argument("--tags-column", metavar="C", help="tag: one tag per token, space-separated (default: 'tags')")
    own.add_argument("--source-column", metavar="C", help="seq2seq: the inputs (default: 'source')")
    own.add_argument("--target-column", metavar="C", help="seq2seq: the outputs (default: 'target')")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="apply a trained model to inputs (texts, values, files, image indices)",
                       formatter_class=raw, description=textwrap.dedent("""\
                           Apply a model saved by `rnnkit train` to each INPUT ("-" reads lines from stdin):
                             sentiment   sentences                   -> label and probability
                             sunspots    the latest yearly values    -> the next years (none: after 2008)
                             ucr         .ts/.tsv files or a series  -> accuracy or the class
                             charlm      prompts                     -> the five likeliest next characters
                             segment     text without spaces         -> the text with spaces
                             cmudict, numbers, dates  sources        -> greedy translations
                             captions, digits  test image indices    -> the caption/class (none: 3 images)
                           and on your own data:
                             classify-text    texts                  -> class and probability
                             classify-series  a series or a file     -> the class, or a file's accuracy
                             forecast         the latest values      -> the next H (none: after the file's end)
                             tag              space-separated tokens -> token/tag pairs
                             seq2seq          sources                -> greedy translations
                             lm               prompts                -> the five likeliest next characters
                           """))
    p.add_argument("model", type=Path, help="a run directory of `rnnkit train` (or its model.json)")
    p.add_argument("inputs", nargs="*", help="inputs; '-' reads stdin")
    p.add_argument("--threads", type=_positive(int), help="torch threads")
    p.set_defaults(func=_predict)

    p = sub.add_parser("generate", help="sample text from a character language model (rnnkit train charlm)",
                       description="Prime the model with --prompt, then sample --length characters one at a time, "
                                   "each fed back in. Temperature 0 or --top-k 1 is greedy.")
    p.add_argument("model", type=Path, help="a run directory of `rnnkit train charlm`")
    p.add_argument("--prompt", default="The ", help="text to start from (default: 'The ')")
    p.add_argument("--escapes", action="store_true", help="read backslash escapes such as \\n in --prompt")
    p.add_argument("--length", type=_positive(int), default=300, help="characters to generate (default: 300)")
    p.add_argument("--temperature", type=_non_negative_float, default=0.8,
                   help="below 1 sharper, above 1 more random, 0 greedy (default: 0.8)")
    p.add_argument("--top-k", type=_positive(int), default=None, help="sample among the K likeliest only")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=_positive(int), help="torch threads")
    p.set_defaults(func=_generate)

    p = sub.add_parser("translate", help="decode with a sequence-to-sequence model (cmudict, numbers, dates)",
                       description="Encode each INPUT and decode greedily (--beam 1) or by beam search.")
    p.add_argument("model", type=Path, help="a run directory of `rnnkit train cmudict|numbers|dates`")
    p.add_argument("inputs", nargs="+", help="words, numbers or ISO dates; '-' reads stdin")
    p.add_argument("--beam", type=_positive(int), default=1, help="beam width; 1 is greedy (default: 1)")
    p.add_argument("--threads", type=_positive(int), help="torch threads")
    p.set_defaults(func=_translate)

    p = sub.add_parser("datasets", help="list the bundled data sets: task, size, source, licence",
                       description="List every data set rnnkit bundles or generates (nothing is downloaded).")
    p.set_defaults(func=_datasets)

    p = sub.add_parser("build", help="build the C++ time loop now (about a minute, once), not on first use",
                       description="Compile the engine's C++ time loop into the kernel cache (RNNKIT_KERNELS_DIR, "
                                   "default ~/.cache/rnnkit/kernels), or find it there. Otherwise the first training "
                                   "run builds it.")
    p.set_defaults(func=_build)

    from .diagnostics.cli import register

    register(sub)
    return parser


def _early_out_check(argv: Sequence[str]) -> Optional[str]:
    """The error for an unusable ``train --out DIR``, found before the parser (whose task table needs torch) is built."""
    if not argv or argv[0] != "train":
        return None
    for i, arg in enumerate(argv):
        if arg == "--":
            return None
        value = argv[i + 1] if arg == "--out" and i + 1 < len(argv) else arg[6:] if arg.startswith("--out=") else None
        if value:
            try:
                check_out_dir(Path(value))
            except ValueError as e:
                return str(e)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    early = _early_out_check(argv)
    if early is not None:  # in well under a second: neither torch nor the task table is loaded yet
        print(f"rnnkit train: error: {early}", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # `train --nproc` starts itself again
    try:
        return args.func(args)
    except CommandError as e:
        parser.error(str(e))
    except (ValueError, FileNotFoundError) as e:
        # Bad inputs and files: the message names the problem; a traceback would bury it.
        print(f"rnnkit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `rnnkit datasets | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"\nrnnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
