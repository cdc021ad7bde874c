"""`Engine`: many LoRA adapters served from one base model, one request at a time or as mixed batches.

The base model is loaded once. Stored adapters load on first use and at most `max_loaded` stay in memory (least
recently used out first); "base" is the model without LoRA and "meta-init" the init new scenarios are adapted from
(the shipped default init unless the server was told another; the name is kept for clients that use it). All model work
runs on one worker thread that takes the base's lock per job, so concurrent users never see each other's adapter:
generation requests waiting together run as one batch whose rows may use different adapters (`serve.mixed`: per-row
LoRA as batched matmuls), and a stream runs on that thread too, so its lock never crosses threads; a stream whose reader
leaves (closes, stops or drops it) ends at the next token, and one still waiting never starts. Classification and
adaptation run in the caller's thread under the same lock. At most `max_pending` requests wait; the next one gets
`EngineBusy` at once instead of waiting forever. Example:

    engine = Engine(load_base(), AdapterStore("adapters_store"))
    engine.generate([{"role": "user", "content": "where is my parcel?"}], adapter="acme-returns").text
"""

from __future__ import annotations

import copy
import queue
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from adapters import Adapter, AdapterStore, Base, Prediction, adapt
from adapters.fit import Phase
from adapters.specs import CALIBRATION, needs_calibration
from adapters.files import check_name, read_record
from adapters.generation import base_only, generate_prompts, stream_prompt
from adapters.inits import DEFAULT, resolve_init, shipped_inits
from adapters.recipe import DEFAULT_RECIPE
from adapters.record import AdapterRecord
from prompts import Example, ShopLoRAError, TaskSpec
from prompts.render import prompt_ids

from .mixed import mixed_lora

BASE = "base"
META_INIT = "meta-init"
STANDARD_INIT = "none"  # PEFT's standard LoRA init, as the CLI's --init none
CHAT_INSTRUCTION = (
    "You are a helpful customer-service assistant for an online shop. Answer the customer briefly and politely."
)
MAX_MESSAGE_CHARS = 8000  # per message: far past any support message, and well inside the embedded model's context
ROLES = ("system", "developer", "user", "assistant")
SYSTEM_ROLES = ("system", "developer")  # OpenAI's newer name for the system turn: the same thing here
MAX_STOP_SEQUENCES = 4  # as OpenAI allows


class EngineError(ShopLoRAError):
    """A request the engine cannot serve as asked (bad messages, unknown adapter...): the message says why."""


class UnknownAdapter(EngineError):
    """No adapter of that name in the store (nor base / meta-init)."""


class EngineBusy(EngineError):
    """Too many requests are waiting; the caller should try again shortly."""


@dataclass(frozen=True)
class AdapterInfo:
    """What a served name is: its kind, label set and instruction (the system turn it was trained with)."""

    name: str
    kind: str
    instruction: str
    labels: tuple[str, ...] = ()
    init: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "instruction": self.instruction,
            "labels": list(self.labels),
            "init": self.init,
        }


@dataclass
class Reply:
    """A finished answer: `text`, the `prediction` of a classify adapter, and token counts for usage reports."""

    text: str
    adapter: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "length" when the answer hit max_new_tokens
    prediction: Prediction | None = None


@dataclass
class _Job:
    adapter: str
    spec: TaskSpec
    input: str
    shots: list[Example]
    max_new_tokens: int
    stream: "queue.Queue[Any] | None" = None  # pieces, then _DONE or an exception; None for a batched request
    stop: tuple[str, ...] = ()  # stop sequences: the answer ends before the first one
    prompt_tokens: int = 0  # set by the worker once the prompt is built
    cut: bool = False  # set by the worker when the answer was cut at a stop sequence
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def abandon(self) -> None:
        """The reader is gone: generation ends after its current token (a job still waiting never starts), and a
        reader thread blocked waiting for the next piece wakes up. Safe from any thread."""
        if not self.abandoned.is_set():
            self.abandoned.set()
            if self.stream is not None:
                self.stream.put(_DONE)


_DONE = object()


class Stream:
    """An answer piece by piece (iterate it; `close()` or `stop()` ends the generation, and so does dropping the
    Stream). Once it is exhausted, `reply` is the whole answer as a Reply: finish reason, token counts and, for a
    classify adapter, the prediction."""

    def __init__(
        self, pieces: Iterator[str], finish: Callable[[str], Reply], stop: Callable[[], None] | None = None
    ) -> None:
        self._pieces, self._finish, self._text = pieces, finish, []
        # A reader that drops the Stream unread (a closed browser tab, an HTTP response never started) must not
        # leave the model generating to max_new_tokens with every other request waiting behind it.
        self._stop = weakref.finalize(self, stop) if stop is not None else None
        self.reply: Reply | None = None

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        try:
            piece = next(self._pieces)
        except StopIteration:
            if self.reply is None:
                self.reply = self._finish("".join(self._text))
            raise
        self._text.append(piece)
        return piece

    def stop(self) -> None:
        """End the generation after its current token. Safe from any thread, also while another one is reading: the
        reader then sees the end of the stream."""
        if self._stop is not None:  # a generator never started does not run its `finally` on close
            self._stop()  # a finalizer runs once: stopping twice is harmless

    def close(self) -> None:
        """Stop and release the stream (from the reader's thread)."""
        self.stop()
        close = getattr(self._pieces, "close", None)
        if close:
            close()


def chat_spec(system: str | None = None) -> TaskSpec:
    """The task spec of free chat with the base model or the meta init: the request's system message, else a shop
    assistant's instruction."""
    return TaskSpec("chat", "custom", "generate", (system or "").strip() or CHAT_INSTRUCTION)


def parse_messages(messages: Any) -> tuple[str | None, list[Example], str]:
    """(system text, earlier user/assistant exchanges, the last user message) of OpenAI-style chat messages.

    Content may be a string or a list of {"type": "text", "text": ...} parts; consecutive messages of one role are
    joined. The conversation must end with a user message."""
    if not isinstance(messages, list) or not messages:
        raise EngineError('\'messages\' must be a non-empty list of {"role": ..., "content": ...} objects')
    system: list[str] = []
    turns: list[list[str]] = []  # [role, text] with roles alternating
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise EngineError(f"message {number} must be an object with 'role' and 'content'")
        role, text = message["role"], _content_text(message["content"], number)
        if role not in ROLES:
            raise EngineError(f"message {number} has role {role!r}; use one of {', '.join(ROLES)}")
        if len(text) > MAX_MESSAGE_CHARS:
            raise EngineError(
                f"message {number} has {len(text)} characters, over the limit of {MAX_MESSAGE_CHARS}; shorten it"
            )
        if role in SYSTEM_ROLES:
            if turns:
                raise EngineError(f"message {number}: a system message must come before the conversation")
            system.append(text)
        elif turns and turns[-1][0] == role:
            turns[-1][1] += "\n\n" + text
        else:
            turns.append([role, text])
    if not turns or turns[-1][0] != "user":
        raise EngineError("the last message must be the user's: it is what the model answers")
    if not turns[-1][1].strip():
        raise EngineError("the last user message is empty; say something to answer")
    if turns[0][0] == "assistant":  # an opening greeting by the assistant has no user turn to pair with
        turns = turns[1:]
    shots = [Example(user, assistant) for (_, user), (_, assistant) in zip(turns[0:-1:2], turns[1:-1:2])]
    return ("\n\n".join(system) or None), shots, turns[-1][1]


def _content_text(content: Any, number: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise EngineError(f"message {number}: 'content' must be a string or a list of text parts")


class Engine:
    """Serve the base model, the meta init and stored adapters. Thread-safe; see the module docstring."""

    def __init__(
        self,
        base: Base,
        store: AdapterStore,
        *,
        meta_init: str | Path | None = DEFAULT,
        max_loaded: int = 4,
        max_pending: int = 16,
        max_batch: int = 8,
        max_new_tokens: int = 256,
        time_limit: float = 60.0,
    ):
        """`max_loaded`: stored adapters kept in memory; `max_pending`: requests waiting or running before new ones
        get EngineBusy; `max_batch`: rows of one generation batch; `max_new_tokens`: the cap of any answer (tokens);
        `time_limit`: seconds one generation may run before it is cut."""
        if max_loaded < 1 or max_pending < 1 or max_batch < 1 or max_new_tokens < 1 or time_limit <= 0:
            raise ShopLoRAError("max_loaded, max_pending, max_batch and max_new_tokens must be >= 1 and time_limit > 0")
        self.base, self.store = base, store
        self.max_loaded, self.max_pending, self.max_batch = max_loaded, max_pending, max_batch
        self.max_new_tokens, self.time_limit = max_new_tokens, time_limit
        self._meta_init_source = meta_init
        self._meta: Adapter | None = None
        self._meta_problem: str | None = None
        self._meta_files = None
        try:
            self._meta_files = resolve_init(meta_init, base)
        except ShopLoRAError as error:  # served without one: "meta-init" is not listed and says why when asked
            self._meta_problem = str(error)
        if self._meta_files is None and self._meta_problem is None:
            self._meta_problem = "the server was started without a meta init (--init none)"
        self._loaded: OrderedDict[str, tuple[Adapter, float]] = OrderedDict()  # name -> (adapter, record mtime)
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._jobs: "queue.Queue[_Job | None]" = queue.Queue()
        self._worker: threading.Thread | None = None
        self._context = getattr(base.model.config, "max_position_embeddings", None) or 2048

    # -- what is served ---------------------------------------------------------------------------------------
    @property
    def meta_init_available(self) -> bool:
        return self._meta_files is not None

    def names(self) -> list[str]:
        """Everything a request may name: "base", "meta-init" (when there is one for this base) and stored adapters."""
        return [BASE, *([META_INIT] if self.meta_init_available else []), *self.store.names()]

    def describe(self, name: str | None) -> AdapterInfo:
        """The kind, labels and instruction of a served name; UnknownAdapter names the ones there are."""
        name = name or BASE
        if name == BASE:
            return AdapterInfo(BASE, "generate", CHAT_INSTRUCTION)
        if name == META_INIT:
            self._check_meta()
            return AdapterInfo(META_INIT, "generate", CHAT_INSTRUCTION, init=self._meta_files.record.name)
        if name not in self.store.names():  # folder names in the store: no path can sneak through
            raise UnknownAdapter(f"no adapter called {name!r}; served: {', '.join(self.names())}")
        try:
            record = self.store.show(name)
        except ShopLoRAError as error:  # there, but broken: say why, not "not found"
            raise EngineError(str(error)) from None
        if not isinstance(record, AdapterRecord):
            raise UnknownAdapter(f"{name!r} in the store is not an adapter (it has no task spec)")
        spec = record.spec
        return AdapterInfo(name, spec.kind, spec.instruction, spec.labels, record.init)

    # -- requests ---------------------------------------------------------------------------------------------
    def generate(
        self,
        messages: list[dict],
        adapter: str | None = None,
        *,
        stream: bool = False,
        max_new_tokens: int | None = None,
        abstain_below: float | None = None,
        stop: str | Sequence[str] = (),
    ) -> Reply | Stream:
        """Answer the last user message of `messages` with `adapter` (None: the base model). Classify adapters answer
        with the scored label (`Reply.prediction`); others generate greedily and end before the first of the `stop`
        sequences (finish reason "stop"). `stream=True` returns a Stream of text pieces."""
        info = self.describe(adapter)
        system, shots, text = parse_messages(messages)
        stops = stop_sequences(stop)
        limit = min(max_new_tokens or self.max_new_tokens, self.max_new_tokens)
        if limit < 1:
            raise EngineError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if info.kind == "classify":
            prediction = self.classify([text], info.name, abstain_below=abstain_below)[0]
            reply = Reply(
                prediction.label, info.name, len(self._prompt(info, None, [], text, 0)), 1, prediction=prediction
            )
            return Stream(iter([reply.text]), lambda text: reply) if stream else reply
        spec = chat_spec(system) if info.name in (BASE, META_INIT) else self._spec(info)
        job = _Job(info.name, spec, text, shots, limit, stream=queue.Queue() if stream else None, stop=stops)
        self._enter()  # left by the worker when the job is done (a stream's reader may still be reading)
        self._submit(job)
        if not stream:
            return job.future.result()
        return Stream(self._pieces(job), lambda text: self._reply(job, text), stop=job.abandon)

    def generate_batch(
        self,
        requests: Sequence[tuple[list[dict], str | None]],
        *,
        max_new_tokens: int | None = None,
        min_new_tokens: int | None = None,
    ) -> list[str]:
        """Answers to several (messages, adapter) requests run as ONE batch over their adapters (generate-kind
        adapters, base, meta-init). `min_new_tokens` forces answer lengths (benchmarks compare equal work)."""
        jobs = []
        for messages, adapter in requests:
            info = self.describe(adapter)
            if info.kind == "classify":
                raise EngineError(f"{info.name} is a classify adapter: use classify() for it")
            system, shots, text = parse_messages(messages)
            spec = chat_spec(system) if info.name in (BASE, META_INIT) else self._spec(info)
            jobs.append(
                _Job(info.name, spec, text, shots, min(max_new_tokens or self.max_new_tokens, self.max_new_tokens))
            )
        with self.base.lock:
            self._run_batch(jobs, min_new_tokens=min_new_tokens)
        return [job.future.result().text for job in jobs]

    def classify(self, texts: Sequence[str], adapter: str, *, abstain_below: float | None = None) -> list[Prediction]:
        """Label each text with a classify adapter (every label scored; "abstain" below `abstain_below`)."""
        info = self.describe(adapter)
        if info.kind != "classify":
            raise EngineError(f"{info.name} is a {info.kind} model, not a classify adapter: chat with it instead")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise EngineError("nothing to classify: give non-empty texts")
        if abstain_below is not None and not abstain_below >= 0.0:
            raise EngineError(f"abstain_below is a confidence threshold between 0 and 1, got {abstain_below}")
        with self.slot(), self.base.lock:
            return self.adapter(info.name).predict(texts, abstain_below=abstain_below)

    def compare(self, text: str, adapter: str | None = None, *, max_new_tokens: int | None = None) -> dict[str, Any]:
        """The same input answered by the base model, the meta init and `adapter`, all asked with `adapter`'s task
        (so a classify adapter's labels are scored under all three). Values are Predictions (classify) or texts;
        the meta init's value is a message when there is none for this base model."""
        if not isinstance(text, str) or not text.strip():
            raise EngineError("nothing to compare: type a customer message")
        info = self.describe(adapter) if adapter not in (None, BASE, META_INIT) else None
        names = [BASE, *([META_INIT] if self.meta_init_available else []), *([info.name] if info else [])]
        out: dict[str, Any] = {} if self.meta_init_available else {META_INIT: f"(no meta init: {self._meta_problem})"}
        if info is not None and info.kind == "classify":
            with self.slot(), self.base.lock:
                chosen = self.adapter(info.name)
                out[info.name] = chosen.predict([text])[0]
                with base_only(self.base):  # the adapter's task, asked of the bare model
                    out[BASE] = _with_spec(chosen, chosen.spec).predict([text])[0]
                if self.meta_init_available:
                    out[META_INIT] = _with_spec(self._meta_adapter(), chosen.spec).predict([text])[0]
            return out
        spec = self._spec(info) if info else chat_spec()
        limit = min(max_new_tokens or self.max_new_tokens, self.max_new_tokens)
        jobs = [_Job(name, spec, text, [], limit) for name in names]
        with self.slot(), self.base.lock:
            self._run_batch(jobs)
        out.update({job.adapter: job.future.result().text for job in jobs})
        return out

    def inits(self) -> list[str]:
        """The inits `teach` may start from, by name: the served init ("meta-init") first, the shipped inits made for
        this base, and "none" (PEFT's standard init). Only these: a request never names a folder."""
        served = [self._meta_files.record.name or META_INIT] if self.meta_init_available else []
        shipped = []
        for name, path in shipped_inits().items():
            try:
                record = read_record(path)
            except ShopLoRAError:
                continue
            if record.base_fingerprint == self.base.fingerprint:
                shipped.append(name)
        return list(dict.fromkeys([*served, *shipped, STANDARD_INIT]))

    def _init_source(self, init: str | None) -> str | Path | None:
        """What `adapt(init=...)` gets for an init named in `inits()` (None: the served one, else the standard)."""
        if init in (None, "", META_INIT):
            return self._meta_init_source if self.meta_init_available else None
        choices = self.inits()
        if init not in choices:
            raise EngineError(f"no init called {init!r} for this base model; choose one of {', '.join(choices)}")
        if init == STANDARD_INIT:
            return None
        if self.meta_init_available and init == choices[0]:
            return self._meta_init_source
        return init

    def teach(
        self,
        name: str,
        examples: Any,
        *,
        instruction: str,
        labels: Sequence[str] | None = None,
        overwrite: bool = False,
        steps: int | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        init: str | None = None,
        calibration: str = "auto",
        progress: Callable[[int, int, float], None] | None = None,
        phase: Phase | None = None,
    ) -> dict[str, Any]:
        """Adapt a new scenario from `examples`, save it to the store as `name`, and serve it at once. It starts from
        `init`, a name of `inits()` (default: the served meta init when there is one); `steps` (exact), `epochs`
        (the recipe's budget: epochs over the examples), `lr` and `calibration` ("auto", "always", "never": contextual
        calibration) override the recipe. `progress(step, steps, loss)` hears each training step, `phase(name, step,
        steps)` the work between them (adapters.adapt.Phase) and "saving". Returns what the UI shows: kind, steps,
        seconds, held-out accuracy."""
        check_name(name)
        if name in (BASE, META_INIT):
            raise EngineError(f"{name!r} is reserved; choose another adapter name")
        if name in self.store.names() and not overwrite:  # fail before training, not after
            raise EngineError(f"an adapter called {name!r} already exists; tick overwrite or choose another name")
        if calibration not in CALIBRATION:
            raise EngineError(f"calibration must be one of {', '.join(CALIBRATION)}, got {calibration!r}")
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise EngineError(f"epochs must be a whole number >= 1, got {epochs!r}")
        source = self._init_source(init)
        recipe = replace(DEFAULT_RECIPE, epochs=epochs) if epochs else None
        with self.slot():
            adapter = adapt(
                self.base,
                examples,
                instruction=instruction,
                labels=labels or None,
                init=source,
                steps=steps,
                lr=lr,
                recipe=recipe,
                contextual_calibration=CALIBRATION[calibration],
                progress=progress,
                phase=phase,
            )
            if phase:
                phase("saving", 0, 0)
            path = self.store.save(adapter, name, overwrite=overwrite)
            with self.base.lock:
                self._forget(name)
                self._loaded[name] = (adapter, self._mtime(name))
                self._evict()
        record, fit = adapter.record, adapter.record.fit
        return {
            "name": name,
            "kind": adapter.spec.kind,
            "labels": list(adapter.spec.labels),
            "init": record.init,
            "steps": fit.steps_run,
            "steps_planned": fit.inner_loop.steps,
            "steps_kept": fit.steps_kept,
            "seconds": record.seconds,
            "n_train": fit.n_train,
            "n_held_out": fit.n_held_out,
            "metrics": fit.metrics,
            "path": str(path),
            "warnings": record.warnings,
        }

    def delete(self, name: str) -> None:
        """Remove a stored adapter from the store and from memory (base and meta-init are not stored)."""
        if name in (BASE, META_INIT) or name not in self.store.names():
            raise UnknownAdapter(
                f"no stored adapter called {name!r}; stored: {', '.join(self.store.names()) or 'none'}"
            )
        with self.base.lock:
            self._forget(name)
            self.store.delete(name)

    def export_zip(self, name: str, folder: Path) -> Path:
        """`name`'s folder (PEFT files, shoplora.json, model card; no earlier versions) as `folder`/`name`.zip."""
        import zipfile

        if name in (BASE, META_INIT) or name not in self.store.names():
            raise UnknownAdapter(
                f"no stored adapter called {name!r}; stored: {', '.join(self.store.names()) or 'none'}"
            )
        source = self.store.path(name).resolve()  # the name links to its current version
        target = Path(folder) / f"{name}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(source.rglob("*")):
                if file.is_file() and not any(part.startswith(".") for part in file.relative_to(source).parts):
                    archive.write(file, f"{name}/{file.relative_to(source)}")
        return target

    def loaded(self) -> list[str]:
        """Stored adapters in memory now, least recently used first."""
        with self.base.lock:  # loading and eviction change it under this lock
            return list(self._loaded)

    def close(self) -> None:
        """Stop the worker thread (pending requests are answered first)."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None

    # -- admission ----------------------------------------------------------------------------------------------
    def _enter(self) -> None:
        with self._pending_lock:
            if self._pending >= self.max_pending:
                raise EngineBusy(
                    f"the server is busy ({self._pending} requests waiting or running); try again in a few seconds"
                )
            self._pending += 1

    def _leave(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """A place among the engine's users, counted like a request (the queue bound applies): hold it, and the base's
        lock, to use the model outside the engine's requests (the lab's discover tab does)."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    # -- adapters in memory -------------------------------------------------------------------------------------
    def _check_meta(self) -> None:
        if not self.meta_init_available:
            raise UnknownAdapter(f"no meta init is served: {self._meta_problem}")

    def _meta_adapter(self) -> Adapter:
        self._check_meta()
        if self._meta is None:
            files = self._meta_files
            spec = chat_spec()  # the init answers chat: a task of its own, nothing learned
            self._meta = Adapter(
                self.base, spec, files.state, files.settings, AdapterRecord(spec=spec, init=files.record.name)
            )
        return self._meta

    def _mtime(self, name: str) -> float:
        try:
            return (self.store.path(name) / "shoplora.json").stat().st_mtime
        except OSError:
            return 0.0

    def adapter(self, name: str) -> Adapter:
        """The loaded adapter `name` (call with the base's lock held). A folder changed on disk since it was loaded
        (e.g. `shoplora adapt --overwrite`) is loaded again."""
        if name == META_INIT:
            return self._meta_adapter()
        mtime = self._mtime(name)
        if name in self._loaded and self._loaded[name][1] == mtime:
            self._loaded.move_to_end(name)
            return self._loaded[name][0]
        self._forget(name)
        adapter = self.store.load(name, self.base)
        self._loaded[name] = (adapter, mtime)
        self._evict()
        return adapter

    def _forget(self, name: str) -> None:
        if name in self._loaded:
            self._loaded.pop(name)[0].unload()

    def _evict(self) -> None:
        while len(self._loaded) > self.max_loaded:
            _, (adapter, _) = self._loaded.popitem(last=False)
            adapter.unload()

    def _spec(self, info: AdapterInfo) -> TaskSpec:
        return TaskSpec("served", "custom", info.kind, info.instruction, labels=info.labels)

    def _prompt(
        self, info_or_spec: Any, system: str | None, shots: list[Example], text: str, max_new_tokens: int
    ) -> list[int]:
        """The rendered prompt; the oldest exchanges are dropped when the conversation would not fit the context."""
        spec = info_or_spec if isinstance(info_or_spec, TaskSpec) else self._spec(info_or_spec)
        tokenizer = self.base.tokenizer
        while True:
            prompt = prompt_ids(spec, text, tokenizer, shots)
            if len(prompt) + max_new_tokens <= self._context or not shots:
                break
            shots = shots[1:]
        if len(prompt) + max_new_tokens > self._context:
            raise EngineError(
                f"the message is {len(prompt)} tokens with its prompt; with {max_new_tokens} for the "
                f"answer that is over the model's context of {self._context}: shorten it"
            )
        return prompt

    # -- the worker -----------------------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> None:
        if self._worker is None or not self._worker.is_alive():
            with self._pending_lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, name="shoplora-engine", daemon=True)
                    self._worker.start()
        self._jobs.put(job)

    def _pieces(self, job: _Job) -> Iterator[str]:
        try:
            while True:
                piece = job.stream.get()
                if piece is _DONE or job.abandoned.is_set():
                    return
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            job.abandoned.set()  # a reader that stops early ends the generation at its next token

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.stream is not None:
                try:
                    self._run_stream(job)
                finally:
                    self._leave()
                continue
            batch = [job]
            while len(batch) < self.max_batch:  # everything that queued meanwhile joins this batch
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None or more.stream is not None:
                    self._jobs.put(more)  # keeps its turn after this batch
                    break
                batch.append(more)
            try:
                with self.base.lock:
                    self._run_batch(batch)
            finally:
                for _ in batch:
                    self._leave()

    def _run_stream(self, job: _Job) -> None:
        try:
            with self.base.lock:
                if not job.abandoned.is_set():  # a client gone while its request waited costs no tokens
                    self._stream_answer(job)
            job.stream.put(_DONE)
        except BaseException as error:  # the reader raises it; the worker lives on
            job.stream.put(_as_engine_error(error))

    def _stream_answer(self, job: _Job) -> None:
        """Generate `job`'s answer into its queue (lock held) until it ends, reaches a stop sequence or is abandoned:
        the abandoned event is checked at every token, so a reader that left stops the model at once."""
        prompt = self._prompt(job.spec, None, job.shots, job.input, job.max_new_tokens)
        job.prompt_tokens = len(prompt)
        model, context = self.weights(job.adapter)
        stops = StopCutter(job.stop)
        with (
            context,
            closing(
                stream_prompt(
                    model,
                    self.base.tokenizer,
                    prompt,
                    max_new_tokens=job.max_new_tokens,
                    max_time=self.time_limit,
                    stop=job.abandoned,
                )
            ) as pieces,
        ):
            for piece in pieces:
                text = stops.feed(piece)
                if text:
                    job.stream.put(text)
                if stops.hit:
                    job.cut = True
                    return  # closing the pieces ends the generation at its next token
        if stops.held:
            job.stream.put(stops.held)  # the start of a stop sequence that never came

    def weights(self, name: str) -> tuple[Any, Any]:
        """(model to call, context to call it in) for one adapter's rows; call with the lock held."""
        if name == BASE:
            return self.base.model, base_only(self.base)
        adapter = self.adapter(name)
        self.base.peft.set_adapter(adapter.peft_name)
        return self.base.peft, nullcontext()

    def _run_batch(self, jobs: list[_Job], *, min_new_tokens: int | None = None) -> None:
        """Answer `jobs` (lock held): groups of equal max_new_tokens, each one batch, mixed over adapters when
        needed; jobs with other stop sequences are other batches. Each job's future gets its Reply or its error."""
        groups: dict[tuple[int, tuple[str, ...]], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.max_new_tokens, job.stop), []).append(job)
        for (limit, stop), group in groups.items():
            for part in _parts(group, self.max_loaded, self.max_batch):
                try:
                    self._generate(part, limit, min_new_tokens, stop)
                except BaseException as error:
                    for job in part:
                        if not job.future.done():
                            job.future.set_exception(_as_engine_error(error))

    def _generate(self, jobs: list[_Job], limit: int, min_new_tokens: int | None, stop: tuple[str, ...] = ()) -> None:
        prompts = []
        for job in jobs:
            try:
                prompts.append(self._prompt(job.spec, None, job.shots, job.input, limit))
            except ShopLoRAError as error:
                job.future.set_exception(error)
        jobs = [job for job in jobs if not job.future.done()]
        if not jobs:
            return
        kwargs: dict[str, Any] = {"max_time": self.time_limit}
        if min_new_tokens:
            kwargs["min_new_tokens"] = min(min_new_tokens, limit)
        if stop:  # each row stops generating at its first stop sequence; the text is cut below
            kwargs["stop_strings"] = list(stop)
        names = list(dict.fromkeys(job.adapter for job in jobs))
        if len(names) == 1:  # one adapter: no per-row routing needed
            model, context = self.weights(names[0])
            with context:
                texts = generate_prompts(model, self.base.tokenizer, prompts, max_new_tokens=limit, **kwargs)
        else:
            peft_names = {name: None if name == BASE else self.adapter(name).peft_name for name in names}
            with mixed_lora(self.base.peft, [peft_names[job.adapter] for job in jobs]):
                texts = generate_prompts(self.base.peft, self.base.tokenizer, prompts, max_new_tokens=limit, **kwargs)
        for job, prompt, text in zip(jobs, prompts, texts):
            job.prompt_tokens = len(prompt)
            text, job.cut = cut_at_stop(text, job.stop)
            job.future.set_result(self._reply(job, text.strip() if job.cut else text))

    def _reply(self, job: _Job, text: str) -> Reply:
        """The Reply of a finished generation: "length" when the answer used the job's whole token budget (and was
        not cut at a stop sequence)."""
        # stripped, as whole answers are: a streamed answer counts as many tokens as the same answer unstreamed
        produced = len(self.base.tokenizer(text.strip(), add_special_tokens=False)["input_ids"])
        return Reply(
            text,
            job.adapter,
            job.prompt_tokens,
            produced,
            "length" if produced >= job.max_new_tokens and not job.cut else "stop",
        )


def stop_sequences(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """OpenAI's `stop`: one string or a list of up to 4 non-empty ones, as a tuple."""
    if stop is None:
        return ()
    stops = tuple(stop) if isinstance(stop, (list, tuple)) else (stop,)
    if len(stops) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in stops):
        raise EngineError(
            f"'stop' must be a non-empty string or a list of at most {MAX_STOP_SEQUENCES} of them, got {stop!r}"
        )
    return stops


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """(`text` before the first of the stop sequences, whether there was one)."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


class StopCutter:
    """A stream's pieces up to its first stop sequence. Text that may be the start of one is `held` until the next
    piece says, so no part of a stop sequence is ever sent."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops, self.held, self.hit = tuple(stops), "", False

    def feed(self, piece: str) -> str:
        """The text that can be sent now; `hit` turns true when a stop sequence was reached (send nothing more)."""
        text, self.hit = cut_at_stop(self.held + piece, self.stops)
        keep = (
            0
            if self.hit
            else max(
                (k for stop in self.stops for k in range(1, min(len(stop), len(text) + 1)) if text.endswith(stop[:k])),
                default=0,
            )
        )
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]


def _parts(jobs: list[_Job], max_adapters: int, max_rows: int) -> Iterator[list[_Job]]:
    """Consecutive pieces of `jobs` with at most `max_adapters` distinct stored adapters and `max_rows` rows, so
    every adapter of a batch stays loaded while it runs."""
    part: list[_Job] = []
    adapters: set[str] = set()
    for job in jobs:
        new = job.adapter not in adapters and job.adapter not in (BASE, META_INIT)
        if part and (len(part) >= max_rows or (new and len(adapters) >= max_adapters)):
            yield part
            part, adapters = [], set()
        part.append(job)
        if job.adapter not in (BASE, META_INIT):
            adapters.add(job.adapter)
    if part:
        yield part


def _with_spec(adapter: Adapter, spec: TaskSpec) -> Adapter:
    """The same loaded weights asked another task zero-shot (a view: nothing is copied on the model): no fitted
    temperature, and contextual calibration exactly as `adapt` would use it with no examples."""
    view = copy.copy(adapter)
    view.spec, view.temperature = spec, 1.0
    view.record = replace(adapter.record, contextual_calibration=needs_calibration(spec, []))
    return view


def _as_engine_error(error: BaseException) -> BaseException:
    if isinstance(error, ShopLoRAError) or not isinstance(error, Exception):
        return error
    return EngineError(f"generation failed: {type(error).__name__}: {error}")
