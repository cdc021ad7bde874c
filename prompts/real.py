"""Real-data tasks: the `real-v1` suite read from public datasets on disk, and hub datasets for users with internet.

`real-v1` reads the six datasets described in `<data dir>/README.md` (one folder each, `data.jsonl` +
`PROVENANCE.md`). The folder is `$SHOPLORA_DATA_DIR`, else `<repo root>/../shared/data/real`; without it the suite
is empty, so a fresh clone still works. Files are read only when a task's examples are asked for, then cached.

Hub tasks (`HUB_TASKS`) download with `datasets.load_dataset`: `load_hub_task("hub-banking77-intent", "test")`.
They form the `hub` suite, which lists them without downloading anything; their examples need internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import DataError, ShopLoRAError, TaskNotFoundError
from .synthetic import normalise
from .loaders import read_rows  # the reader user files go through: same checks and messages
from .spec import Example, TaskSpec
from .task import PARTS, Task

SUITE = "real-v1"
DATA_ENV = "SHOPLORA_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "real"

TRAIN_CAP = 2000
TEST_CAP = 500
# Datasets without a split of their own give a quarter of their rows (at most TEST_CAP) to the test part.
TEST_SHARE = 4
# Inputs are cut to about 150 words so that most rows (p95) stay under ~256 tokens with the prompt; rows full of part
# numbers or digits tokenise densely and reach ~570 tokens (real-product-qa), so training must still cap length.
INPUT_WORDS = 150
# A dataset split name -> our part. Validation rows join train: the suite has no validation part.
SPLIT_TO_PART = {"train": "train", "dev": "train", "valid": "train", "validation": "train", "test": "test"}
ELLIPSIS = "…"
CHARS_PER_WORD = 6  # English averages about 5 characters and a space a word

RowToExample = Callable[[dict], "Example | None"]  # None: the row does not fit the task (e.g. an open question)


# --- shared helpers -------------------------------------------------------------------------------------------------


def _clip(text: str, words: int) -> str:
    """`text` cut to its first `words` words and CHARS_PER_WORD * `words` characters, with an ellipsis if cut."""
    parts = str(text).split()
    clipped = " ".join(parts[:words])
    if len(clipped) > CHARS_PER_WORD * words:  # long codes and URLs cost many tokens per "word"
        clipped = clipped[: CHARS_PER_WORD * words].rsplit(" ", 1)[0]
    return clipped if len(clipped) == len(" ".join(parts)) else clipped + " " + ELLIPSIS


def _order_key(example: Example) -> bytes:
    # A hash of the input is a shuffle that needs no seed, does not depend on the file's row order, and sends
    # repeated inputs to the same place.
    return hashlib.sha1(normalise(example.input).encode("utf-8")).digest()


def _unique(examples: Iterable[Example]) -> list[Example]:
    """One example per input (as `normalise` sees it); inputs given different answers are dropped as ambiguous."""
    outputs: dict[str, set[str]] = {}
    first: dict[str, Example] = {}
    for example in examples:
        key = normalise(example.input)
        outputs.setdefault(key, set()).add(example.output)
        first.setdefault(key, example)
    return [example for key, example in first.items() if len(outputs[key]) == 1]


def _check_labels(spec: TaskSpec, examples: list[Example], where: str) -> None:
    """Raise DataError when a classify task's mapped answers leave its label set (the source's schema changed)."""
    unknown = sorted({e.output for e in examples} - set(spec.labels)) if spec.kind == "classify" else []
    if unknown:
        raise DataError(
            f"{where}: labels {unknown[:5]} are not among {spec.name}'s labels; the dataset's schema "
            "changed, so update its mapping in prompts/real.py"
        )


def _split_parts(pairs: Iterable[tuple[str | None, Example]]) -> dict[str, tuple[Example, ...]]:
    """Train and test parts from (part or None, example) pairs: the given parts, else a hash-ordered cut.

    Deterministic, deduplicated, no input in both parts, capped at TRAIN_CAP / TEST_CAP.
    """
    pairs = list(pairs)
    if all(part is None for part, _ in pairs):
        ordered = sorted(_unique(example for _, example in pairs), key=_order_key)
        held = min(TEST_CAP, len(ordered) // TEST_SHARE)
        test, train = ordered[:held], ordered[held:]
    else:
        test = _unique(example for part, example in pairs if part == "test")
        train = _unique(example for part, example in pairs if part == "train")
    in_test = {normalise(example.input) for example in test}
    train = [example for example in train if normalise(example.input) not in in_test]
    return {
        "train": tuple(sorted(train, key=_order_key)[:TRAIN_CAP]),
        "test": tuple(sorted(test, key=_order_key)[:TEST_CAP]),
    }


# --- row -> Example, one function per on-disk dataset ---------------------------------------------------------------

PRICERUNNER_CATEGORIES = (
    "CPUs",
    "Digital Cameras",
    "Dishwashers",
    "Freezers",
    "Fridge Freezers",
    "Fridges",
    "Microwaves",
    "Mobile Phones",
    "TVs",
    "Washing Machines",
)
MATCH_LABELS = ("same", "different")
YES_NO = ("yes", "no")
STARS = ("1", "2", "3", "4", "5")
UNANSWERABLE = "unanswerable"


def category_example(row: dict) -> Example:
    return Example(_clip(row["text"], INPUT_WORDS), row["label"])


def attributes_example(row: dict) -> Example | None:
    # The attributes to fill are named in the input (as ExtractGPT does): which attributes a title should have is
    # not knowable from the title, so without the names an exact-match score would mostly measure guessing.
    attributes: dict[str, list[str]] = row["attributes"]
    if not attributes or any(len(values) != 1 for values in attributes.values()):
        return None  # several gold values (36 noisy AE-110k slots): no single right answer to match exactly
    names = ", ".join(attributes)
    source = f"Category: {row['category']}\nTitle: {_clip(row['text'], 80)}\nAttributes: {names}"
    answer = {name: values[0] for name, values in attributes.items()}
    return Example(source, json.dumps(answer, ensure_ascii=False))


def match_example(row: dict) -> Example:
    # Each offer gets about half the budget; what is cut is mostly the tail of long Abt-Buy descriptions.
    source = f"Offer A: {_clip(row['product_a'], 55)}\nOffer B: {_clip(row['product_b'], 55)}"
    return Example(source, "same" if int(row["label"]) == 1 else "different")


def product_qa_example(row: dict) -> Example | None:
    # Classify what a community answer to a yes/no question says. The other framings are not learnable here:
    # the question alone cannot predict the answer (the product is only an ASIN, no title or specs), and the free
    # answers are unverified, rambling text that a generate metric would score as noise. Reading an answer as
    # yes/no is learnable and useful (turning community answers into a product fact). '?' answers are dropped.
    if row.get("question_type") != "yes/no" or row.get("answer_type") not in ("Y", "N"):
        return None
    source = f"Question: {_clip(row['question'], 50)}\nAnswer: {_clip(row['answer'], 90)}"
    return Example(source, "yes" if row["answer_type"] == "Y" else "no")


CONTEXT_WORDS = 100
MAX_ANSWER_WORDS = 30


def _review_window(row: dict, span: tuple[int, int] | None) -> str | None:
    """Up to CONTEXT_WORDS words of the review holding the answer `span` (character offsets), ellipses where cut.

    The window's start is drawn per row (seeded by the row id), for unanswerable rows too, so where the window
    sits in the review says nothing about whether the answer is in it.
    """
    context = row["context"]
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
    if not words:
        return None
    last_start = max(0, len(words) - CONTEXT_WORDS)
    lowest, highest = 0, last_start
    if span is not None:
        inside = [i for i, (start, end) in enumerate(words) if start < span[1] and end > span[0]]
        if not inside or inside[-1] - inside[0] + 1 > CONTEXT_WORDS:
            return None
        lowest, highest = max(0, inside[-1] - CONTEXT_WORDS + 1), min(inside[0], last_start)
    start = random.Random(f"{SUITE}:{row.get('q_review_id', context[:64])}").randint(lowest, highest)
    end = min(len(words), start + CONTEXT_WORDS) - 1
    text = context[words[start][0] : words[end][1]]
    return ("" if start == 0 else ELLIPSIS + " ") + text + ("" if end == len(words) - 1 else " " + ELLIPSIS)


def review_qa_example(row: dict) -> Example | None:
    # The first annotated span is the answer (a few rows have a second, overlapping one). The answer text comes
    # from the offsets, so it is always a substring of the review window shown.
    span = None
    answer = UNANSWERABLE
    if row["answers"]:
        first = row["answers"][0]
        span = (int(first["start"]), int(first["end"]))
        answer = row["context"][span[0] : span[1]].strip()
        if not answer or len(answer.split()) > MAX_ANSWER_WORDS:
            return None  # a whole paragraph as the "span": not a short extraction, and it would not fit
    window = _review_window(row, span)
    if window is None:
        return None
    source = f"Question: {_clip(row['question'], 25)}\nReview: {window}"
    return Example(source, json.dumps({"answer": answer}, ensure_ascii=False))


def stars_example(row: dict) -> Example | None:
    stars = str(row["label"])
    if stars not in STARS:
        return None
    title = _clip(row.get("title") or "", 15)
    return Example(f"Title: {title}\nReview: {_clip(row['text'], 120)}", stars)


# CLINC150 (Larson et al. 2019): 10 domains of 15 intents. Two domains are a held-out support desk (a bank and its
# cards: 30 intents meta-training never sees), two others a meta-train one; out-of-scope requests ("oos") are no
# label of either task: they are what `abstain_below` should catch (`clinc_out_of_scope`).
CLINC_HELD_OUT_DOMAINS = ("banking", "credit_cards")
CLINC_META_TRAIN_DOMAINS = ("home", "kitchen_and_dining")
CLINC_INTENTS = {
    "banking": (
        "account_blocked",
        "balance",
        "bill_balance",
        "bill_due",
        "freeze_account",
        "interest_rate",
        "min_payment",
        "order_checks",
        "pay_bill",
        "pin_change",
        "report_fraud",
        "routing",
        "spending_history",
        "transactions",
        "transfer",
    ),
    "credit_cards": (
        "application_status",
        "apr",
        "card_declined",
        "credit_limit",
        "credit_limit_change",
        "credit_score",
        "damaged_card",
        "expiration_date",
        "improve_credit_score",
        "international_fees",
        "new_card",
        "redeem_rewards",
        "replacement_card_duration",
        "report_lost_card",
        "rewards_balance",
    ),
    "home": (
        "calendar",
        "calendar_update",
        "next_song",
        "order",
        "order_status",
        "play_music",
        "reminder",
        "reminder_update",
        "shopping_list",
        "shopping_list_update",
        "smart_home",
        "todo_list",
        "todo_list_update",
        "update_playlist",
        "what_song",
    ),
    "kitchen_and_dining": (
        "accept_reservations",
        "calories",
        "cancel_reservation",
        "confirm_reservation",
        "cook_time",
        "food_last",
        "how_busy",
        "ingredient_substitution",
        "ingredients_list",
        "meal_suggestion",
        "nutrition_info",
        "recipe",
        "restaurant_reservation",
        "restaurant_reviews",
        "restaurant_suggestion",
    ),
}
OUT_OF_SCOPE = "oos"


def clinc_example(domains: Sequence[str]) -> RowToExample:
    """Rows of CLINC150 in `domains` as intent examples; other rows (other domains, out of scope) are skipped."""

    def to_example(row: dict) -> Example | None:
        return Example(row["text"], row["label"]) if row["domain"] in domains else None

    return to_example


def clinc_out_of_scope(part: str = "test") -> list[str]:
    """CLINC150's out-of-scope requests of a part ("train" also holds "val"): inputs no intent covers, for measuring
    how well abstaining catches them. Needs the real-data folder."""
    path = _data_file(require_data_dir(), REAL_DATASETS_BY_FOLDER["clinc150"])
    return [
        row["text"]
        for _, row in read_rows(path)
        if row["label"] == OUT_OF_SCOPE and SPLIT_TO_PART.get(row["split"]) == part
    ]


@dataclass(frozen=True)
class RealDataset:
    """A `real-v1` task: the dataset folder it reads, its spec, its split and the row -> Example mapping."""

    folder: str
    spec: TaskSpec
    split: str
    to_example: RowToExample


# Held out: product matching (search) and star rating (reviews), so evaluation has real tasks whose label sets and
# input shapes meta-training on this suite never saw. Skewed classify tasks are scored with macro F1, because
# accuracy would reward always answering the majority label (90% "different", 70% five stars, 73% "yes").
REAL_DATASETS: tuple[RealDataset, ...] = (
    RealDataset(
        "pricerunner_product_categorisation",
        TaskSpec(
            "real-product-category",
            "product",
            "classify",
            "Classify this merchant's offer title into its PriceRunner product category.",
            labels=PRICERUNNER_CATEGORIES,
        ),
        "meta-train",
        category_example,
    ),
    RealDataset(
        "product_attribute_extraction",
        TaskSpec(
            "real-product-attributes",
            "product",
            "extract",
            "Extract the listed attributes from the product title as a JSON object, in the listed order. Copy each "
            'value exactly as written; use "n/a" when the title lacks it.',
        ),
        "meta-train",
        attributes_example,
    ),
    RealDataset(
        "product_matching_magellan",
        TaskSpec(
            "real-product-match",
            "product",
            "classify",
            "Do these two offers from different shops describe the same product? Answer same or different.",
            labels=MATCH_LABELS,
            metric="macro_f1",
        ),
        "held-out",
        match_example,
    ),
    RealDataset(
        "amazon_qa_appliances",
        TaskSpec(
            "real-product-qa",
            "product",
            "classify",
            "A shopper answered a yes/no question about an appliance. Does the answer mean yes or no?",
            labels=YES_NO,
            metric="macro_f1",
        ),
        "meta-train",
        product_qa_example,
    ),
    RealDataset(
        "subjqa_amazon_reviews_qa",
        TaskSpec(
            "real-review-qa",
            "reviews",
            "extract",
            'Answer the question from the review as JSON {"answer": ...}: copy the shortest exact words that answer '
            'it, or "unanswerable" if the review does not.',
        ),
        "meta-train",
        review_qa_example,
    ),
    RealDataset(
        "datafiniti_amazon_reviews",
        TaskSpec(
            "real-review-stars",
            "reviews",
            "classify",
            "How many stars (1 to 5) did the customer give the product with this review?",
            labels=STARS,
            metric="macro_f1",
        ),
        "held-out",
        stars_example,
    ),
    RealDataset(
        "clinc150",
        TaskSpec(
            "real-service-intent-home",
            "service",
            "classify",
            "Which intent does this request to a home and dining assistant express? Answer with one intent.",
            labels=tuple(i for d in CLINC_META_TRAIN_DOMAINS for i in CLINC_INTENTS[d]),
        ),
        "meta-train",
        clinc_example(CLINC_META_TRAIN_DOMAINS),
    ),
    RealDataset(
        "clinc150",
        TaskSpec(
            "real-service-intent-bank",
            "service",
            "classify",
            "Which intent does this message to a bank's support desk express? Answer with one intent.",
            labels=tuple(i for d in CLINC_HELD_OUT_DOMAINS for i in CLINC_INTENTS[d]),
        ),
        "held-out",
        clinc_example(CLINC_HELD_OUT_DOMAINS),
    ),
)
REAL_DATASETS_BY_FOLDER = {d.folder: d for d in REAL_DATASETS}


# --- where the data is ----------------------------------------------------------------------------------------------


def _configured_dir() -> Path:
    configured = os.environ.get(DATA_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_DATA_DIR


def _data_file(directory: Path, dataset: RealDataset) -> Path:
    return directory / dataset.folder / "data.jsonl"


def data_dir() -> Path | None:
    """The real-data folder ($SHOPLORA_DATA_DIR, else ../shared/data/real), or None when it holds no dataset."""
    directory = _configured_dir()
    return directory if any(_data_file(directory, d).is_file() for d in REAL_DATASETS) else None


def require_data_dir() -> Path:
    """`data_dir()`, for callers that asked for real-v1 by name: its absence is an error, not an empty suite."""
    directory = data_dir()
    if directory is None:
        raise ShopLoRAError(
            f"the real-data suite needs the datasets folder: set {DATA_ENV}=/path/to/data/real (the folder holding "
            f"{REAL_DATASETS[0].folder}/data.jsonl and the other datasets); looked in {_configured_dir()}"
        )
    return directory


def real_tasks() -> list[Task]:
    """The `real-v1` tasks whose dataset file is present; [] without the data folder. Reads no data file."""
    directory = data_dir()
    if directory is None:
        return []
    return [
        Task(d.spec, d.split, SUITE, partial(_load, d, directory))
        for d in REAL_DATASETS
        if _data_file(directory, d).is_file()
    ]


def _load(dataset: RealDataset, directory: Path, part: str, seed: int) -> list[Example]:
    # `seed` is not used: a real task's parts are fixed rows, so scores compare across runs and seeds; callers
    # that sample shots from the train part do so with their own seed.
    return list(_parts(dataset, directory)[part])


@lru_cache(maxsize=None)
def _parts(dataset: RealDataset, directory: Path) -> dict[str, tuple[Example, ...]]:
    path = _data_file(directory, dataset)
    pairs = []
    for place, row in read_rows(path):
        try:
            example = dataset.to_example(row)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise DataError(
                f"{place}: the row does not have the fields this task reads ({error!r}); "
                f"see {path.parent / 'PROVENANCE.md'} for the expected fields"
            ) from None
        if example is not None:
            pairs.append((SPLIT_TO_PART.get(row["split"]) if row.get("split") else None, example))
    _check_labels(dataset.spec, [example for _, example in pairs], str(path))
    parts = _split_parts(pairs)
    if not parts["train"] or not parts["test"]:
        raise DataError(
            f"{path}: too few usable rows for {dataset.spec.name} "
            f"({len(parts['train'])} train, {len(parts['test'])} test)"
        )
    return parts


# --- hub datasets ---------------------------------------------------------------------------------------------------

ESCI_LABELS = ("Exact", "Substitute", "Complement", "Irrelevant")
ESCI_SHORT = {label[0]: label for label in ESCI_LABELS}  # the amazon-science release codes labels E/S/C/I
BITEXT_INTENTS = (
    "cancel_order",
    "change_order",
    "change_shipping_address",
    "check_cancellation_fee",
    "check_invoice",
    "check_payment_methods",
    "check_refund_policy",
    "complaint",
    "contact_customer_service",
    "contact_human_agent",
    "create_account",
    "delete_account",
    "delivery_options",
    "delivery_period",
    "edit_account",
    "get_invoice",
    "get_refund",
    "newsletter_subscription",
    "payment_issue",
    "place_order",
    "recover_password",
    "registration_problems",
    "review",
    "set_up_shipping_address",
    "switch_account",
    "track_order",
    "track_refund",
)
# The ClassLabel names of PolyAI/banking77 in id order. Used only when a copy lost its features (e.g. exported to
# JSON with integer labels); a real hub download names its labels itself.
BANKING77_LABELS = (
    "activate_my_card",
    "age_limit",
    "apple_pay_or_google_pay",
    "atm_support",
    "automatic_top_up",
    "balance_not_updated_after_bank_transfer",
    "balance_not_updated_after_cheque_or_cash_deposit",
    "beneficiary_not_allowed",
    "cancel_transfer",
    "card_about_to_expire",
    "card_acceptance",
    "card_arrival",
    "card_delivery_estimate",
    "card_linking",
    "card_not_working",
    "card_payment_fee_charged",
    "card_payment_not_recognised",
    "card_payment_wrong_exchange_rate",
    "card_swallowed",
    "cash_withdrawal_charge",
    "cash_withdrawal_not_recognised",
    "change_pin",
    "compromised_card",
    "contactless_not_working",
    "country_support",
    "declined_card_payment",
    "declined_cash_withdrawal",
    "declined_transfer",
    "direct_debit_payment_not_recognised",
    "disposable_card_limits",
    "edit_personal_details",
    "exchange_charge",
    "exchange_rate",
    "exchange_via_app",
    "extra_charge_on_statement",
    "failed_transfer",
    "fiat_currency_support",
    "get_disposable_virtual_card",
    "get_physical_card",
    "getting_spare_card",
    "getting_virtual_card",
    "lost_or_stolen_card",
    "lost_or_stolen_phone",
    "order_physical_card",
    "passcode_forgotten",
    "pending_card_payment",
    "pending_cash_withdrawal",
    "pending_top_up",
    "pending_transfer",
    "pin_blocked",
    "receiving_money",
    "Refund_not_showing_up",
    "request_refund",
    "reverted_card_payment?",
    "supported_cards_and_currencies",
    "terminate_account",
    "top_up_by_bank_transfer_charge",
    "top_up_by_card_charge",
    "top_up_by_cash_or_cheque",
    "top_up_failed",
    "top_up_limits",
    "top_up_reverted",
    "topping_up_by_card",
    "transaction_charged_twice",
    "transfer_fee_charged",
    "transfer_into_account",
    "transfer_not_received_by_recipient",
    "transfer_timing",
    "unable_to_verify_identity",
    "verify_my_identity",
    "verify_source_of_funds",
    "verify_top_up",
    "virtual_card_not_working",
    "visa_or_mastercard",
    "why_verify_identity",
    "wrong_amount_of_cash_received",
    "wrong_exchange_rate_for_cash_withdrawal",
)
# Rows looked at per hub split: a fixed shuffle of the split cut to this many, so ESCI's 2M rows are not all mapped.
HUB_MAX_ROWS = 20000


def esci_example(row: dict) -> Example | None:
    # tasksource/esci joins the queries with product text and spells labels out (Exact, ...). Only the US locale is
    # kept: the es/jp rows are in Spanish and Japanese.
    if row.get("product_locale") not in (None, "us") or not row.get("product_title"):
        return None
    label = ESCI_SHORT.get(row["esci_label"], row["esci_label"])
    return Example(f"Query: {_clip(row['query'], 30)}\nProduct: {_clip(row['product_title'], 80)}", label)


def bitext_example(row: dict) -> Example:
    # The instructions keep Bitext's {{Order Number}}-style placeholders: they stand for the entity, as in the data.
    return Example(_clip(row["instruction"], INPUT_WORDS), row["intent"])


def banking77_example(row: dict) -> Example | None:
    label = row["label"]
    if isinstance(label, int):  # a copy without ClassLabel features: the id is the index into the hub's names
        if not 0 <= label < len(BANKING77_LABELS):
            return None  # -1 marks an unlabelled row
        label = BANKING77_LABELS[label]
    return Example(_clip(row["text"], INPUT_WORDS), label)


@dataclass(frozen=True)
class HubTaskSpec:
    """A task read from a Hugging Face hub dataset: where it is, how a row becomes an Example, and its spec."""

    spec: TaskSpec
    dataset_id: str
    to_example: RowToExample  # gets rows whose ClassLabel columns are already names
    config: str | None = None
    train_split: str = "train"
    test_split: str | None = "test"  # None: one split only; a hash-ordered quarter (<= TEST_CAP) is the test part
    split: str = "held-out"

    @property
    def name(self) -> str:
        return self.spec.name


# All held out: they are real-world transfer checks for a model meta-trained on the built-in or on-disk suites.
HUB_TASKS: dict[str, HubTaskSpec] = {
    hub.name: hub
    for hub in (
        HubTaskSpec(
            TaskSpec(
                "hub-esci-relevance",
                "search",
                "classify",
                "How relevant is the product to the shopper's query? Exact: matches it; Substitute: could replace it; "
                "Complement: goes with it; Irrelevant: neither.",
                labels=ESCI_LABELS,
                metric="macro_f1",
            ),
            "tasksource/esci",
            esci_example,
        ),
        HubTaskSpec(
            TaskSpec(
                "hub-bitext-intent",
                "service",
                "classify",
                "What does the customer want? Answer with the support intent of the message.",
                labels=BITEXT_INTENTS,
            ),
            "bitext/Bitext-customer-support-llm-chatbot-training-dataset",
            bitext_example,
            test_split=None,
        ),
        HubTaskSpec(
            TaskSpec(
                "hub-banking77-intent",
                "service",
                "classify",
                "What does the banking customer want? Answer with the intent of the message.",
                labels=BANKING77_LABELS,
            ),
            "PolyAI/banking77",
            banking77_example,
        ),
    )
}


def _class_names(dataset: Any) -> dict[str, list[str]]:
    """Column -> label names for the dataset's ClassLabel columns (read from `features`, without importing datasets)."""
    features = getattr(dataset, "features", None) or {}
    return {column: list(feature.names) for column, feature in features.items() if hasattr(feature, "names")}


def _named(row: dict, names: dict[str, list[str]]) -> dict:
    return {
        column: names[column][value] if column in names and isinstance(value, int) and value >= 0 else value
        for column, value in row.items()
    }


def hub_examples(hub: HubTaskSpec, dataset: Any, part: str) -> list[Example]:
    """The `part` examples of `hub` from a `datasets.Dataset` in its schema (downloaded, or built from a local copy).

    The one mapping for both: a fixed shuffle cut to HUB_MAX_ROWS, ClassLabel ids to names, `hub.to_example`,
    then the same dedupe, split and caps as the real-v1 suite.
    """
    dataset = dataset.shuffle(seed=0)
    dataset = dataset.select(range(min(len(dataset), HUB_MAX_ROWS)))
    names = _class_names(dataset)
    examples = [e for e in (hub.to_example(_named(dict(row), names)) for row in dataset) if e is not None]
    _check_labels(hub.spec, examples, hub.dataset_id)
    given = None if hub.test_split is None else part
    return list(_split_parts((given, example) for example in examples)[part])


def load_hub_task(name: str, part: str = "train") -> list[Example]:
    """Download hub task `name` (see HUB_TASKS) and return its `part` ("train" or "test") examples."""
    if name not in HUB_TASKS:
        raise TaskNotFoundError(f"no hub task called {name!r}; the hub tasks are: {', '.join(HUB_TASKS)}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    hub = HUB_TASKS[name]
    split = hub.test_split if part == "test" and hub.test_split else hub.train_split
    try:
        import datasets

        dataset = datasets.load_dataset(hub.dataset_id, hub.config, split=split)
    except Exception as error:  # offline, unknown id, removed split, no `datasets`: all need the same advice
        raise DataError(
            f"could not download {hub.dataset_id} from the Hugging Face hub: {error}; offline, export "
            "the data to JSONL and use load_examples"
        ) from error
    return hub_examples(hub, dataset, part)


def hub_tasks() -> list[Task]:
    """The hub tasks as registry `Task`s (suite "hub"); building the list downloads nothing."""
    return [Task(hub.spec, hub.split, "hub", partial(_load_hub, hub.name)) for hub in HUB_TASKS.values()]


def _load_hub(name: str, part: str, seed: int) -> list[Example]:
    return load_hub_task(name, part)  # fixed parts, as for real-v1: `seed` does not change the rows
