"""`Adapter`: a task's LoRA weights on a shared base model, with predict, evaluate and generate."""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from prompts import Example, ShopLoRAError, TaskSpec

from .base import Base
from .generation import generate_with, stream_with
from .lora import LoraSettings, add_lora, load_lora_state, lora_state, remove_lora
from .metrics import METRICS, argmax, expected_calibration_error, softmax
from .record import AdapterRecord
from .scoring import label_scores

ABSTAIN = "abstain"
_names = itertools.count()


@dataclass
class Prediction:
    """One answer; `text` is the answer given, for every kind (`to_dict()["prediction"]`). Classify: `label` is that
    answer too (the best label, or "abstain" below `abstain_below`), `best_label` the highest-scoring label whatever
    the threshold, `confidence` its probability, `scores` the probability per label. Extract: `value` is the parsed
    JSON. Generate: only `text`."""

    text: str
    label: str | None = None  # classify: the answer given, "abstain" included
    confidence: float | None = None  # classify: the probability of `best_label`
    scores: dict[str, float] = field(default_factory=dict)
    value: Any = None
    error: str | None = None  # extract: why the answer could not be parsed as JSON
    best_label: str | None = None  # classify: the highest-scoring label, even when the answer is "abstain"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"prediction": self.label if self.label is not None else self.text}
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 4)
        if self.scores:
            out["scores"] = {k: round(v, 4) for k, v in self.scores.items()}
        if self.value is not None:
            out["value"] = self.value
        if self.error is not None:
            out["error"] = self.error
        return out


class ExtractionError(ShopLoRAError):
    """The model's answer to an extract task is not valid JSON."""


class Adapter:
    """LoRA weights for one task, loaded as a named adapter on `base`'s shared PeftModel."""

    def __init__(
        self,
        base: Base,
        spec: TaskSpec,
        state: dict[str, Any] | None,
        settings: LoraSettings,
        record: AdapterRecord,
        temperature: float = 1.0,
    ):
        """`state=None` keeps PEFT's standard init (A random, B = 0): the "no meta init" baseline. `record` is what
        is saved with it (see adapters.record)."""
        self.base = base
        self.spec = spec
        self.settings = settings
        self.record = record
        self.temperature = temperature
        # PEFT adapter names must not be substrings of "lora_": a prefix keeps every name clear of that.
        self.peft_name = self.new_weights(state)
        # Scenario name -> the PEFT adapter holding its weights (shared by `scenario()` views). `update` gives a new
        # scenario a set of its own; with `own_weights=False` it shares the current set (trained with replay).
        self.weights: dict[str, str] = {spec.name: self.peft_name}

    # -- weights ----------------------------------------------------------------------------------------------
    def new_weights(self, state: dict[str, Any] | None) -> str:
        """A new PEFT adapter on the base holding `state` (None: PEFT's standard init); returns its name."""
        name = f"shoplora-{next(_names)}"
        with self.base.lock:
            try:
                add_lora(self.base, name, self.settings)
                if state is not None:
                    load_lora_state(self.base.peft, state, name)
            except BaseException:
                # Tensors that do not fit (another rank, a broken file) fail after the LoRA was added: left on the
                # shared base, every retry of a broken adapter (a server request each) would keep another copy.
                remove_lora(self.base, name)
                raise
        return name

    def state(self) -> dict[str, Any]:
        """The LoRA tensors that answer this adapter's current scenario."""
        self._check_loaded()
        return lora_state(self.base.peft, self.peft_name)

    def unload(self) -> None:
        """Free this adapter's weights on the base model; the object cannot predict afterwards."""
        with self.base.lock:
            for peft_name in {self.peft_name, *self.weights.values()}:
                remove_lora(self.base, peft_name)

    def activate(self) -> Any:
        self._check_loaded()
        self.base.peft.set_adapter(self.peft_name)
        return self.base.peft

    def _check_loaded(self) -> None:
        """After `unload()` the weights are gone from the base: say so instead of PEFT's bare KeyError."""
        if self.base.peft is None or self.peft_name not in self.base.peft.peft_config:
            raise ShopLoRAError(
                "this adapter was unloaded (adapter.unload() freed its weights); load it again to "
                "use it, e.g. load_adapter(name, store=store)"
            )

    # -- prediction -------------------------------------------------------------------------------------------
    def predict(
        self, inputs: Sequence[str] | str, *, abstain_below: float | None = None, batch_size: int = 8
    ) -> list[Prediction]:
        """Answer each input. Classify tasks score every label; below `abstain_below` confidence the label is
        "abstain" (hand the case to a human). Example: `adapter.predict(["where is my parcel??"])`."""
        inputs = as_texts(inputs)
        if self.spec.kind == "classify":
            return [self._classify(scores, abstain_below) for scores in self.label_scores(inputs, batch_size)]
        texts = self.generate(inputs, batch_size=batch_size)
        if self.spec.kind == "extract":
            return [_extracted(text) for text in texts]
        return [Prediction(text) for text in texts]

    def label_scores(self, inputs: Sequence[str], batch_size: int = 8) -> list[list[float]]:
        """Each input's score per label (log-likelihoods; contextually calibrated when the adapter was adapted with
        `contextual_calibration`, as `adapt` does by default: see adapters.scoring)."""
        inputs = as_texts(inputs)
        with self.base.lock:
            return label_scores(
                self.activate(),
                self.base.tokenizer,
                self.spec,
                inputs,
                batch_size=batch_size,
                calibrate=self.contextual_calibration,
            )

    @property
    def contextual_calibration(self) -> bool:
        # Adapters saved before it existed lack the key (read as False): their temperatures were fitted on raw scores.
        return self.record.contextual_calibration

    def _classify(self, scores: Sequence[float], abstain_below: float | None) -> Prediction:
        probabilities = softmax(scores, self.temperature)
        best = argmax(probabilities)
        best_label = self.spec.labels[best]
        answer = ABSTAIN if abstain_below is not None and probabilities[best] < abstain_below else best_label
        return Prediction(
            answer, answer, probabilities[best], dict(zip(self.spec.labels, probabilities)), best_label=best_label
        )

    def generate(self, inputs: Sequence[str], *, max_new_tokens: int = 96, batch_size: int = 8) -> list[str]:
        """Greedy answers with this adapter (for classify tasks too: the label as free text)."""
        inputs = as_texts(inputs)
        with self.base.lock:
            return generate_with(
                self.activate(),
                self.base.tokenizer,
                self.spec,
                inputs,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
            )

    def stream(self, text: str, *, max_new_tokens: int = 96) -> Iterator[str]:
        """The answer to one input, piece by piece as it is generated. It holds the model's lock until it is done:
        read it on one thread, and `close()` it if you stop early (other users of the base wait until then). For
        many concurrent readers use `serve.engine.Engine`, which streams from its own worker thread."""
        with self.base.lock:
            yield from stream_with(self.activate(), self.base.tokenizer, self.spec, text, max_new_tokens=max_new_tokens)

    def update(self, examples: Any, **kwargs: Any) -> "Adapter":
        """Learn new examples or a new scenario without forgetting the earlier ones (replay); see `adapt.update`."""
        from .continual import update

        return update(self, examples, **kwargs)

    @property
    def scenarios(self) -> list[str]:
        """Names of the scenarios this adapter learned (one unless `update` added more), the current one last."""
        names = list(self.record.scenarios)
        return names if names else [self.spec.name]

    def scenario(self, name: str) -> "Adapter":
        """This adapter answering scenario `name` (its instruction, labels, calibration and weights: its own, as
        `update` gives a new scenario by default, or the set it shares with the scenarios learned alongside it).
        Example: `adapter.scenario("service-intent-petshop").predict(["my cat's food never came"])`."""
        if name == self.spec.name:
            return self
        known = self.record.scenarios.get(name)
        if known is None:
            raise ShopLoRAError(f"this adapter has no scenario {name!r}; it has: {', '.join(self.scenarios)}")
        view = copy.copy(self)  # shares the weights, the base and the record
        view.spec, view.temperature = known.spec, known.temperature
        view.peft_name = self.weights.get(name, self.peft_name)
        return view

    # -- evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, examples: Sequence[Example]) -> dict[str, float]:
        """Accuracy and macro-F1 (classify, plus ECE), or exact match and token F1 (extract, generate)."""
        gold = [e.output for e in examples]
        if self.spec.kind == "classify":
            predictions = self.predict([e.input for e in examples])
            predicted = [p.label for p in predictions]
            correct = [p == g for p, g in zip(predicted, gold)]
            return {
                "accuracy": METRICS["accuracy"](predicted, gold),
                "macro_f1": METRICS["macro_f1"](predicted, gold),
                "ece": expected_calibration_error([p.confidence for p in predictions], correct),
                "n": len(gold),
            }
        predicted = self.generate([e.input for e in examples])
        return {
            "exact_match": METRICS["exact_match"](predicted, gold),
            "token_f1": METRICS["token_f1"](predicted, gold),
            "n": len(gold),
        }


def as_texts(inputs: Any) -> list[str]:
    """`inputs` (one text or a sequence of them) as a list of strings; anything else is refused here, naming the first
    bad item, instead of failing inside the chat template with a message about a 'dict object'."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, (bytes, dict)) or not isinstance(inputs, Iterable):
        raise ShopLoRAError(
            f"inputs must be a text or a list of texts, got a {type(inputs).__name__}; e.g. "
            'adapter.predict(["where is my parcel?"])'
        )
    texts = list(inputs)
    for number, text in enumerate(texts):
        if not isinstance(text, str):
            shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:40] + "..."
            hint = " (pass example.input)" if isinstance(text, Example) else ""
            raise ShopLoRAError(
                f"inputs[{number}] is {shown} ({type(text).__name__}), not a text{hint}; "
                'every input must be a string, e.g. adapter.predict(["where is my parcel?"])'
            )
    return texts


def _extracted(text: str) -> Prediction:
    try:
        return Prediction(text, value=parse_json(text))
    except ExtractionError as error:  # one bad answer must not lose the rest of the batch
        return Prediction(text, error=str(error))


def parse_json(text: str) -> Any:
    """The JSON value of an extract answer; a clear error when the model's answer is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ExtractionError(
            f"the model's answer is not valid JSON ({error.msg} at column {error.colno}): {text!r}; "
            "adapt with more examples or check that the training outputs are JSON"
        ) from None
