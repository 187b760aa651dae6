"""Importing the learning libraries before a fork: the model classes named by their folders, nothing run, a usable child."""

import json
import subprocess
import sys
import textwrap

from rm_trainer.config import default_reward_backbone

SCRIPT = textwrap.dedent("""
    import json, os, sys, threading
    from rm_trainer.preload import MODULES, libraries_import

    classes = libraries_import([sys.argv[1], sys.argv[2]])
    report = {"classes": classes, "threads": threading.active_count(),
              "missing": [name for name in (*MODULES, "torch", "transformers", "peft", "transformers.models.bert.modeling_bert")
                          if name not in sys.modules]}
    pid = os.fork()
    if pid == 0:  # the first operations happen in the child, on two threads, as in a worker's pool process
        import torch
        torch.set_num_threads(2)
        x = torch.randn(256, 256)
        layer = torch.nn.Linear(256, 256)
        ok = bool(torch.isfinite(layer(x @ x)).all())
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    report["child_exit"] = os.waitstatus_to_exitcode(status)
    print(json.dumps(report))
""")


def test_libraries_import_names_the_folders_model_classes_runs_nothing_and_a_forked_child_computes(tmp_path):
    gguf_folder = tmp_path / "gguf"  # a folder without config.json (a GGUF file's) is left to its first load
    gguf_folder.mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, default_reward_backbone(), str(gguf_folder)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"classes": ["BertModel"], "threads": 1, "missing": [], "child_exit": 0}
