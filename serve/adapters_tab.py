"""The lab's Adapters tab: the stored adapters in a table; download one's folder as a zip, or delete it."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from prompts import ShopLoRAError

from .engine import Engine
from .events import shown
from .lab_common import DROPDOWN, PRIVATE, AdapterLists, describe, stored_names, stored_table

DOWNLOADS_KEPT = 300  # seconds a prepared zip stays in the lab's temp folder (Gradio serves its own copy)


class Downloads:
    """A temp folder of the lab's own for adapter zips: each zip in a new subfolder (a name a request gives never
    becomes a path), removed once older than DOWNLOADS_KEPT seconds: Gradio serves its own copy."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="shoplora-downloads-"))
        import atexit

        atexit.register(shutil.rmtree, self.root, True)

    def folder(self) -> Path:
        for old in self.root.iterdir():
            if time.time() - old.stat().st_mtime > DOWNLOADS_KEPT:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))


class AdaptersTab:
    """The Adapters tab's components, built inside the caller's `gr.Tab`; `wire(lists)` connects its events (a delete
    refreshes `lists`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.downloads = Downloads()
        gr.Markdown(
            f"The adapters in the store (`{engine.store.root}`). Choose one to download its folder "
            "as a zip (the PEFT files, `shoplora.json` and the model card: `PeftModel.from_pretrained` "
            "loads it) or to delete it."
        )
        self.table = gr.Dataframe(
            stored_table(engine),
            headers=["name", "kind", "labels", "examples", "init", "created / problem"],
            interactive=False,
            label="Stored adapters",
            elem_id="adapters-table",
        )
        with gr.Row():
            self.model = gr.Dropdown(
                stored_names(engine.names()),
                value=None,
                label="Adapter",
                scale=2,
                elem_id="adapters-choice",
                **DROPDOWN,
            )
            self.download = gr.DownloadButton("Download .zip", interactive=False, scale=1, elem_id="adapters-download")
            self.delete = gr.Button("Delete", variant="stop", interactive=False, scale=1, elem_id="adapters-delete")
            self.refresh = gr.Button("Refresh", scale=1, elem_id="adapters-refresh")
        self.info = gr.Markdown(label="About the adapter", elem_id="adapters-info")
        with gr.Row(visible=False) as self.confirm_row:
            self.confirm_text = gr.Markdown()
            self.confirm = gr.Button("Yes, delete it", variant="stop", elem_id="adapters-delete-confirm")
            self.cancel = gr.Button("Cancel", elem_id="adapters-delete-cancel")

    def on_pick(self, name: str | None):
        """The chosen adapter's folder as a zip for the download button, and what it is."""
        if not name:
            return (
                gr.DownloadButton("Download .zip", value=None, interactive=False),
                gr.Button(interactive=False),
                gr.skip(),
            )
        zipped = self.engine.export_zip(name, self.downloads.folder())
        size = zipped.stat().st_size
        size_text = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"
        return (
            gr.DownloadButton(f"Download {name}.zip ({size_text})", value=str(zipped), interactive=True),
            gr.Button(interactive=True),
            describe(self.engine, name),
        )

    def on_ask_delete(self, name: str | None):
        if not name:
            raise ShopLoRAError("choose an adapter to delete first")
        self.engine.describe(name)  # an unknown name is refused here, not after the confirmation
        return gr.Row(visible=True), f"Delete **{name}** and its earlier versions from the store for good?"

    def on_delete(self, name: str):
        self.engine.delete(name)  # a Chat tab still naming it is told so on its next message
        return f"Deleted **{name}**.", gr.Row(visible=False), *self.lists.update(compare=None, manage=None)

    def wire(self, lists: AdapterLists) -> None:
        self.lists = lists  # what a delete refreshes
        self.model.change(
            shown(self.on_pick, "download"), self.model, [self.download, self.delete, self.info], api_name="download"
        )
        self.delete.click(
            shown(self.on_ask_delete, "delete?"), self.model, [self.confirm_row, self.confirm_text], **PRIVATE
        )
        self.cancel.click(lambda: gr.Row(visible=False), None, self.confirm_row, **PRIVATE)
        self.confirm.click(
            shown(self.on_delete), self.model, [self.info, self.confirm_row, *lists.components], api_name="delete"
        )
        self.refresh.click(shown(lists.refresh, "refresh"), None, lists.components, **PRIVATE)
