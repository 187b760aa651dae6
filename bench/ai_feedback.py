"""AI feedback in the loop bench: the studio's judges set up as an admin sets them, and how far their audits saw the truth.

``--ai-feedback reward-model``: the studio's reward-model ensemble routes new comparisons
(AI_FEEDBACK on). Its confident verdicts become labels once its audit trusts it; they may train
the policy, never the reward model (the circularity rule). ``--ai-feedback shorter``: a judge
that is wrong on purpose, preferring the shorter reply, which the studio reaches as any remote
judge, over the OpenAI-compatible protocol (a stub on 127.0.0.1 that an admin enables); it shows
the audit catching a bad judge before its labels reach a model. The bench's own judge is never
a studio judge: the simulated raters keep it to themselves.

Per round the bench counts the AI labels stored; at the end, per judge, it puts the audit's
figures (the studio's ``/stats/judges/``) beside the judge's true agreement with the raters'
judge (noiseless) on every verdict it gave, and lists the AI labels each training run counted.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

KINDS = ("off", "reward-model", "shorter")
JUDGE_NAMES = {"reward-model": "reward-model", "shorter": "prefers-shorter"}


def rubric_replies(user_message: str) -> tuple[str, str]:
    """Return the two replies a rubric question shows ("Response 1:" … "Response 2:" … the closing question)."""
    _, rest = user_message.split("\n\nResponse 1:\n", 1)
    first, rest = rest.split("\n\nResponse 2:\n", 1)
    second = rest.rsplit("\n\nWhich response is better?", 1)[0]
    return first, second


def shorter_answer(messages: list[dict]) -> str:
    """Return the wrong-on-purpose judge's answer: the shorter reply is better (the first on a tie), confidently."""
    first, second = rubric_replies(messages[-1]["content"])
    better = 2 if len(second) < len(first) else 1
    return json.dumps({"better": better, "confidence": 0.9, "reason": "the shorter reply"})


class ChatStub:
    """An OpenAI-compatible chat-completions endpoint on 127.0.0.1 that answers with ``answer(messages)``; counts its requests."""

    def __init__(self, answer: Callable[[list[dict]], str]) -> None:
        self.answer, self.requests = answer, 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                stub.requests += 1
                try:
                    content, status = stub.answer(body["messages"]), 200
                    payload = {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                                                        "finish_reason": "stop"}]}
                except (KeyError, ValueError) as exc:  # not a rubric question: a client error, as a real server would answer
                    status, payload = 400, {"error": {"message": str(exc)}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ChatStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def ai_env(kind: str, *, url: str = "") -> dict[str, str]:
    """Return the studio settings that turn AI feedback on with ``kind`` (nothing for "off")."""
    if kind == "off":
        return {}
    return {"AI_FEEDBACK": "1", **({"JUDGE_URL": url, "JUDGE_TIMEOUT_SECONDS": "30"} if kind == "shorter" else {})}


def judge_setup(kind: str, *, admin_username: str, threshold: float) -> None:
    """Create the routing judge of ``kind`` as an admin does on the judges' admin page (a remote one enabled by the admin's action)."""
    from django.contrib.auth import get_user_model

    from feedback_app.models import Judge
    from feedback_app.services.judges import judge_remote_enable

    if kind == "off":
        return
    judge = Judge.objects.create(name=JUDGE_NAMES[kind], kind=Judge.Kind.REWARD_MODEL if kind == "reward-model" else Judge.Kind.REMOTE,
                                 enabled=kind == "reward-model", routing=True, confidence_threshold=threshold)
    if judge.kind == Judge.Kind.REMOTE:
        judge_remote_enable(judge=judge, user=get_user_model().objects.get(username=admin_username))


def labels_ai() -> int:
    """Return how many AI labels the studio has stored."""
    from feedback_app.models import PreferenceLabel

    return PreferenceLabel.objects.filter(judge_version__isnull=False).count()


def judges_report(stats: dict, prefer: Callable[[str, str, str], str], runs: list[dict]) -> list[dict]:
    """Return, per judge in ``stats`` (``/stats/judges/``): its audit beside its true agreement with the raters' judge.

    True agreement: of the judge's verdicts that chose a reply, the share naming the reply the
    raters' judge prefers without noise (pairs it scores equal left out), over all of them and over
    those at least as confident as the threshold. ``runs``: the bench's finished training runs, for
    the AI labels each one counted.
    """
    from feedback_app.models import Verdict

    report = []
    for row in stats["judges"]:
        judge = row["judge"]
        verdicts = (Verdict.objects.filter(judge_version__judge__name=judge["name"], abstained=False)
                    .select_related("comparison__prompt", "comparison__response_a", "comparison__response_b"))
        truth = [(v.choice, v.confidence, prefer(v.comparison.prompt.text, v.comparison.response_a.text, v.comparison.response_b.text))
                 for v in verdicts]
        truth = [(choice, confidence, best) for choice, confidence, best in truth if best in ("a", "b")]
        confident = [t for t in truth if t[1] >= judge["confidence_threshold"]]
        source = f"ai:{judge['name']}"
        report.append({
            "judge": judge["name"], "kind": judge["kind"], "threshold": judge["confidence_threshold"], "n_verdicts": row["n_verdicts"],
            "abstention_rate": row["abstention_rate"], "audits": row["n_audits"], "audit_agreement": row["agreement"],
            "trusted": row["trust"]["trusted"], "trust": row["trust"]["reason"],
            "true_agreement": _share(truth), "true_agreement_confident": _share(confident), "n_true": len(truth), "n_true_confident": len(confident),
            "labels_in_training": [{"run": run["id"], "kind": run["kind"], "promoted": run["promoted"],
                                    "ai_labels": (run["metrics"].get("ai_labels") or {}).get(source, 0)} for run in runs],
        })
    return report


def _share(rows: list[tuple]) -> float | None:
    return round(sum(choice == best for choice, _, best in rows) / len(rows), 4) if rows else None


def print_judges(report: list[dict]) -> None:
    for j in report:
        counted = [f"run {r['run']} ({r['kind']}, promoted={r['promoted']}): {r['ai_labels']}" for r in j["labels_in_training"] if r["ai_labels"]]
        print(f"judge {j['judge']} ({j['kind']}, threshold {j['threshold']}): {j['n_verdicts']} verdicts, abstained {j['abstention_rate']}; "
              f"audit agreement {j['audit_agreement']} over {j['audits']} audits; true agreement {j['true_agreement']} "
              f"({j['n_true']}), confident {j['true_agreement_confident']} ({j['n_true_confident']}); trusted {j['trusted']}: {j['trust']}; "
              f"its labels in training: {'; '.join(counted) or 'none'}", flush=True)
