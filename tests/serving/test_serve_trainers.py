"""The same (prompt, response) gets the same reward from /score, /get_reward as OpenRLHF sends it, the Python client,
`rewardkit score` and RewardModel.score; and the trainers' own code (TRL's GRPOTrainer, OpenRLHF's remote reward
client, a verl custom reward function) gets exactly those rewards from a live server on loopback.

OpenRLHF's request (openrlhf/utils/agent.py, SingleTurnAgentExecutor): prompt token ids from
`tokenizer(prompt, add_special_tokens=False)`, left-truncated to the prompt budget, plus the generated ids (ending
in EOS), decoded with `skip_special_tokens=False`; POSTed as {"query": [query], "prompts": [prompt], "labels":
[label]}, one sample per request, with "rewards" (and "scores") read back. Older versions decoded left-padded batches,
so queries could also start with pad tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import types

import pytest
import torch

from rewardkit.cli import main as rewardkit_main
from rewardkit.client import RewardClient, make_reward_fn
from tests.conftest import REPO_ROOT
from tests.serving.helpers import call, expected

PROMPT = "Human: What is the capital of France?\n\nAssistant:"
RESPONSE = " The capital of France is Paris."
LONG_PROMPT = "Human: " + " ".join(f"Tell me a joke about the quick brown fox number {i}." for i in range(6)) + \
    "\n\nAssistant:"
ACCENTED_PROMPT = "Human: Is the cafe\u0301 in Paris open?\n\nAssistant:"  # "e" + combining acute: decomposed
ACCENTED_RESPONSE = " Yes, the cafe\u0301 is open."


def openrlhf_query(tokenizer, prompt: str, response: str, max_prompt_tokens: int | None = None) -> str:
    """The query OpenRLHF sends: prompt ids (left-truncated) + generated ids + EOS, decoded with special tokens."""
    prompt_ids = tokenizer(text=prompt, add_special_tokens=False)["input_ids"]
    if max_prompt_tokens is not None:
        prompt_ids = prompt_ids[-max_prompt_tokens:]
    generated = tokenizer(text=response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return tokenizer.decode(prompt_ids + generated, skip_special_tokens=False)


def generated_text(tokenizer, response: str) -> str:
    """The response as the trainer holds it: its generated ids decoded without special tokens."""
    return tokenizer.decode(tokenizer(text=response, add_special_tokens=False)["input_ids"], skip_special_tokens=True)


CASES = {
    "plain": (PROMPT, RESPONSE, None),
    "bos-in-prompt-text": ("<s>" + PROMPT, RESPONSE, None),  # chat templates write BOS as text
    "decomposed-accents": (ACCENTED_PROMPT, ACCENTED_RESPONSE, None),
    "left-truncated-prompt": (LONG_PROMPT, RESPONSE, 12),
}


@pytest.mark.parametrize("case", CASES)
def test_openrlhf_request_gets_the_reward_of_score(server, model, case):
    prompt, response, budget = CASES[case]
    query = openrlhf_query(model.tokenizer, prompt, response, budget)
    assert query.endswith(model.tokenizer.eos_token)
    if case in ("decomposed-accents", "left-truncated-prompt"):
        assert prompt not in query  # normalized by the tokenizer, or cut by the trainer
    status, _, body = call(server.url, "POST", "/get_reward", {"query": [query], "prompts": [prompt], "labels": [""]})
    assert status == 200, body
    want = expected(model, [prompt], [generated_text(model.tokenizer, response)])
    assert body["rewards"] == pytest.approx(want, abs=1e-5) and body["scores"] == body["rewards"]
    status, _, scored = call(server.url, "POST", "/score", {"prompts": [prompt], "responses": [response]})
    assert status == 200 and scored["rewards"] == pytest.approx(body["rewards"], abs=1e-5)


def test_the_special_tokens_would_have_changed_the_reward(model):
    """What /get_reward used to score (the query with its EOS) is a different reward: the cases above test something."""
    with_eos = expected(model, [PROMPT], [RESPONSE + model.tokenizer.eos_token])
    assert with_eos != pytest.approx(expected(model, [PROMPT], [RESPONSE]), abs=1e-3)


def test_batched_and_padded_queries_of_older_openrlhf(server, model):
    tokenizer, pad = model.tokenizer, model.tokenizer.pad_token
    prompts = [PROMPT, ACCENTED_PROMPT, LONG_PROMPT]
    responses = [RESPONSE, ACCENTED_RESPONSE, " No."]
    queries = [pad * 2 + openrlhf_query(tokenizer, p, r, 16) + pad * 3 for p, r in zip(prompts, responses, strict=True)]
    payload = {"query": queries, "prompts": prompts, "labels": [""] * 3}
    status, _, body = call(server.url, "POST", "/get_reward", payload)
    assert status == 200
    want = expected(model, prompts, [generated_text(tokenizer, r) for r in responses])
    assert body["rewards"] == pytest.approx(want, abs=1e-5)


def test_every_way_of_scoring_agrees(server, model, rm_dir, tmp_path):
    prompts = [PROMPT, "<s>" + PROMPT, ACCENTED_PROMPT, LONG_PROMPT]
    responses = [RESPONSE, " Paris.", ACCENTED_RESPONSE, " Why did the fox cross the road?"]
    want = expected(model, prompts, responses)
    client = RewardClient(server.url)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in zip(prompts, responses,
                                                                                             strict=True)))
    assert rewardkit_main(["score", "--model", str(rm_dir), "--data", str(data), "--output", str(tmp_path / "out"),
                           "--no-progress"]) == 0
    from_cli = [json.loads(line)["reward"] for line in (tmp_path / "out").read_text().splitlines()]
    queries = [openrlhf_query(model.tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    from_openrlhf = call(server.url, "POST", "/get_reward", {"query": queries, "prompts": prompts})[2]["rewards"]
    for name, rewards in {"client": client.score(prompts, responses), "rewardkit score": from_cli,
                          "/score": call(server.url, "POST", "/score", {"prompts": prompts,
                                                                        "responses": responses})[2]["rewards"],
                          "/get_reward": from_openrlhf}.items():
        assert rewards == pytest.approx(want, abs=1e-5), name


def test_a_query_that_does_not_continue_its_prompt_is_a_422(server, model):
    query = openrlhf_query(model.tokenizer, "Human: something else entirely\n\nAssistant:", RESPONSE)
    status, _, body = call(server.url, "POST", "/get_reward", {"query": [query], "prompts": [PROMPT]})
    assert status == 422 and body["field"] == "query[0]"


# ---------------------------------------------------------------------------------------------- the trainers' code
class _TinyEngine:
    """Stands in for OpenRLHF's vLLM engine on a CPU: greedy generation with a real (tiny) causal LM, ending in EOS
    as vLLM does when the policy stops."""

    def __init__(self, policy, tokenizer):
        self.policy, self.tokenizer = policy, tokenizer

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        tok = self.tokenizer
        with torch.no_grad():
            out = self.policy.generate(torch.tensor([prompt_token_ids]), max_new_tokens=sampling_params.max_tokens,
                                       do_sample=False, suppress_tokens=[tok.bos_token_id, tok.pad_token_id],
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        ids = out[0, len(prompt_token_ids):].tolist()
        ids = ids[: ids.index(tok.eos_token_id)] if tok.eos_token_id in ids else ids
        ids.append(tok.eos_token_id)
        completion = types.SimpleNamespace(token_ids=ids, text=tok.decode(ids), finish_reason="stop", logprobs=None)
        return types.SimpleNamespace(outputs=[completion])


def test_openrlhf_remote_reward_client_gets_the_reward_of_score(server, model, tiny_sft):
    agent = pytest.importorskip("openrlhf.utils.agent", reason="OpenRLHF (installed by .ci/run with --no-deps)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    engine = _TinyEngine(AutoModelForCausalLM.from_pretrained(tiny_sft), tokenizer)
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=f"{server.url}/get_reward")
    sampling = types.SimpleNamespace(max_tokens=6, logprobs=None)
    for prompt, max_length in [(PROMPT, 64), (ACCENTED_PROMPT, 64), (LONG_PROMPT, 24)]:  # 24: OpenRLHF truncates
        output = asyncio.run(executor.execute(prompt, "", sampling, max_length, tokenizer, engine))
        response_ids = output["observation_tokens"][output["action_ranges"][0][0]:]
        response = tokenizer.decode(response_ids, skip_special_tokens=True)
        assert output["reward"] is not None, "OpenRLHF got no reward (it logs and drops failed requests)"
        assert output["reward"] == pytest.approx(expected(model, [prompt], [response]), abs=1e-5), prompt
        assert output["scores"] == output["reward"]


def test_verl_custom_reward_function_gets_the_reward_of_score(server, model):
    spec = importlib.util.spec_from_file_location("verl_reward_fn", REPO_ROOT / "examples" / "verl_reward_fn.py")
    reward_fn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reward_fn)
    # NaiveRewardManager: one call per response, keyword arguments, extra_info extended by verl itself.
    extra = {"prompt": PROMPT, "index": 0, "num_turns": None, "rollout_reward_scores": {}}
    score = reward_fn.compute_score(data_source="hh", solution_str=RESPONSE, ground_truth=None, extra_info=extra,
                                    url=server.url)
    assert score == pytest.approx(expected(model, [PROMPT], [RESPONSE])[0], abs=1e-5)
    # BatchRewardManager: lists, one request; GSM8K-style data keeps the prompt as "question".
    infos = [{"question": PROMPT}, {"prompt": ACCENTED_PROMPT}]
    scores = reward_fn.compute_score_batch(data_sources=["a", "b"], solution_strs=[RESPONSE, ACCENTED_RESPONSE],
                                           ground_truths=[None, None], extra_infos=infos, url=server.url)
    assert scores == pytest.approx(expected(model, [PROMPT, ACCENTED_PROMPT], [RESPONSE, ACCENTED_RESPONSE]),
                                   abs=1e-5)
    with pytest.raises(ValueError, match="extra_info"):
        reward_fn.compute_score(data_source="hh", solution_str=RESPONSE, extra_info={}, url=server.url)


class _RecordingClient(RewardClient):
    def __init__(self, url: str):
        super().__init__(url)
        self.calls: list[tuple[list, list, list[float]]] = []

    def score(self, prompts, responses):
        rewards = super().score(prompts, responses)
        self.calls.append((list(prompts), list(responses), rewards))
        return rewards


def test_trl_grpo_trains_against_a_live_server(server, model, tiny_sft, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    client = _RecordingClient(server.url)
    config = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                        max_completion_length=8, max_steps=2, logging_steps=1, report_to="none", use_cpu=True,
                        save_strategy="no", seed=0, disable_tqdm=True)
    prompts = Dataset.from_dict({"prompt": [f"Human: Tell me about the fox number {i}.\n\nAssistant:"
                                            for i in range(8)]})
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_sft), args=config, train_dataset=prompts,
                          reward_funcs=make_reward_fn(client), processing_class=AutoTokenizer.from_pretrained(tiny_sft))
    try:
        trainer.train()
    finally:  # TRL's Accelerator state is process-wide: leave none behind for later tests' training runs
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    assert len(client.calls) == 2  # one generation batch per step
    logged = [entry["rewards/reward_model/mean"] for entry in trainer.state.log_history
              if "rewards/reward_model/mean" in entry]
    for (batch_prompts, completions, rewards), mean in zip(client.calls, logged, strict=True):
        assert rewards == pytest.approx(expected(model, batch_prompts, completions), abs=1e-5)
        assert mean == pytest.approx(sum(rewards) / len(rewards), abs=1e-5)  # what TRL optimized is what we served
