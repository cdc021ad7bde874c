"""The adapters in memory on the shared base: stored adapters load on first use and at most `max_loaded` stay (least
recently used out first); a folder changed on disk since it was loaded (e.g. `shoplora adapt --overwrite`) is loaded
again. Every method expects the base's lock held: loading, eviction and switching change the shared PeftModel."""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from typing import Any

from adapters import Adapter, AdapterStore, Base
from adapters.generation import base_only

from .chat import BASE, META_INIT
from .inits import ServedInit


class AdapterCache:
    """An LRU of loaded stored adapters, plus the served meta init."""

    def __init__(self, base: Base, store: AdapterStore, served_init: ServedInit, max_loaded: int) -> None:
        self.base, self.store, self.served_init, self.max_loaded = base, store, served_init, max_loaded
        self._loaded: OrderedDict[str, tuple[Adapter, float]] = OrderedDict()  # name -> (adapter, record mtime)

    def names(self) -> list[str]:
        """Stored adapters in memory now, least recently used first."""
        return list(self._loaded)

    def get(self, name: str) -> Adapter:
        """The loaded adapter `name` ("meta-init" or a stored one), loading it (again) when needed."""
        if name == META_INIT:
            return self.served_init.adapter()
        mtime = self._mtime(name)
        if name in self._loaded and self._loaded[name][1] == mtime:
            self._loaded.move_to_end(name)
            return self._loaded[name][0]
        self.forget(name)
        adapter = self.store.load(name, self.base)
        self._loaded[name] = (adapter, mtime)
        self._evict()
        return adapter

    def put(self, name: str, adapter: Adapter) -> None:
        """Serve `adapter`, just saved to the store as `name`, without loading it again."""
        self.forget(name)
        self._loaded[name] = (adapter, self._mtime(name))
        self._evict()

    def forget(self, name: str) -> None:
        """Unload `name` if it is in memory."""
        if name in self._loaded:
            self._loaded.pop(name)[0].unload()

    def weights(self, name: str) -> tuple[Any, Any]:
        """(model to call, context to call it in) for one adapter's rows."""
        if name == BASE:
            return self.base.model, base_only(self.base)
        adapter = self.get(name)
        self.base.peft.set_adapter(adapter.peft_name)
        return self.base.peft, nullcontext()

    def _mtime(self, name: str) -> float:
        try:
            return (self.store.path(name) / "shoplora.json").stat().st_mtime
        except OSError:
            return 0.0

    def _evict(self) -> None:
        while len(self._loaded) > self.max_loaded:
            _, (adapter, _) = self._loaded.popitem(last=False)
            adapter.unload()
