"""The Gradio customer-service lab, a thin view over `Engine`: Chat, Teach a scenario, Compare, Adapters, Discover.

`build_app(engine)` returns the `gr.Blocks`, each tab built by its own module (`serve.chat_tab`, `serve.teach_tab`,
`serve.compare_tab`, `serve.adapters_tab`, `serve.discover_tab`); `serve.server` mounts it with the OpenAI-style routes
and runs it. Every error a user can cause is shown in the page as a message, never as a traceback, and is one line in
the server log.
"""

from __future__ import annotations

import gradio as gr

from .adapters_tab import AdaptersTab
from .chat_tab import ChatTab
from .compare_tab import CompareTab
from .discover_tab import discover_tab
from .engine import Engine
from .events import LabBlocks, shown
from .lab_common import PRIVATE, AdapterLists
from .teach_tab import TeachTab
from .uploads import MAX_UPLOAD_BYTES

TITLE = "ShopLoRA customer-service lab"


def build_app(engine: Engine, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> gr.Blocks:
    """The lab's page: Chat, Teach a scenario, Compare, Adapters, Discover. Launching is separate (`serve.server`).
    Teach reads only files uploaded through the page, of at most `max_upload_bytes`, and removes them afterwards."""
    with LabBlocks(title=TITLE, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# {TITLE}\nTalk to a shop's support scenarios, teach a new one from a handful of examples, and "
            f"compare the base model, the init new scenarios start from and an adapted scenario. Model: "
            f"`{engine.base.model_id}` on {engine.base.device}. **API:** [docs](/docs) of the OpenAI-style "
            "`/v1` routes (`/v1/models`, `/v1/chat/completions`) and of this lab's own endpoints for "
            "`gradio_client` ([Use via API](?view=api))."
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = ChatTab(engine)
            with gr.Tab("Teach a scenario", id="teach"):
                teach = TeachTab(engine, max_upload_bytes)
            with gr.Tab("Compare", id="compare"):
                compare = CompareTab(engine)
            with gr.Tab("Adapters", id="adapters"):
                stored = AdaptersTab(engine)
            with gr.Tab("Discover", id="discover"):
                discover_tab(engine, max_upload_bytes=max_upload_bytes)

        # Events are wired once every tab exists: a teach or a delete refreshes the adapter lists of other tabs.
        lists = AdapterLists(engine, chat.model, compare.model, stored.model, stored.table)
        chat.wire()
        teach.wire(lists)
        compare.wire()
        stored.wire(lists)
        app.load(shown(lists.refresh, "page"), None, lists.components, **PRIVATE)

        def list_adapters() -> list[dict]:
            """Every served name with its kind, labels and instruction."""
            return [engine.describe(name).to_dict() for name in engine.names()]

        gr.api(shown(list_adapters, "adapters"), api_name="adapters")
    return app
