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

`Engine` is the facade; each part has a module: `serve.chat` (served names, errors, Reply, messages, prompts),
`serve.stops` (stop sequences), `serve.admission` (the `max_pending` bound), `serve.inits` (the served meta init and
the inits `teach` offers), `serve.adapter_cache` (the LRU of loaded adapters), `serve.jobs` (a request on its way to
the worker, and `Stream`) and `serve.worker` (the generation thread: batching and streaming).
"""

from __future__ import annotations

import copy
import queue
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

from adapters import Adapter, AdapterStore, Base, Prediction, adapt
from adapters.files import check_name
from adapters.fit import Phase
from adapters.generation import base_only
from adapters.init_catalog import DEFAULT
from adapters.recipe import DEFAULT_RECIPE
from adapters.record import AdapterRecord
from adapters.specs import CALIBRATION, needs_calibration
from prompts import ShopLoRAError, TaskSpec

from .adapter_cache import AdapterCache
from .admission import Admission
from .chat import (
    BASE,
    CHAT_INSTRUCTION,
    META_INIT,
    AdapterInfo,
    EngineBusy,
    EngineError,
    Reply,
    UnknownAdapter,
    chat_spec,
    fit_prompt,
    parse_messages,
)
from .inits import ServedInit
from .jobs import Job, Stream
from .stops import stop_sequences
from .worker import GenerationWorker

__all__ = [  # what the lab, the API and tests import from here, wherever it is defined
    "BASE",
    "META_INIT",
    "AdapterInfo",
    "Engine",
    "EngineBusy",
    "EngineError",
    "Reply",
    "Stream",
    "UnknownAdapter",
    "chat_spec",
    "parse_messages",
    "stop_sequences",
]


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
        self.served_init = ServedInit(meta_init, base)
        self.cache = AdapterCache(base, store, self.served_init, max_loaded)
        self.admission = Admission(max_pending)
        self.worker = GenerationWorker(base, self.cache, self.admission, max_batch=max_batch, time_limit=time_limit)

    # -- what is served ---------------------------------------------------------------------------------------
    @property
    def meta_init_available(self) -> bool:
        return self.served_init.available

    @property
    def pending(self) -> int:
        """Requests waiting or running now."""
        return self.admission.pending

    def names(self) -> list[str]:
        """Everything a request may name: "base", "meta-init" (when there is one for this base) and stored adapters."""
        return [BASE, *([META_INIT] if self.meta_init_available else []), *self.store.names()]

    def describe(self, name: str | None) -> AdapterInfo:
        """The kind, labels and instruction of a served name; UnknownAdapter names the ones there are."""
        name = name or BASE
        if name == BASE:
            return AdapterInfo(BASE, "generate", CHAT_INSTRUCTION)
        if name == META_INIT:
            self.served_init.check()
            return AdapterInfo(META_INIT, "generate", CHAT_INSTRUCTION, init=self.served_init.files.record.name)
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
                prediction.label,
                info.name,
                len(fit_prompt(self.base, info.task_spec(), text, [], 0)),
                1,
                prediction=prediction,
            )
            return Stream(iter([reply.text]), lambda text: reply) if stream else reply
        spec = chat_spec(system) if info.name in (BASE, META_INIT) else info.task_spec()
        job = Job(info.name, spec, text, shots, limit, stream=queue.Queue() if stream else None, stop=stops)
        self.admission.enter()  # left by the worker when the job is done (a stream's reader may still be reading)
        self.worker.submit(job)
        if not stream:
            return job.future.result()
        return Stream(job.pieces(), lambda text: job.reply(text, self.base.tokenizer), stop=job.abandon)

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
            spec = chat_spec(system) if info.name in (BASE, META_INIT) else info.task_spec()
            jobs.append(
                Job(info.name, spec, text, shots, min(max_new_tokens or self.max_new_tokens, self.max_new_tokens))
            )
        with self.base.lock:
            self.worker.run_batch(jobs, min_new_tokens=min_new_tokens)
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
            return self.cache.get(info.name).predict(texts, abstain_below=abstain_below)

    def compare(self, text: str, adapter: str | None = None, *, max_new_tokens: int | None = None) -> dict[str, Any]:
        """The same input answered by the base model, the meta init and `adapter`, all asked with `adapter`'s task
        (so a classify adapter's labels are scored under all three). Values are Predictions (classify) or texts;
        the meta init's value is a message when there is none for this base model."""
        if not isinstance(text, str) or not text.strip():
            raise EngineError("nothing to compare: type a customer message")
        info = self.describe(adapter) if adapter not in (None, BASE, META_INIT) else None
        names = [BASE, *([META_INIT] if self.meta_init_available else []), *([info.name] if info else [])]
        out: dict[str, Any] = (
            {} if self.meta_init_available else {META_INIT: f"(no meta init: {self.served_init.problem})"}
        )
        if info is not None and info.kind == "classify":
            with self.slot(), self.base.lock:
                chosen = self.cache.get(info.name)
                out[info.name] = chosen.predict([text])[0]
                with base_only(self.base):  # the adapter's task, asked of the bare model
                    out[BASE] = _with_spec(chosen, chosen.spec).predict([text])[0]
                if self.meta_init_available:
                    out[META_INIT] = _with_spec(self.cache.get(META_INIT), chosen.spec).predict([text])[0]
            return out
        spec = info.task_spec() if info else chat_spec()
        limit = min(max_new_tokens or self.max_new_tokens, self.max_new_tokens)
        jobs = [Job(name, spec, text, [], limit) for name in names]
        with self.slot(), self.base.lock:
            self.worker.run_batch(jobs)
        out.update({job.adapter: job.future.result().text for job in jobs})
        return out

    def inits(self) -> list[str]:
        """The inits `teach` may start from, by name: the served init ("meta-init") first, the shipped inits made for
        this base, and "none" (PEFT's standard init). Only these: a request never names a folder."""
        return self.served_init.choices()

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
        source = self.served_init.source_of(init)
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
                contextual_calibration=calibration,
                progress=progress,
                phase=phase,
            )
            if phase:
                phase("saving", 0, 0)
            path = self.store.save(adapter, name, overwrite=overwrite)
            with self.base.lock:
                self.cache.put(name, adapter)
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
            self.cache.forget(name)
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
            return self.cache.names()

    def close(self) -> None:
        """Stop the worker thread (pending requests are answered first)."""
        self.worker.close()

    # -- the model, for code outside the requests (the lab's discover tab, benchmarks) --------------------------
    def slot(self) -> ContextManager[None]:
        """A place among the engine's users, counted like a request (the queue bound applies): hold it, and the base's
        lock, to use the model outside the engine's requests (the lab's discover tab does)."""
        return self.admission.slot()

    def adapter(self, name: str) -> Adapter:
        """The loaded adapter `name` (call with the base's lock held). A folder changed on disk since it was loaded
        (e.g. `shoplora adapt --overwrite`) is loaded again."""
        return self.cache.get(name)

    def weights(self, name: str) -> tuple[Any, Any]:
        """(model to call, context to call it in) for one adapter's rows; call with the lock held."""
        return self.cache.weights(name)


def _with_spec(adapter: Adapter, spec: TaskSpec) -> Adapter:
    """The same loaded weights asked another task zero-shot (a view: nothing is copied on the model): no fitted
    temperature, and contextual calibration exactly as `adapt` would use it with no examples."""
    view = copy.copy(adapter)
    view.spec, view.temperature = spec, 1.0
    view.record = replace(adapter.record, contextual_calibration=needs_calibration(spec, []))
    return view
