"""The `shoplora` command line: a thin layer over `prompts`, `adapters`, `train` and `serve`."""
