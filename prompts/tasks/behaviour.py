"""Behaviour family: next purchase department, session purchase intent, new-need discovery, churn risk."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..synthetic import GeneratedTask
from ..noise import pick
from ..spec import Example, TaskSpec
from ..world import CATALOGUE, DEPARTMENT_OF, Product, World

DEPARTMENTS = tuple(CATALOGUE)

# What a purchase implies the customer will need until some purchase covers it: bought type -> (need, department of
# the need). Needs outside the catalogue are bought as EXTRA_BRANDS items.
NEEDS: dict[str, tuple[str, str]] = {
    "smartphone": ("phone case", "electronics"),
    "laptop": ("laptop sleeve", "electronics"),
    "coffee maker": ("coffee beans", "grocery"),
    "frying pan": ("olive oil", "grocery"),
    "dog leash": ("dog food", "pets"),
    "cat litter": ("cat food", "pets"),
    "bicycle helmet": ("bike lights", "sports"),
    "yoga mat": ("yoga blocks", "sports"),
    "shampoo": ("conditioner", "beauty"),
    "winter jacket": ("winter gloves", "fashion"),
    "bed sheets": ("pillowcases", "home"),
}
EXTRA_BRANDS: dict[str, tuple[str, ...]] = {
    "laptop sleeve": ("Casewise", "Armorly"),
    "cat food": ("Kibblo", "Purrfect"),
    "bike lights": ("Velosafe", "Lumo"),
    "yoga blocks": ("Zenflex", "Asana Pro"),
    "conditioner": ("Silkroot", "Purelle"),
    "winter gloves": ("Polarix", "Fjellhus"),
    "pillowcases": ("Dreamweave", "Softnest"),
}
# Catalogue types plus the needs that are not catalogue products (laptop sleeve, cat food, ...).
KIND_DEPARTMENT = DEPARTMENT_OF | {n: d for n, d in NEEDS.values()}
# Purchases that imply nothing: distractors that must not create a need of their own.
SELF_CONTAINED = tuple(t for t in KIND_DEPARTMENT if t not in NEEDS and t != "dog food")
# Puppy food bought this long ago, with no dog food since, means the dog is grown: the need is adult food.
PUPPY_GROWN_DAYS = 270


@dataclass(frozen=True)
class Item:
    """A purchasable thing in a history: `kind` is its product type or need name ("puppy dog food" for dog food)."""

    kind: str
    department: str
    name: str


@dataclass(frozen=True)
class Event:
    days_ago: int
    text: str
    department: str
    bought: bool


def _name(product: Product) -> str:
    return f"{product.brand} {product.model} {product.product_type}"


def _item(rng: random.Random, world: World, kind: str) -> Item:
    """An item of `kind` named by brand and kind only: histories stay short and the kind stays readable."""
    if kind in EXTRA_BRANDS:
        return Item(kind, KIND_DEPARTMENT[kind], f"{rng.choice(EXTRA_BRANDS[kind])} {kind}")
    if kind.endswith("dog food"):
        # The life stage is what was bought, so it is part of the kind (the puppy rule reads it).
        return Item(kind, "pets", f"{rng.choice(world.of_type('dog food')).brand} {kind}")
    # Pod machines take capsules, not beans, so they would not imply the coffee-beans need.
    product = rng.choice([p for p in world.of_type(kind) if p.attributes.get("type") != "pod"])
    return Item(kind, product.department, f"{product.brand} {kind}")


def _ago(days: int) -> str:
    if days == 0:
        return "today"
    if days < 14:
        return f"{days}d ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    return f"{days // 30} months ago"


def _history(events: list[Event]) -> str:
    """Events oldest first: 'viewed X (12d ago); bought Y (3d ago)'."""
    ordered = sorted(events, key=lambda e: -e.days_ago)
    return "; ".join(f"{e.text} ({_ago(e.days_ago)})" for e in ordered)


def _open_needs(purchases: list[tuple[int, Item]]) -> list[str]:
    """Needs implied by some purchase that no purchase covers, in order of appearance (the ground-truth rule)."""
    kinds = [item.kind for _, item in purchases]
    needs: list[str] = []
    for _, item in purchases:
        need = NEEDS.get(item.kind, ("", ""))[0]
        # Any dog food covers a leash's need for dog food, whatever the life stage.
        if need and not any(k == need or k.endswith(f" {need}") for k in kinds) and need not in needs:
            needs.append(need)
    dog_food = [(days, item.kind) for days, item in purchases if item.kind.endswith("dog food")]
    if dog_food and min(dog_food)[1] == "puppy dog food" and min(dog_food)[0] >= PUPPY_GROWN_DAYS:
        needs.append("adult dog food")
    return needs


def _purchase(rng: random.Random, world: World, kind: str, days: int) -> tuple[int, Item]:
    return days, _item(rng, world, kind)


def _settled_purchases(rng: random.Random, world: World) -> list[tuple[int, Item]]:
    """One or two purchases that leave no need open: a self-contained item, or a need-making item with its cover."""
    style = rng.random()
    if style < 0.45:
        return [_purchase(rng, world, rng.choice(SELF_CONTAINED), rng.randint(1, 120))]
    if style < 0.85:
        trigger = rng.choice(tuple(NEEDS))
        need = NEEDS[trigger][0]
        days = rng.randint(5, 200)
        cover = f"{pick(rng, 'adult', 'senior')} dog food" if need == "dog food" else need
        return [_purchase(rng, world, trigger, days), _purchase(rng, world, cover, rng.randint(0, days))]
    # Puppy food bought recently: the dog is still a puppy, nothing is missing yet.
    return [_purchase(rng, world, "puppy dog food", rng.randint(3, 150))]


def _bought(purchases: list[tuple[int, Item]]) -> list[Event]:
    return [Event(days, f"bought {item.name}", item.department, True) for days, item in purchases]


def _interest(rng: random.Random, world: World, department: str, days: int) -> Event:
    """A view, search or cart add in `department` that is not a purchase."""
    product = rng.choice(world.in_department(department))
    style = rng.random()
    if style < 0.5:
        text = f"viewed {product.brand} {product.product_type}"
    elif style < 0.75:
        value = rng.choice(list(product.attributes.values()))
        text = f"searched '{value} {product.product_type}'"
    else:
        text = f"carted {product.brand} {product.product_type}"
    return Event(days, text, department, False)


def _next_department(events: list[Event], purchases: list[tuple[int, Item]]) -> str | None:
    """The rule: the one department with 2+ non-purchase events and no purchase, else the one open need's department."""
    bought = {e.department for e in events if e.bought}
    counts = {d: sum(e.department == d and not e.bought for e in events) for d in DEPARTMENTS}
    hot = [d for d in DEPARTMENTS if counts[d] >= 2 and d not in bought]
    if hot:
        return hot[0] if len(hot) == 1 else None
    needs = _open_needs(purchases)
    return KIND_DEPARTMENT[needs[0]] if len(needs) == 1 else None


def next_category(rng: random.Random, world: World, label: str | None) -> Example:
    triggers = [t for t, (_, d) in NEEDS.items() if d == label]
    while True:
        purchases: list[tuple[int, Item]] = []
        events: list[Event] = []
        if triggers and rng.random() < 0.4:
            # Signal: a recent purchase whose need is still open.
            purchases.append(_purchase(rng, world, rng.choice(triggers), rng.randint(1, 40)))
        else:
            # Signal: repeated interest in one department, nothing bought there.
            events += [_interest(rng, world, label, rng.randint(0, 12)) for _ in range(rng.randint(2, 3))]
        for _ in range(rng.randint(1, 2)):
            purchases += _settled_purchases(rng, world)
        # Distractors: single looks at other departments, or a department looked at twice and then bought from.
        others = [d for d in DEPARTMENTS if d != label]
        rng.shuffle(others)
        for department in others[: rng.randint(1, 2)]:
            days = rng.randint(1, 30)
            events.append(_interest(rng, world, department, days))
            if rng.random() < 0.3:
                events.append(_interest(rng, world, department, days))
                kind = rng.choice([t for t in SELF_CONTAINED if KIND_DEPARTMENT[t] == department])
                purchases.append(_purchase(rng, world, kind, max(0, days - 1)))
        events += _bought(purchases)
        if len(events) <= 6 and _next_department(events, purchases) == label:
            return Example(f"History: {_history(events)}", label)


def _dwell(rng: random.Random, low: int, high: int) -> str:
    seconds = rng.randint(low, high)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def purchase_intent(rng: random.Random, world: World, label: str | None) -> Example:
    # A decision list, checked in order: payment details entered -> buy_now; a price stall -> waiting_for_discount;
    # several items of one type -> comparing; otherwise browsing. Each label also carries steps of the later ones
    # (a failed coupon before paying, a rival viewed before a price alert) so no single step decides it.
    product = rng.choice(world.products)
    rivals = [p for p in world.of_type(product.product_type) if p.sku != product.sku]
    rng.shuffle(rivals)
    short = f"{product.brand} {product.model}"
    coupon = pick(rng, "SAVE10", "WELCOME15", "SPRING20", "VIP5")
    steps: list[str] = []
    if label != "browsing" and rng.random() < 0.4:
        steps.append(f"searched '{rng.choice(list(product.attributes.values()))} {product.product_type}'")
    if label == "browsing":
        others = [p for p in world.products if p.product_type != product.product_type]
        rng.shuffle(others)
        shown, wanted = [product], rng.randint(3, 4)
        for other in others:
            if len(shown) < wanted and all(other.product_type != s.product_type for s in shown):
                shown.append(other)
        steps += [f"viewed {_name(p)} ({_dwell(rng, 4, 45)})" for p in shown]
        if rng.random() < 0.5:
            verb = pick(rng, "wishlisted", "carted")
            steps.insert(rng.randint(1, len(steps)), f"{verb} {shown[0].brand} {shown[0].model}")
    elif label == "comparing":
        for p in [product, *rivals[: rng.randint(1, 2)]]:
            steps.append(f"viewed {_name(p)} ({_dwell(rng, 40, 300)})")
        if rng.random() < 0.5:
            steps.append(pick(rng, "compared specs", "opened comparison table", f"read reviews of {short}"))
        if rng.random() < 0.5:
            steps.append(f"carted {short}")
    else:
        if rng.random() < 0.35:
            steps.append(f"viewed {_name(rivals[0])} ({_dwell(rng, 10, 120)})")
        steps.append(f"viewed {_name(product)} ({_dwell(rng, 20, 240)})")
        carted = label == "buy_now" or rng.random() < 0.7
        if carted:
            steps.append(f"carted {short}")
        if label == "buy_now":
            if rng.random() < 0.35:
                steps.append(f"coupon {coupon} {pick(rng, 'accepted', 'accepted', 'rejected')}")
            steps.append("started checkout")
            if rng.random() < 0.5:
                steps.append("entered address")
            steps.append(pick(rng, "entered card details", "chose PayPal", "entered payment details"))
        else:
            stalls = [f"set price alert on {short}"]
            if carted:
                stalls += [f"coupon {coupon} rejected", "started checkout, left at the total",
                           f"removed {short} from cart after seeing shipping cost"]
            rng.shuffle(stalls)
            steps += stalls[: rng.randint(1, 2)]
    if rng.random() < 0.15:
        steps.insert(rng.randint(0, len(steps) // 2), "opened today's deals")
    return Example(f"Session: {'; '.join(steps)}", label)


def _orders(purchases: list[tuple[int, Item]]) -> str:
    return _history([Event(days, item.name, item.department, True) for days, item in purchases])


def new_need(rng: random.Random, world: World, label: str | None) -> Example:
    # The trigger is drawn first and the rest redrawn until it is the only open need, so every need is equally common.
    trigger = rng.choice((*NEEDS, "puppy dog food"))
    while True:
        if trigger == "puppy dog food":
            purchases = [_purchase(rng, world, trigger, rng.randint(PUPPY_GROWN_DAYS, 420))]
        else:
            purchases = [_purchase(rng, world, trigger, rng.randint(0, 150))]
        for _ in range(rng.randint(1, 2)):
            purchases += _settled_purchases(rng, world)
        needs = _open_needs(purchases)
        if len(needs) == 1 and len(purchases) <= 5:
            return Example(f"Orders: {_orders(purchases)}", needs[0])


CHURN_SIGNALS = ("last order", "orders falling", "no logins", "no newsletter", "open issue", "cancelled")
CHURN_COUNTS = {"low": (0, 1, 1, 1), "medium": (2, 3), "high": (4, 4, 4, 5, 6)}


def churn(rng: random.Random, world: World, label: str | None) -> Example:
    # Risk = number of signals present: 0-1 low, 2-3 medium, 4+ high. Counts near the boundaries are drawn more
    # often, so the label turns on one fact more or less, never on one fact alone.
    signals = rng.sample(CHURN_SIGNALS, rng.choice(CHURN_COUNTS[label]))
    if "last order" in signals:
        days = rng.randint(60, 240)
    else:
        # Ordering needs a login, so an account without logins in 30 days last ordered before that.
        days = rng.randint(31, 59) if "no logins" in signals else rng.randint(2, 59)
    recent = 0 if days > 90 else rng.randint(1, 4)
    prior = rng.randint(recent + 1, recent + 5) if "orders falling" in signals else rng.randint(0, recent)
    logins = 0 if "no logins" in signals else rng.randint(1, 25)
    sent = rng.randint(4, 12)
    opened = 0 if "no newsletter" in signals else rng.randint(1, sent)
    # A resolved issue is history, not a signal: only open ones count.
    if "open issue" in signals:
        issue = pick(rng, "1 open complaint", "2 open complaints", "open return dispute")
    else:
        issue = pick(rng, "none", "none", "1 resolved complaint", "resolved return dispute")
    subscription = "cancelled" if "cancelled" in signals else pick(rng, "active", "active", "none")
    return Example(
        f"Last order: {days} days ago | Orders 90d: {recent} (prior 90d: {prior}) | Logins 30d: {logins} | "
        f"Newsletters opened: {opened} of {sent} | Issues: {issue} | Subscription: {subscription}",
        label,
    )


TASKS = [
    GeneratedTask(
        TaskSpec("behaviour-next-category", "behaviour", "classify",
                 "Which department will the customer buy from next? The one viewed, searched or carted 2+ times "
                 "without a purchase there; if none, where an earlier purchase's missing companion is sold.",
                 labels=DEPARTMENTS),
        "meta-train", next_category),
    GeneratedTask(
        TaskSpec("behaviour-purchase-intent", "behaviour", "classify",
                 "Classify the session. buy_now: enters payment; else waiting_for_discount: stalls on price (failed "
                 "coupon, price alert, quits at total or shipping); else comparing: several items of one type; "
                 "else browsing.",
                 labels=("buy_now", "comparing", "waiting_for_discount", "browsing")),
        "meta-train", purchase_intent),
    GeneratedTask(
        TaskSpec("behaviour-new-need", "behaviour", "generate",
                 "Name the one thing a past order implies the customer needs but no order covers yet (a phone with "
                 "no case -> phone case). Answer in a few words."),
        "meta-train", new_need),
    GeneratedTask(
        TaskSpec("behaviour-churn", "behaviour", "classify",
                 "Count churn signals: last order 60+ days ago, fewer orders than the prior 90 days, no logins, no "
                 "newsletter opened, an open issue, subscription cancelled. 0-1: low, 2-3: medium, 4+: high.",
                 labels=("low", "medium", "high")),
        "held-out", churn),
]
