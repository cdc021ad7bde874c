"""The `real-v1` datasets: each one's folder, task spec, split and row -> Example mapping (one function per dataset).

prompts/real.py finds the folders and reads them; prompts/curation.py turns the mapped rows into train and test parts.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Sequence

from .curation import ELLIPSIS, INPUT_WORDS, RowToExample, clip
from .spec import Example, TaskSpec

SUITE = "real-v1"  # the suite these datasets form; it also seeds where a review's window starts


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
    return Example(clip(row["text"], INPUT_WORDS), row["label"])


def attributes_example(row: dict) -> Example | None:
    # The attributes to fill are named in the input (as ExtractGPT does): which attributes a title should have is
    # not knowable from the title, so without the names an exact-match score would mostly measure guessing.
    attributes: dict[str, list[str]] = row["attributes"]
    if not attributes or any(len(values) != 1 for values in attributes.values()):
        return None  # several gold values (36 noisy AE-110k slots): no single right answer to match exactly
    names = ", ".join(attributes)
    source = f"Category: {row['category']}\nTitle: {clip(row['text'], 80)}\nAttributes: {names}"
    answer = {name: values[0] for name, values in attributes.items()}
    return Example(source, json.dumps(answer, ensure_ascii=False))


def match_example(row: dict) -> Example:
    # Each offer gets about half the budget; what is cut is mostly the tail of long Abt-Buy descriptions.
    source = f"Offer A: {clip(row['product_a'], 55)}\nOffer B: {clip(row['product_b'], 55)}"
    return Example(source, "same" if int(row["label"]) == 1 else "different")


def product_qa_example(row: dict) -> Example | None:
    # Classify what a community answer to a yes/no question says. The other framings are not learnable here:
    # the question alone cannot predict the answer (the product is only an ASIN, no title or specs), and the free
    # answers are unverified, rambling text that a generate metric would score as noise. Reading an answer as
    # yes/no is learnable and useful (turning community answers into a product fact). '?' answers are dropped.
    if row.get("question_type") != "yes/no" or row.get("answer_type") not in ("Y", "N"):
        return None
    source = f"Question: {clip(row['question'], 50)}\nAnswer: {clip(row['answer'], 90)}"
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
    source = f"Question: {clip(row['question'], 25)}\nReview: {window}"
    return Example(source, json.dumps({"answer": answer}, ensure_ascii=False))


def stars_example(row: dict) -> Example | None:
    stars = str(row["label"])
    if stars not in STARS:
        return None
    title = clip(row.get("title") or "", 15)
    return Example(f"Title: {title}\nReview: {clip(row['text'], 120)}", stars)


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
