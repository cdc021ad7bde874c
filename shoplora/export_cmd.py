"""`shoplora export NAME --merge OUT | --push REPO | --for vllm OUT`: a stored adapter out of ShopLoRA."""

from __future__ import annotations

import argparse
import sys

from prompts import ShopLoRAError


def _export(args: argparse.Namespace) -> None:
    from adapters import AdapterStore
    from adapters import export

    if args.target and args.target[0] != "vllm":
        raise ShopLoRAError(
            f"--for {args.target[0]}: the engine ShopLoRA exports for is vllm (LoRAX loads the same "
            "folder), e.g. shoplora export NAME --for vllm OUT"
        )
    files = AdapterStore(args.store).read(args.name)  # an unknown name fails here, before any model loads
    if args.merge:
        from adapters import load_base
        from adapters.base import EMBEDDED, EMBEDDED_ID

        model = args.model or (EMBEDDED if files.base_model_id == EMBEDDED_ID else files.base_model_id)
        out = export.merge(files, load_base(model), args.merge, overwrite=args.overwrite)
        print(
            f"wrote {out}: {files.base_model_id} with {args.name} merged in (safetensors)\n"
            f"load it: AutoModelForCausalLM.from_pretrained({str(out)!r})"
        )
    elif args.push:
        url = export.push(files, args.push, private=args.private, with_record=args.with_record)
        print(f"pushed {args.name} to {url}")
    else:
        out = export.vllm_folder(files, args.target[1], overwrite=args.overwrite)
        rank = export.vllm_rank(files.settings.r)
        flag = "" if rank <= export.VLLM_DEFAULT_MAX_LORA_RANK else f" --max-lora-rank {rank}"
        print(
            f"wrote {out} (system prompt and labels in {out}/README.md)\nserve it: vllm serve "
            f"{files.base_model_id} --enable-lora{flag} --lora-modules {args.name}={out}"
        )
        for problem in files.record.compatibility:
            if "local path" in problem:
                print(f"warning: {problem}", file=sys.stderr)


def add_parser(commands: argparse._SubParsersAction, default_store: str, store_help: str) -> None:
    parser = commands.add_parser(
        "export",
        help="merge a stored adapter into its base model, push it to the Hugging "
        "Face Hub, or write a folder vLLM / LoRAX serve",
    )
    parser.add_argument("name", help="stored adapter name")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--merge",
        metavar="OUT",
        help="write the base model with the adapter merged in to folder OUT "
        "(safetensors; loads with AutoModelForCausalLM.from_pretrained)",
    )
    what.add_argument(
        "--push", metavar="REPO", help="upload the adapter folder to the Hub repo REPO (needs a token: `hf auth login`)"
    )
    what.add_argument(
        "--for",
        dest="target",
        nargs=2,
        metavar=("ENGINE", "OUT"),
        help="write folder OUT for a serving engine: vllm (LoRAX loads the same folder)",
    )
    parser.add_argument("--store", default=default_store, help=store_help)
    parser.add_argument("--model", help="with --merge: base model to merge into (default: the one it was trained on)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--private", action="store_true", help="with --push: create the repo private")
    parser.add_argument(
        "--with-record",
        action="store_true",
        help="with --push: upload shoplora.json too (it holds a sample of your training examples)",
    )
    parser.set_defaults(run=_export)
