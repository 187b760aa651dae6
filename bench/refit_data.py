"""What a fast refit does before it fits, measured in process for ``label_growth`` (``--refit-only`` measures this alone)."""

from __future__ import annotations

import statistics
import time


def measure_refit_data(*, repeat: int) -> dict:
    """What a fast refit does before it fits: read the raters' weights, the verdicts and the labels, and make the pairs with their
    facts (``services.training_pairs``). Three times: the first run after a rebuild of the tallies reads every label and keeps
    what completed (``services.training_data``) and makes every pair; a worker that starts reads what was kept from the file, and
    the labels since; every later run of a worker holds what it read and made, and reads and makes only what is new (here none
    but the last hour's and the backlog's, as in a studio that refits often): the median of ``repeat``. Beside them, once, a later
    run as it was before pairs were kept: every held label aggregated and every pair's facts worked out."""
    from feedback_app import training_bridge
    from feedback_app.selectors.judges import ai_label_weights
    from feedback_app.selectors.quality import rater_weights
    from feedback_app.selectors.training import verdicts
    from feedback_app.services.training_data import forget, labels_for_training
    from feedback_app.services.training_pairs import pairs_for_training

    def made() -> dict:
        return {"weights": rater_weights(), "verdicts": verdicts(), "ai_weights": ai_label_weights(purpose="reward")}

    def read() -> tuple[float, float, int, int]:
        w, c = time.perf_counter(), time.process_time()
        data = pairs_for_training(**made())
        return time.perf_counter() - w, time.process_time() - c, data.data_range["n_labels"], len(data.pairs)

    def read_all() -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        labels, _ = labels_for_training()
        training_bridge.pair_facts(training_bridge.preference_pairs(labels, **made()))
        return time.perf_counter() - w, time.process_time() - c

    forget()
    cold_wall, cold_cpu, _, _ = read()
    forget()
    file_wall, file_cpu, _, _ = read()
    runs = [read() for _ in range(repeat + 1)][1:]  # after a warm-up
    wall, cpu, n, pairs = (statistics.median(run[k] for run in runs) for k in range(4))
    all_wall, all_cpu = read_all()
    return {"labels_read": n, "pairs": pairs, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "cold_wall_s": round(cold_wall, 2),
            "cold_cpu_s": round(cold_cpu, 2), "file_wall_s": round(file_wall, 2), "file_cpu_s": round(file_cpu, 2),
            "every_label_wall_s": round(all_wall, 2), "every_label_cpu_s": round(all_cpu, 2)}
