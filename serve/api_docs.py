"""The server's /docs page: the /v1 routes (read from the app's own routes), how to call them, and where the lab's
own endpoints for gradio_client are described. Offline: no script from a CDN, unlike FastAPI's Swagger UI."""

from __future__ import annotations

from html import escape
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute


def api_docs(app: Any) -> Callable[[Request], HTMLResponse]:
    """The /docs page: the /v1 routes (from the app's own routes, so it cannot drift from them), how to call them,
    and where the lab's own endpoints for gradio_client are described. Offline: no script from a CDN."""

    def page(request: Request) -> HTMLResponse:
        url = str(request.base_url)
        rows = "".join(
            f"<tr><td><code>{', '.join(sorted(route.methods - {'HEAD'}))}</code></td><td><code>{escape(route.path)}"
            f"</code></td><td>{escape((route.description or '').strip())}</td></tr>"
            for route in app.routes
            if isinstance(route, APIRoute) and route.include_in_schema
        )
        body = f"""<!doctype html><html><head><meta charset="utf-8"><title>ShopLoRA API</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em;line-height:1.45}}
td{{border-top:1px solid #ddd;padding:.4em;vertical-align:top}}pre{{background:#f4f4f5;padding:.8em;overflow:auto}}
</style></head><body><h1>ShopLoRA API</h1>
<p>One server: the <a href="/">lab</a>, the OpenAI-style routes below (<code>model</code> names a stored adapter,
<code>base</code> or <code>meta-init</code>; schema: <a href="/openapi.json">/openapi.json</a>), and the lab's own
endpoints for <code>gradio_client</code>, listed with their parameters under
<a href="/?view=api">Use via API</a> (<code>/chat</code>, <code>/teach</code>, <code>/compare</code>,
<code>/adapters</code>, <code>/download</code>, <code>/delete</code>). Errors of <code>/v1</code> are JSON
<code>{{"error": {{"message", "type", "param", "code"}}}}</code>.</p>
<h2>OpenAI-style routes</h2><table>{rows}</table>
<pre>curl {escape(url)}v1/models
curl {escape(url)}v1/chat/completions -H 'Content-Type: application/json' \
     -d '{{"model": "acme-returns", "messages": [{{"role": "user", "content": "where is my parcel??"}}]}}'</pre>
<pre>from openai import OpenAI   # with a login: api_key="USER:PASS"
client = OpenAI(base_url="{escape(url)}v1", api_key="none")
client.chat.completions.create(model="acme-returns",
                               messages=[{{"role": "user", "content": "where is my parcel??"}}])</pre>
<h2>The lab from Python</h2>
<pre>from gradio_client import Client   # with a login: Client(url, auth=("USER", "PASS"))
client = Client("{escape(url)}")
client.predict(name="acme-returns", instruction="Classify the customer's message.",
               labels="refund_status, return_item", examples={{"headers": ["input", "output"], "data": [...]}},
               api_name="/teach")
client.predict(text="where is my parcel??", model="acme-returns", api_name="/chat")</pre>
</body></html>"""
        return HTMLResponse(body)

    return page
