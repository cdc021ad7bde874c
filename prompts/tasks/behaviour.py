"""Behaviour family: next purchase department, session purchase intent, new-need discovery, churn risk."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..generate import GeneratedTask
from ..noise import pick
from ..spec import Example, TaskSpec
from ..world import CATALOGUE, Product, World

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
DEPARTMENT_OF = {t: d for d, types in CATALOGUE.items() for t in types} | {n: d for n, d in NEEDS.values()}
# Purchases that imply nothing: distractors that must not create a need of their own.
SELF_CONTAINED = tuple(t for t in DEPARTMENT_OF if t not in NEEDS and t != "dog food")
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
    if kind in EXTRA_BRANDS:
        return Item(kind, DEPARTMENT_OF[kind], f"{rng.choice(EXTRA_BRANDS[kind])} {kind}")
    if kind.endswith("dog food"):
        # The life stage is what was bought, so it is part of the kind (the puppy rule reads it).
        product = rng.choice(world.of_type("dog food"))
        return Item(kind, "pets", f"{product.brand} {product.model} {kind}")
    # Pod machines take capsules, not beans, so they would not imply the coffee-beans need.
    product = rng.choice([p for p in world.of_type(kind) if p.attributes.get("type") != "pod"])
    return Item(kind, product.department, _name(product))


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
        text = f"viewed {_name(product)}"
    elif style < 0.75:
        value = rng.choice(list(product.attributes.values()))
        text = f"searched '{value} {product.product_type}'"
    else:
        text = f"carted {_name(product)}"
    return Event(days, text, department, False)


def _next_department(events: list[Event], purchases: list[tuple[int, Item]]) -> str | None:
    """The rule: the one department with 2+ non-purchase events and no purchase, else the one open need's department."""
    bought = {e.department for e in events if e.bought}
    counts = {d: sum(e.department == d and not e.bought for e in events) for d in DEPARTMENTS}
    hot = [d for d in DEPARTMENTS if counts[d] >= 2 and d not in bought]
    if hot:
        return hot[0] if len(hot) == 1 else None
    needs = _open_needs(purchases)
    return DEPARTMENT_OF[needs[0]] if len(needs) == 1 else None


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
                kind = rng.choice([t for t in SELF_CONTAINED if DEPARTMENT_OF[t] == department])
                purchases.append(_purchase(rng, world, kind, max(0, days - 1)))
        events += _bought(purchases)
        if len(events) <= 7 and _next_department(events, purchases) == label:
            return Example(f"History: {_history(events)}", label)
