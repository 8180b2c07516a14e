"""search.console.ProgressPrinter: the status line's numbers, the per-epoch log, --verbose (no Ray run)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from search import console
from search.console import ProgressPrinter, format_duration


def _trial(trial_id: str, status: str, epoch: int, best: float | None = None):
    result = {"epoch": epoch, "val_macro_f1": best, "loss_total": 0.5, "epoch_seconds": 1.0}
    if best is not None:
        result["best_val_macro_f1"] = best
    return SimpleNamespace(
        trial_id=trial_id, status=status, last_result=result if epoch else {}, config={}, num_failures=0
    )


def test_status_line_counts_best_and_eta(monkeypatch) -> None:
    printer = ProgressPrinter("search", "val_macro_f1", [], epochs=9, total=6, tune_metric="best_val_macro_f1")
    clock = iter([100.0, 160.0])
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    printer.setup()
    trials = [
        _trial("a", "TERMINATED", 9, 0.40),
        _trial("b", "TERMINATED", 3, 0.45),
        _trial("c", "ERROR", 2),
        _trial("d", "RUNNING", 4, 0.30),
        _trial("e", "PENDING", 0),
    ]
    line = printer.status_line(trials)
    # 18 epochs reported in 60 s -> 0.3 epoch/s; left: d 5 + e 9 + one trial not created yet 9 = 23 -> 77 s
    assert line == (
        "[search] 3/6 trials: 1 done, 1 running, 1 stopped, 1 failed | best val_macro_f1 0.4500 (b) "
        "| elapsed 1m00s, ETA <= 1m17s (23 epochs left)"
    )
    assert format_duration(3725) == "1h02m" and format_duration(float("nan")) == "?"


@pytest.mark.parametrize("verbose", [False, True])
def test_epoch_lines_go_to_the_log_and_to_the_console_only_with_verbose(tmp_path, capsys, monkeypatch, verbose) -> None:
    log = tmp_path / "progress.log"
    printer = ProgressPrinter("final", "val_macro_f1", [], epochs=2, total=1, log_path=log, verbose=verbose)
    printer.setup()
    trial = _trial("t1", "RUNNING", 1, 0.2)
    printer.on_trial_start(0, [trial], trial)
    printer.on_trial_result(0, [trial], trial, {**trial.last_result, "pid": 7, "hostname": "h"})
    monkeypatch.setattr(console, "STATUS_INTERVAL_S", 0.0)  # not a terminal: one line per interval
    printer.on_step_end(0, [trial])
    out = capsys.readouterr().out
    text = log.read_text()
    assert "[final] t1 start" in out and "[final] t1 runs on h pid 7" in out
    assert "[final] 0/1 trials: 0 done, 1 running" in out  # the status line, printed as a plain line
    assert "[final] t1 epoch 1/2 loss 0.5000 val_macro_f1 0.2000" in text
    assert ("t1 epoch 1/2" in out) == verbose
    assert "\r" not in out


def test_on_a_terminal_the_status_line_is_redrawn_in_place(monkeypatch) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(console, "TTY_REFRESH_S", 0.0)
    printer = ProgressPrinter("search", "val_macro_f1", [], epochs=2, total=2)
    printer.setup()
    trial = _trial("t1", "RUNNING", 1, 0.2)
    printer.on_step_end(0, [trial])
    printer.on_step_end(0, [trial])
    printer.on_trial_complete(0, [trial], _trial("t1", "TERMINATED", 2, 0.3))
    printer.on_experiment_end([_trial("t1", "TERMINATED", 2, 0.3)])
    text = screen.getvalue()
    assert text.count("\r\033[K[search] 0/2 trials") == 2  # redrawn, not a new line each time
    assert "\r\033[K[search] t1 done\n" in text  # an event replaces the status line
    last = text.rsplit("\r\033[K", 1)[1]  # the final status line, then a newline: the terminal is left clean
    assert last.startswith(
        "[search] 1/2 trials: 1 done, 0 running, 0 stopped, 0 failed | best val_macro_f1 0.3000 (t1)"
    )
    assert last.endswith("(2 epochs left)\n") and last.count("\n") == 1
