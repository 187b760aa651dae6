"""The thread-wait bench's measuring child: one operation in a process of its own, its figures as one JSON line."""

import json
import os
import subprocess
import sys


def test_a_child_measures_an_epoch_of_the_heads_and_reports_cpu_per_step_and_steps_a_second():
    out = subprocess.run([sys.executable, "-m", "bench.thread_wait", "--child", "heads", "640", "1"], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) == {"cpu_ms_per_op", "ops_per_s"} and figures["cpu_ms_per_op"] > 0 and figures["ops_per_s"] > 0
