"""The Train page's table of past runs: which columns, and what each number is."""
from __future__ import annotations

from senet_dashboard.curves import format_duration

ACC_HELP = {
    "best val acc": "Recorded during training: the best epoch's accuracy on the run's validation split, in percent.",
    "last test acc": "Recorded during training by a run trained on every training image (validation size 0): its "
                     "last epoch's accuracy on the test split, in percent; nothing is selected on it.",
    "recorded acc": "Recorded during training, in percent: the best epoch on the validation split, or for a run "
                    "trained on every training image (validation size 0) its last epoch on the test split "
                    "(see 'scored on': split, and which epoch).",
}


def runs_table(rows: list[dict]) -> tuple[list[dict], str]:
    """Table rows for :func:`senet_dashboard.launcher.list_run_rows`'s rows, and the name of the accuracy column.

    One accuracy column, named after its split when every run was scored on the same one ("best val acc" or "last
    test acc"); "recorded acc" with a "scored on" column when they differ. The "error" column appears only when
    a run has an error, and there is no start-time column (rows are newest first, and a run's name holds its start
    time), so that the table fits a 1280 px window.
    """
    on_test = [r.get("best_val_acc") is None and r.get("test_acc") is not None for r in rows]
    mixed = any(on_test) and not all(on_test)
    acc_column = "recorded acc" if mixed else ("last test acc" if rows and all(on_test) else "best val acc")
    with_error = any(r.get("error") for r in rows)
    table = []
    for r, test in zip(rows, on_test):
        acc = r.get("test_acc") if test else r.get("best_val_acc")
        row = {"state": r["state"], "run": r["run"], "model": r["model"], "recipe": r["recipe"],
               "epochs": f"{r['epoch'] or 0}/{r['epochs'] or '?'}",
               acc_column: None if acc is None else 100.0 * acc}
        if mixed:
            row["scored on"] = "test, last" if test else "val, best"
        row["trained for"] = format_duration(r.get("elapsed_s"))
        if with_error:
            row["error"] = r.get("error") or ""
        table.append(row)
    return table, acc_column
