"""Hub tasks: real-data tasks read from Hugging Face hub datasets with `datasets.load_dataset`, for users with
internet: `load_hub_task("hub-banking77-intent", "test")`. They form the `hub` suite, which lists them without
downloading anything; their examples need internet. Rows go through the same curation as `real-v1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from .curation import INPUT_WORDS, RowToExample, check_labels, clip, split_parts
from .errors import DataError, TaskNotFoundError
from .spec import Example, TaskSpec
from .task import PARTS, Task

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
    return Example(f"Query: {clip(row['query'], 30)}\nProduct: {clip(row['product_title'], 80)}", label)


def bitext_example(row: dict) -> Example:
    # The instructions keep Bitext's {{Order Number}}-style placeholders: they stand for the entity, as in the data.
    return Example(clip(row["instruction"], INPUT_WORDS), row["intent"])


def banking77_example(row: dict) -> Example | None:
    label = row["label"]
    if isinstance(label, int):  # a copy without ClassLabel features: the id is the index into the hub's names
        if not 0 <= label < len(BANKING77_LABELS):
            return None  # -1 marks an unlabelled row
        label = BANKING77_LABELS[label]
    return Example(clip(row["text"], INPUT_WORDS), label)


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
    check_labels(hub.spec, examples, hub.dataset_id)
    given = None if hub.test_split is None else part
    return list(split_parts((given, example) for example in examples)[part])


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
