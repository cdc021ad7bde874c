"""Serving many adapters on one base model (`serve.engine`), the Gradio lab (`serve.app`) and the OpenAI-style API
(`serve.api`), on one server (`serve.server`)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline tool: no usage pings (set before gradio loads)
