"""The ``rnnkit`` command: help, datasets, every task trained end to end on a tiny slice, the
commands that use a saved model, and clear errors for bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.cli import build_parser, main
from rnnkit.models.tasks import BUNDLED_TASKS, DEFAULT_TASK, TASKS


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _train(task: str, out, *extra: str) -> None:
    assert main(["train", task, "--epochs", "1", "--limit", "24", "--out", str(out), "--threads", "1", *extra]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained model per task that the use-a-model commands need."""
    root = tmp_path_factory.mktemp("runs")
    for task in ("sentiment", "charlm", "dates", "captions", "sunspots"):
        _train(task, root / task)
    return root


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for command in ("train", "predict", "generate", "translate", "datasets", "diagnose"):
        assert command in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in TASKS) and "(default)" in text and "--cell {lstm,gru,rnn}" in text


def test_parser_defaults():
    args = build_parser().parse_args(["train"])
    assert args.task == DEFAULT_TASK and args.cell is None and args.epochs is None and args.seed == 0


def test_datasets_lists_the_bundled_data(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("sunspots", "ItalyPowerDemand", "vader_movie_reviews", "cmudict", "digits_captions", "pydoc"):
        assert name in out
    assert "licence" in out


@pytest.mark.parametrize("task", [t for t in BUNDLED_TASKS if t not in ("sentiment", "charlm", "dates", "captions",
                                                                        "sunspots")])
def test_every_other_task_trains_end_to_end(task, tmp_path, capsys):
    _train(task, tmp_path)
    out = capsys.readouterr().out
    assert "baseline" in out and "saved" in out
    for name in ("model.safetensors", "model.json", "curves.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["task"] == task and results["limit"] == 24 and results["scores"]


def test_trained_runs_hold_model_curves_and_results(runs):
    for task in ("sentiment", "charlm", "dates", "captions", "sunspots"):
        assert (runs / task / "curves.png").read_bytes()[:4] == b"\x89PNG"
        config = json.loads((runs / task / "model.json").read_text())
        assert config["extras"]["task"] == task


def test_predict_generate_translate_use_the_saved_models(runs, capsys):
    assert main(["predict", str(runs / "sentiment"), "A warm, funny film.", "Tedious."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("positive", "negative")

    assert main(["generate", str(runs / "charlm"), "--prompt", "def ", "--length", "20", "--top-k", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("def ") and len(text.rstrip("\n")) >= 4  # 20 sampled characters, maybe whitespace
    assert main(["generate", str(runs / "charlm"), "--length", "15", "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    assert main(["generate", str(runs / "charlm"), "--length", "15", "--top-k", "1", "--seed", "5"]) == 0
    assert capsys.readouterr().out == greedy

    assert main(["translate", str(runs / "dates"), "2024-03-07", "1999-12-31", "--beam", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [l.split("\t")[0] for l in lines] == ["2024-03-07", "1999-12-31"]
    assert main(["predict", str(runs / "dates"), "2001-01-01"]) == 0
    assert capsys.readouterr().out.startswith("2001-01-01\t")

    assert main(["predict", str(runs / "captions"), "0", "5"]) == 0
    out = capsys.readouterr().out
    assert "test image 0:" in out and "test image 5:" in out

    assert main(["predict", str(runs / "sunspots")]) == 0
    assert capsys.readouterr().out.startswith("2009: ")
    assert main(["predict", str(runs / "sunspots / model.json".replace(" ", "")), *["50"] * 12]) == 0
    assert capsys.readouterr().out.startswith("+1 year(s): ")


def test_cmudict_trains_with_stress_and_translates(tmp_path, capsys):
    _train("cmudict", tmp_path, "--stress", "--quiet")
    out = capsys.readouterr().out
    assert "cmudict\tword error rate (beam 5)\t" in out and "cmudict\tphoneme error rate (beam 5)\t" in out
    assert main(["translate", str(tmp_path), "rhythm", "Wednesday", "--beam", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["rhythm", "Wednesday"]


@pytest.mark.parametrize("argv,message", [
    (["train", "imagenet"], "invalid choice: 'imagenet'"),
    (["train", "--cell", "transformer"], "invalid choice: 'transformer'"),
    (["train", "--epochs", "0"], "expected a positive int, got '0'"),
    (["train", "sentiment", "--dataset", "GunPoint"], "--dataset applies to `rnnkit train ucr`"),
    (["train", "ucr", "--horizon", "2"], "--horizon applies to `rnnkit train sunspots | forecast`"),
    (["train", "cmudict", "--nproc", "2"], "'cmudict' uses its own teacher-forcing loop"),
    (["train", "dates", "--stress"], "--stress applies to `rnnkit train cmudict`"),
    (["generate", "x", "--temperature", "-1"], "expected a number >= 0"),
    (["translate", "x"], "the following arguments are required: inputs"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_models_and_inputs_give_one_line_errors(runs, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nothing-here")]) == 1
    assert "no saved model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["translate", str(runs / "sentiment"), "hello"])
    assert e.value.code == 2
    assert "needs a model trained with `rnnkit train cmudict | numbers | dates | seq2seq`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", str(runs / "dates")])
    assert "`rnnkit generate` needs a model trained with `rnnkit train charlm | lm`" in capsys.readouterr().err
    assert main(["translate", str(runs / "dates"), "2024-03-07", "20x4-03-07"]) == 1
    assert "symbols the model never saw: ['x']" in capsys.readouterr().err
    assert main(["predict", str(runs / "sunspots"), "1", "2"]) == 1
    assert "give at least 12 values" in capsys.readouterr().err
    assert main(["predict", str(runs / "sentiment"), "!!!"]) == 1
    assert "has no words" in capsys.readouterr().err
    assert main(["predict", str(runs / "captions"), "9999"]) == 1
    assert "outside [0, 359]" in capsys.readouterr().err


def test_ucr_predict_reads_archive_files_and_series(tmp_path, capsys):
    from rnnkit.datasets import load_ucr

    _train("ucr", tmp_path / "run")
    d = load_ucr("ItalyPowerDemand")
    tsv = tmp_path / "ItalyPowerDemand_TEST.tsv"
    tsv.write_text("".join(f"{d.classes[y]}\t" + "\t".join(f"{v:.4f}" for v in x[:, 0]) + "\n"
                           for x, y in zip(d.x_test[:10], d.y_test[:10])))
    series = ",".join(f"{v:.4f}" for v in d.x_test[0, :, 0])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tsv), series]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{tsv}: 10 series, accuracy ") and lines[1] in d.classes
    assert main(["predict", str(tmp_path / "run"), "1,2,x"]) == 1
    assert "neither a file nor a comma-separated series" in capsys.readouterr().err


def test_predict_with_no_input_says_what_to_give(runs, capsys):
    assert main(["predict", str(runs / "sentiment")]) == 1
    assert "no input: give 'sentiment' models sentences as arguments, or '-'" in capsys.readouterr().err
    assert main(["predict", str(runs / "captions")]) == 0  # a default: three bundled test images
    assert "test image 0:" in capsys.readouterr().out


def test_a_short_series_is_refused_by_predict(tmp_path, capsys):
    _train("ucr", tmp_path / "run")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "1,2,3"]) == 1
    assert "is a series of 3 steps; expected 24, the length the model was trained on" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["file", "under-file", "unwritable"])
def test_a_bad_out_fails_before_any_work(where, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = {"file": blocker, "under-file": blocker / "run", "unwritable": Path("/proc/rnnkit-run")}[where]
    import rnnkit.models.tasks.base as base

    def never(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(base, "seed_everything", never)
    monkeypatch.setattr(base, "prepare", never)
    assert main(["train", "digits", "--out", str(out), "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnkit train: error: --out ") and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]



@pytest.mark.parametrize("flag", [["--out", "/proc/rnnkit-run"], ["--out=/proc/rnnkit-run"]])
def test_a_bad_out_fails_before_torch_is_imported(flag):
    # The issue asks for under a second; import torch alone takes 1.3 s here, so the check is that
    # the refusal comes before it (no wall clock in tests). A fresh interpreter, as the command has.
    code = ("import sys; from rnnkit.cli import main; rc = main(['train', 'digits', *sys.argv[1:]]); "
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, *flag], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.split() == ["1", "False"], done.stderr
    assert done.stderr.startswith("rnnkit train: error: --out '/proc/rnnkit-run': cannot write in '/proc'")


def test_import_rnnkit_is_lazy_and_complete():
    code = ("import sys, rnnkit; lazy = 'torch' not in sys.modules; "
            "names = [n for n in rnnkit.__all__ if getattr(rnnkit, n) is None]; "
            "print(lazy, names, rnnkit.LSTM is rnnkit.keras.layers.LSTM)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.split() == ["True", "[]", "True"], done.stderr


def test_import_rnnkit_after_torch_registers_the_operators():
    code = ("import torch, rnnkit; print(hasattr(torch.ops.rnnkit, 'compiled_forward'), "
            "hasattr(torch.ops.rnnkit, 'min_scan'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.split() == ["True", "True"], done.stderr

def test_build_reports_the_kernels(capsys):
    from rnnkit.engine import kernels

    code = main(["build"])
    out, err = capsys.readouterr()
    if kernels.load_kernels() is None:
        assert code == 1 and "unavailable" in err
    else:
        assert code == 0 and out.startswith("C++ time loop ready in ")


def test_the_run_reports_early_stopping_and_the_curves_name_the_loss(tmp_path, capsys):
    import rnnkit.models.tasks.base as base
    from rnnkit.keras.callbacks import EarlyStopping
    from rnnkit.models.tasks import Context, Run, Score

    stop = EarlyStopping(patience=1, restore_best_weights=True)
    stop.stopped_epoch, stop.best_epoch, stop.best = 40, 28, 0.5
    run = Run(torch.nn.Linear(1, 1), {"loss": [1.0] * 41, "val_loss": [0.9] * 41}, [Score("rmse", 2.0, 3.0, "x")],
              early_stopping=stop, loss_name="mean squared error")
    assert base.stopping_summary(run, 300).startswith("early stopping: stopped at epoch 41 of 300, restored epoch 29")
    assert base.restored_epoch(run) == 29
    path = base.plot_history(run.history, tmp_path / "c.png", "t", loss=base.loss_name(run), best_epoch=29,
                             scores=run.scores)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_bars_turn_into_lines_in_a_pipe(tmp_path):
    import io

    from rnnkit.models.tasks.base import EpochBar

    stream = io.StringIO()  # not a terminal, as a file or a pipe
    bar = EpochBar(3, "demo", file=stream)
    for epoch in range(3):
        bar.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    bar.on_train_end()
    assert stream.getvalue().splitlines() == ["demo: epoch 1/3 loss 1", "demo: epoch 2/3 loss 0.5",
                                              "demo: epoch 3/3 loss 0.3333"]


def test_the_default_threads_leave_busy_cores_out(monkeypatch):
    import rnnkit.cli as cli

    torch.set_num_threads(2)
    monkeypatch.setattr(cli, "idle_cores", lambda seconds=0.2: 0.9)
    assert cli.default_threads()[0] == 1 and "--threads N overrides" in cli.default_threads()[1]
    monkeypatch.setattr(cli, "idle_cores", lambda seconds=0.2: 1.9)
    assert cli.default_threads() == (2, "")
    monkeypatch.setattr(cli, "idle_cores", lambda seconds=0.2: None)
    assert cli.default_threads() == (2, "")


def test_build_under_the_require_flag_reports_without_a_traceback(monkeypatch, capsys):
    from rnnkit.engine import kernels

    def unavailable():
        raise kernels.KernelsUnavailableError("the C++ kernels failed to build: no compiler")

    monkeypatch.setattr(kernels, "load_kernels", unavailable)
    assert main(["build"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "rnnkit build: the C++ kernels failed to build: no compiler"
