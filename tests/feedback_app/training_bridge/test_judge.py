"""The local judge's chat model, from a folder: a tiny Llama saved offline answers each question, once loaded per holder."""

import pytest

from feedback_app import training_bridge


@pytest.fixture
def tiny_chat_folder(tmp_path):
    from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

    tiny_llama(max_positions=1024).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    return str(tmp_path)


def test_the_local_judge_answers_each_question_and_is_loaded_once(tiny_chat_folder, settings):
    settings.JUDGE_MAX_TOKENS, settings.TRAINING_DEVICE = 16, "cpu"
    models = training_bridge.ModelHolder()
    questions = [[{"role": "system", "content": "Judge."}, {"role": "user", "content": "1 or 2?"}], [{"role": "user", "content": "Hi"}]]
    answers = training_bridge.judge_chat_answers(model_folder=tiny_chat_folder, questions=questions, models=models)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    generator = models.judge_generator(tiny_chat_folder)
    assert training_bridge.judge_chat_answers(model_folder=tiny_chat_folder, questions=questions, models=models) == answers
    assert models.judge_generator(tiny_chat_folder) is generator
