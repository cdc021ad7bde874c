"""The inits a server offers: the one it serves as "meta-init" (the shipped default init unless it was told another;
the name is kept for clients that use it) and the ones `teach` may start from."""

from __future__ import annotations

from pathlib import Path

from adapters import Adapter, Base
from adapters.files import read_record
from adapters.init_catalog import resolve_init, shipped_inits
from adapters.record import AdapterRecord
from prompts import ShopLoRAError

from .chat import META_INIT, STANDARD_INIT, EngineError, UnknownAdapter, chat_spec


class ServedInit:
    """The init served as "meta-init" for `base`, or why there is none (`problem`)."""

    def __init__(self, source: str | Path | None, base: Base) -> None:
        self.source, self.base = source, base
        self.files = None
        self.problem: str | None = None
        self._adapter: Adapter | None = None
        try:
            self.files = resolve_init(source, base)
        except ShopLoRAError as error:  # served without one: "meta-init" is not listed and says why when asked
            self.problem = str(error)
        if self.files is None and self.problem is None:
            self.problem = "the server was started without a meta init (--init none)"

    @property
    def available(self) -> bool:
        return self.files is not None

    def check(self) -> None:
        """Raise UnknownAdapter, saying why, when no meta init is served."""
        if not self.available:
            raise UnknownAdapter(f"no meta init is served: {self.problem}")

    def adapter(self) -> Adapter:
        """The meta init as an adapter that answers chat (loaded on first use; call with the base's lock held)."""
        self.check()
        if self._adapter is None:
            files = self.files
            spec = chat_spec()  # the init answers chat: a task of its own, nothing learned
            self._adapter = Adapter(
                self.base, spec, files.state, files.settings, AdapterRecord(spec=spec, init=files.record.name)
            )
        return self._adapter

    def choices(self) -> list[str]:
        """The inits `teach` may start from, by name: the served init ("meta-init") first, the shipped inits made for
        this base, and "none" (PEFT's standard init). Only these: a request never names a folder."""
        served = [self.files.record.name or META_INIT] if self.available else []
        shipped = []
        for name, path in shipped_inits().items():
            try:
                record = read_record(path)
            except ShopLoRAError:
                continue
            if record.base_fingerprint == self.base.fingerprint:
                shipped.append(name)
        return list(dict.fromkeys([*served, *shipped, STANDARD_INIT]))

    def source_of(self, init: str | None) -> str | Path | None:
        """What `adapt(init=...)` gets for an init named in `choices()` (None: the served one, else the standard)."""
        if init in (None, "", META_INIT):
            return self.source if self.available else None
        choices = self.choices()
        if init not in choices:
            raise EngineError(f"no init called {init!r} for this base model; choose one of {', '.join(choices)}")
        if init == STANDARD_INIT:
            return None
        if self.available and init == choices[0]:
            return self.source
        return init
