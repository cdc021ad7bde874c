"""The model card (`README.md`) of an adapter folder: Hub metadata, and what a plain transformers + PEFT (or vLLM)
user needs to get ShopLoRA's answers: the exact system prompt, the label list, how labels are scored, and code
that runs as written."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from prompts import TaskSpec
from prompts.render import system_prompt

from .record import AdapterRecord, AnyRecord, InitRecord

CARD_PIPELINE = "text-generation"  # a causal LM answering in text, whatever the task kind
CONTENT_FREE = ("N/A", "[MASK]", "")  # adapters.scoring.CONTENT_FREE: kept equal by tests/test_export.py


def hub_id(model_id: str) -> bool:
    """True for a Hub id (`org/name`), False for a local folder, which Hub metadata must not name."""
    return not (os.path.isabs(model_id) or model_id.startswith((".", "~")) or os.path.exists(model_id))


def metrics_of(record: AnyRecord) -> dict[str, float]:
    """The held-out metrics of the adapter's latest fit (an `update` records its own), scalars only."""
    return {k: v for k, v in record.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def front_matter(name: str, base_model_id: str, record: AnyRecord) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    tags = ["lora", "peft", "shoplora", "transformers"]
    if hub_id(base_model_id):
        meta["base_model"] = base_model_id
        tags.insert(0, f"base_model:adapter:{base_model_id}")
    meta.update(library_name="peft", pipeline_tag=CARD_PIPELINE, tags=tags)
    metrics = metrics_of(record)
    if isinstance(record, AdapterRecord) and metrics:
        spec = record.spec
        kind = "text-classification" if spec.kind == "classify" else "text-generation"
        meta["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": kind, "name": spec.name},
                        "dataset": {
                            "type": "custom",
                            "name": f"held-out part of the {record.n_examples} training examples",
                            "split": "held-out",
                        },
                        "metrics": [
                            {"type": key.removeprefix("held_out_"), "name": key, "value": round(float(value), 4)}
                            for key, value in metrics.items()
                        ],
                    }
                ],
            }
        ]
    return meta


def model_card(name: str, base_model_id: str, record: AnyRecord) -> str:
    """README.md of adapter folder `name`: front matter, what it is, and how to reproduce its answers."""
    lines = [
        "---",
        yaml.safe_dump(front_matter(name, base_model_id, record), sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A ShopLoRA LoRA adapter for `{base_model_id}`.",
    ]
    lines += _facts(record)
    if not isinstance(record, AdapterRecord):  # an init: no task to reproduce
        lines += [
            "",
            'Load it with ShopLoRA (`adapt(..., init="<this folder>")`) or plain PEFT:',
            "",
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM",
            "",
            f"base_model = AutoModelForCausalLM.from_pretrained({base_model_id!r})",
            f"model = PeftModel.from_pretrained(base_model, {name!r})  # this folder",
            "```",
            "",
        ]
        return "\n".join(lines)
    lines += [
        "",
        "## The prompt",
        "",
        "ShopLoRA asks the model through the base model's chat template: the system turn below, the input as "
        "the user turn, the answer as the assistant turn. Use exactly this system prompt:",
        "",
        "```text",
        system_prompt(record.spec),
        "```",
    ]
    spec = record.spec
    if spec.kind == "classify":
        lines += [
            "",
            f"Labels ({len(spec.labels)}): " + ", ".join(f"`{label}`" for label in spec.labels),
            "",
            "ShopLoRA does not parse free text: it scores each label as the assistant's whole answer (the "
            "label's tokens and the chat template's end-of-turn, the prompt and answer tokenised apart) and "
            "takes the most likely. " + _calibration_note(record),
        ]
    lines += [
        "",
        "## Use it with transformers + PEFT",
        "",
        "```python",
        _snippet(name, base_model_id, spec, record),
        "```",
        "",
        'With ShopLoRA: `load_adapter("<this folder>").predict([...])`; served by vLLM or LoRAX: '
        "`shoplora export NAME --for vllm OUT` (send the system prompt above with every request).",
        "",
    ]
    return "\n".join(lines)


def _calibration_note(record: AdapterRecord) -> str:
    if record.contextual_calibration:
        return (
            "Its label scores use contextual calibration: each input's label probabilities are divided by their "
            "mean on the content-free inputs " + ", ".join(repr(t) for t in CONTENT_FREE) + " under the same "
            "prompt (the code below does the same)."
        )
    return "Confidence is the softmax of the label scores divided by the temperature below."


def _facts(record: AnyRecord) -> list[str]:
    lines = []
    if isinstance(record, AdapterRecord):
        lines += ["", f"- task: {record.spec.kind} — {record.spec.instruction}"]
        if record.spec.labels:
            lines.append(f"- labels: {', '.join(record.spec.labels)}")
        if record.init:
            lines.append(f"- trained from: {record.init}")
    if isinstance(record, InitRecord):
        lines += [
            f"- meta-trained init: {record.algorithm} over {len(record.tasks)} tasks of "
            f"{record.suite}, on {record.device} in {(record.seconds or 0) / 60:.0f} min "
            f"({record.created})",
            f"- inner loop reused at adaptation: "
            f"{json.dumps(record.inner_loop.to_dict() if record.inner_loop else None)}",
        ]
        if record.trained_on:
            lines.append(f"- {record.trained_on}")
        if record.metrics:
            lines.append(f"- metrics: {json.dumps(record.metrics)}")
        return lines
    scenarios = record.scenarios
    if len(scenarios) > 1:
        lines.append(
            "- scenarios: "
            + ", ".join(
                f"{name} ({'these weights' if scenario.weights in (None, '.') else scenario.weights + '/'})"
                for name, scenario in scenarios.items()
            )
            + "; the prompt below is the latest scenario's"
        )
    if record.n_examples:
        lines.append(f"- examples: {record.n_examples}")
    if record.contextual_calibration:
        lines.append(
            "- label scores use contextual calibration (ShopLoRA divides out each label's probability on "
            "content-free inputs)"
        )
    if record.metrics:
        lines.append(f"- metrics: {json.dumps(record.metrics)}")
    return lines


def _snippet(name: str, base_model_id: str, spec: TaskSpec, record: AdapterRecord) -> str:
    """Code that runs as written once the base model and this folder are reachable (ADAPTER: the folder's path or
    its Hub repo)."""
    head = [
        "import torch",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f"BASE_MODEL = {base_model_id!r}",
        f"ADAPTER = {name!r}  # this folder's path, or its Hub repo id",
        f"SYSTEM_PROMPT = {system_prompt(spec)!r}",
        "",
        "tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)",
        "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE_MODEL), ADAPTER).eval()",
        "",
        "",
        "def prompt_ids(text):",
        "    turns = [{'role': 'system', 'content': SYSTEM_PROMPT}, {'role': 'user', 'content': text}]",
        "    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)",
        "    return turns, prompt, tokenizer(prompt, add_special_tokens=False)['input_ids']",
        "",
    ]
    if spec.kind != "classify":
        return "\n".join(
            head
            + [
                "",
                "def answer(text, max_new_tokens=96):  # greedy, as ShopLoRA generates",
                "    ids = torch.tensor([prompt_ids(text)[2]])",
                "    with torch.no_grad():",
                "        out = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=False)",
                "    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()",
                "",
                "",
                'print(answer("your customer\'s message"))',
            ]
        )
    return "\n".join(
        head
        + [
            f"LABELS = {list(spec.labels)!r}",
            f"TEMPERATURE = {float(record.temperature)!r}",
            f"CONTEXTUAL_CALIBRATION = {record.contextual_calibration!r}",
            "",
            "",
            "def label_scores(text):",
            '    """Log-likelihood of each label as the whole answer, end-of-turn included."""',
            "    turns, prompt, ids = prompt_ids(text)",
            "    scores = []",
            "    for label in LABELS:",
            "        full = tokenizer.apply_chat_template(turns + [{'role': 'assistant', 'content': label}], "
            "tokenize=False)",
            "        answer = tokenizer(full[len(prompt):].rstrip(), add_special_tokens=False)['input_ids']",
            "        with torch.no_grad():",
            "            logits = model(torch.tensor([ids + answer])).logits[0, len(ids) - 1:-1]",
            "        scores.append(logits.log_softmax(-1)[torch.arange(len(answer)), answer].sum())",
            "    return torch.stack(scores)",
            "",
            "",
            "def classify(text):",
            "    scores = label_scores(text)",
            "    if CONTEXTUAL_CALIBRATION:  # divide out the labels' prior on content-free inputs",
            f"        prior = torch.stack([label_scores(t).softmax(-1) for t in {list(CONTENT_FREE)!r}]).mean(0)",
            "        scores = scores.log_softmax(-1) - prior.log()",
            "    probabilities = (scores / TEMPERATURE).softmax(-1)",
            "    best = int(probabilities.argmax())",
            "    return LABELS[best], float(probabilities[best])",
            "",
            "",
            'print(classify("your customer\'s message"))',
        ]
    )
