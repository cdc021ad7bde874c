"""The generation worker: one thread runs every generation job under the base's lock, so concurrent users never see
each other's adapter. Batch jobs waiting together run as one batch whose rows may use different adapters
(`serve.mixed`: per-row LoRA as batched matmuls); a stream runs on this thread too, so its lock never crosses threads,
and a stream whose reader leaves ends at the next token (one still waiting never starts)."""

from __future__ import annotations

import queue
import threading
from contextlib import closing
from typing import Any, Iterator

from adapters import Base
from adapters.generation import generate_prompts, stream_prompt
from prompts import ShopLoRAError

from .adapter_cache import AdapterCache
from .admission import Admission
from .chat import BASE, META_INIT, EngineError, fit_prompt
from .jobs import DONE, Job
from .mixed import mixed_lora
from .stops import StopCutter, cut_at_stop


class GenerationWorker:
    """The thread that answers submitted jobs (started on the first one); each job leaves `admission` when done."""

    def __init__(
        self, base: Base, cache: AdapterCache, admission: Admission, *, max_batch: int, time_limit: float
    ) -> None:
        self.base, self.cache, self.admission = base, cache, admission
        self.max_batch, self.time_limit = max_batch, time_limit
        self._jobs: "queue.Queue[Job | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: Job) -> None:
        """Queue `job` (already admitted): its future or stream gets the answer."""
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._work, name="shoplora-engine", daemon=True)
                    self._thread.start()
        self._jobs.put(job)

    def close(self) -> None:
        """Stop the thread (jobs queued before are answered first)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.stream is not None:
                try:
                    self._run_stream(job)
                finally:
                    self.admission.leave()
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
                    self.run_batch(batch)
            finally:
                for _ in batch:
                    self.admission.leave()

    def _run_stream(self, job: Job) -> None:
        try:
            with self.base.lock:
                if not job.abandoned.is_set():  # a client gone while its request waited costs no tokens
                    self._stream_answer(job)
            job.stream.put(DONE)
        except BaseException as error:  # the reader raises it; the worker lives on
            job.stream.put(_as_engine_error(error))

    def _stream_answer(self, job: Job) -> None:
        """Generate `job`'s answer into its queue (lock held) until it ends, reaches a stop sequence or is abandoned:
        the abandoned event is checked at every token, so a reader that left stops the model at once."""
        prompt = fit_prompt(self.base, job.spec, job.input, job.shots, job.max_new_tokens)
        job.prompt_tokens = len(prompt)
        model, context = self.cache.weights(job.adapter)
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

    def run_batch(self, jobs: list[Job], *, min_new_tokens: int | None = None) -> None:
        """Answer `jobs` (lock held): groups of equal max_new_tokens, each one batch, mixed over adapters when
        needed; jobs with other stop sequences are other batches. Each job's future gets its Reply or its error."""
        groups: dict[tuple[int, tuple[str, ...]], list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.max_new_tokens, job.stop), []).append(job)
        for (limit, stop), group in groups.items():
            for part in _parts(group, self.cache.max_loaded, self.max_batch):
                try:
                    self._generate(part, limit, min_new_tokens, stop)
                except BaseException as error:
                    for job in part:
                        if not job.future.done():
                            job.future.set_exception(_as_engine_error(error))

    def _generate(self, jobs: list[Job], limit: int, min_new_tokens: int | None, stop: tuple[str, ...] = ()) -> None:
        prompts = []
        for job in jobs:
            try:
                prompts.append(fit_prompt(self.base, job.spec, job.input, job.shots, limit))
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
            model, context = self.cache.weights(names[0])
            with context:
                texts = generate_prompts(model, self.base.tokenizer, prompts, max_new_tokens=limit, **kwargs)
        else:
            peft_names = {name: None if name == BASE else self.cache.get(name).peft_name for name in names}
            with mixed_lora(self.base.peft, [peft_names[job.adapter] for job in jobs]):
                texts = generate_prompts(self.base.peft, self.base.tokenizer, prompts, max_new_tokens=limit, **kwargs)
        for job, prompt, text in zip(jobs, prompts, texts):
            job.prompt_tokens = len(prompt)
            text, job.cut = cut_at_stop(text, job.stop)
            job.future.set_result(job.reply(text.strip() if job.cut else text, self.base.tokenizer))


def _parts(jobs: list[Job], max_adapters: int, max_rows: int) -> Iterator[list[Job]]:
    """Consecutive pieces of `jobs` with at most `max_adapters` distinct stored adapters and `max_rows` rows, so
    every adapter of a batch stays loaded while it runs."""
    part: list[Job] = []
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


def _as_engine_error(error: BaseException) -> BaseException:
    if isinstance(error, ShopLoRAError) or not isinstance(error, Exception):
        return error
    return EngineError(f"generation failed: {type(error).__name__}: {error}")
