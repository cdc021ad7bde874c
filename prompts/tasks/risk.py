"""Risk family: order fraud screening, fake and incentivised reviews, return abuse."""

from __future__ import annotations

import random

from ..synthetic import GeneratedTask
from ..noise import pick
from ..spec import Example, TaskSpec
from ..world import Product, World

COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "GB", "US", "NG", "RO", "BR", "AT")
FIRST_NAMES = ("Anna", "Jonas", "Lea", "Marco", "Sofia", "Tom", "Ines", "Piotr", "Chloe", "Emeka", "Lucas", "Mia")
LAST_NAMES = ("Weber", "Rossi", "Novak", "Dubois", "Okafor", "Silva", "Jansen", "Garcia", "Kowalski", "Brown")


def _signals(rng: random.Random, signals: tuple[str, ...], counts: tuple[int, ...]) -> list[str]:
    """`rng.choice(counts)` of the signals, so that every signal also turns up under milder labels."""
    return rng.sample(signals, rng.choice(counts))


def _eur(amount: float) -> str:
    return f"{amount:,.0f} EUR"


def _age(days: int) -> str:
    count, unit = (days, "day") if days < 30 else (days // 30, "month") if days < 365 else (days // 365, "year")
    return f"{count} {unit}{'s' if count != 1 else ''}"


FRAUD_SIGNALS = ("new account", "country mismatch", "high amount", "gift cards", "failed payments", "name mismatch",
                 "forwarder")
FRAUD_COUNTS = {"approve": (0, 1, 1), "review": (2,), "reject": (3, 3, 4, 5)}


def _basket(rng: random.Random, world: World, gift_cards: bool) -> tuple[str, float]:
    """Item list and total: 2+ gift cards (maybe with a product), or products with at most one gift card."""
    products = rng.sample(world.products, rng.randint(1, 2) if not gift_cards else rng.randint(0, 1))
    parts = [p.product_type for p in products]
    total = sum(p.price for p in products)
    cards = rng.randint(2, 5) if gift_cards else int(rng.random() < 0.2)
    if cards:
        value = rng.choice((25, 50, 100, 200))
        parts.append(f"{cards} gift card{'s' if cards > 1 else ''} of {value} EUR")
        total += cards * value
    # Rounded as shown, so the 300 EUR threshold is judged on the number the model sees.
    return ", ".join(parts), round(total)


def fraud(rng: random.Random, world: World, label: str | None) -> Example:
    # Risk = number of signals: 0-1 approve, 2 review, 3+ reject. The amount counts as high above 3x the customer's
    # average order, or above 300 EUR on a first order.
    signals = _signals(rng, FRAUD_SIGNALS, FRAUD_COUNTS[label])
    high = "high amount" in signals
    age = rng.randint(0, 6) if "new account" in signals else rng.choice((rng.randint(7, 29), rng.randint(30, 2000)))
    orders = rng.randint(0, 1) if age < 7 else rng.choice((0, rng.randint(1, 40)))
    ratio = rng.uniform(3.5, 9) if high else rng.uniform(0.5, 2.5)
    while True:
        items, amount = _basket(rng, world, "gift cards" in signals)
        # With a history the ratio sets the signal (an average under 10 EUR would read oddly); without, 300 EUR does.
        if (orders and amount / ratio >= 10) or (not orders and (amount > 300) == high):
            break
    history = f"{orders} order{'s' if orders != 1 else ''}" + (f", avg {_eur(amount / ratio)}" if orders else "")
    billing = rng.choice(COUNTRIES)
    shipping = rng.choice([c for c in COUNTRIES if c != billing]) if "country mismatch" in signals else billing
    failed = rng.randint(3, 6) if "failed payments" in signals else rng.choice((0, 0, 1, 2))
    surname = rng.choice(LAST_NAMES)
    holder = f"{rng.choice(FIRST_NAMES)[0]}. {surname}"
    recipient = holder
    if "name mismatch" in signals:
        recipient = f"{rng.choice(FIRST_NAMES)[0]}. {rng.choice([n for n in LAST_NAMES if n != surname])}"
    # Express and a forwarder are each harmless; only together are they a signal.
    speed, place = ("express", "forwarder") if "forwarder" in signals else rng.choice(
        (("standard", "forwarder"), ("express", "home"), ("standard", "home"), ("express", "pickup point")))
    return Example(
        f"Account: {_age(age)}, {history} | {_eur(amount)}: {items} | Billing {billing}, shipping {shipping}, "
        f"{speed} to {place} | Failed payments: {failed} | Card: {holder}, ship to: {recipient}",
        label,
    )


# Review text parts. Details name what the product is like; generic praise could be about anything.
GENERIC = ("Amazing product!!", "Best purchase ever.", "Highly recommend to everyone!", "Excellent quality, five stars.",
           "Perfect in every way.", "Love it, must buy!", "Great seller, great product.", "Exceeded all expectations!",
           "The best, no complaints!", "Worth the money, 10/10.", "Love the quality!!")
# Details that fit every product type of a department.
USE = {
    "electronics": ("still works perfectly after {n} weeks", "feels solid in the hand", "set up in {n} minutes"),
    "fashion": ("fits true to size", "washed it {n} times and no fading", "stitching feels solid"),
    "home": ("easy to clean", "looks great in my flat", "used it daily for {n} weeks"),
    "beauty": ("lasts all day", "no irritation on my skin", "a little goes a long way"),
    "grocery": ("rich flavour, we finished it in {n} weeks", "fresh and well sealed", "good value for daily use"),
    "sports": ("I use it {n} times a week", "held up through {n} weeks of training", "light but sturdy"),
    "toys": ("my {n} year old plays with it daily", "kept the kids busy all afternoon", "well made, nothing broke"),
    "pets": ("our pets took to it right away", "no mess after {n} weeks", "good value for a multi-pet home"),
}
# Got the product free or cheap because of the review, said plainly or in passing.
INCENTIVES = ("I received this free in exchange for an honest review.", "Got it at a discount in return for my review.",
              "The brand sent me this to test, opinions are my own.", "Seller refunded me after I posted this.",
              "Was given a code to try it and share my thoughts.", "Part of a product tester programme.",
              "Sent to me free, so here is my feedback.", "Got 70% off for agreeing to review it.")
# Ordinary purchases that also mention a price cut or getting something free: not incentives.
NORMAL_DEALS = ("Bought it on sale.", "Got 20% off with the newsletter code.", "Free shipping too.",
                "A gift from my sister.", "Used my birthday discount.", "Was half price on Black Friday.")


def _detailed(rng: random.Random, product: Product) -> str:
    value = rng.choice(list(product.attributes.values()))
    use = rng.choice(USE[product.department]).format(n=rng.randint(2, 12))
    text = f"{pick(rng, 'The', 'Chose the', 'My', 'Ordered the')} {value} {product.product_type}, {use}."
    if rng.random() < 0.4:
        text = f"{rng.choice(GENERIC)} {text}"
    elif rng.random() < 0.4:
        text += f" Only downside: {pick(rng, 'slow delivery', 'the box was dented', 'pricey', 'no manual')}."
    return text


def _generic(rng: random.Random, product: Product) -> str:
    praise = rng.sample(GENERIC, 2)
    if rng.random() < 0.4:
        praise.insert(1, f"Best {product.product_type} ever.")
    return " ".join(praise)


def fake_review(rng: random.Random, world: World, label: str | None) -> Example:
    # incentivised: any text mentioning a review-for-product deal. fake: generic praise AND an unverified purchase AND
    # an account under 30 days. Genuine reviews may be generic, come from new or unverified accounts (not both with
    # generic text), gush, or mention ordinary deals.
    product = rng.choice(world.products)
    generic = label == "fake" or rng.random() < 0.5
    text = _generic(rng, product) if generic else _detailed(rng, product)
    suspicious = label == "fake" or rng.random() < 0.3
    verified = not suspicious and rng.random() < 0.6
    new = suspicious or rng.random() < 0.3
    if label == "genuine" and generic:
        # One of the two account facts may look suspicious, never both.
        verified, new = rng.choice(((True, True), (False, False), (True, False)))
    if label == "incentivised":
        text = f"{text} {rng.choice(INCENTIVES)}" if rng.random() < 0.6 else f"{rng.choice(INCENTIVES)} {text}"
    elif label == "genuine" and rng.random() < 0.35:
        text += f" {rng.choice(NORMAL_DEALS)}"
    age = rng.randint(1, 29) if new else rng.randint(30, 2500)
    return Example(
        f"Verified purchase: {'yes' if verified else 'no'} | Reviews by user: {rng.randint(1, 90)} | "
        f"Account age: {_age(age)} | Review: {text}",
        label,
    )


RETURN_SIGNALS = ("rate", "worn", "not received", "high value used", "weekends")
RETURN_COUNTS = {"normal": (0,), "watch": (1,), "abuse": (2, 2, 3, 4)}


def return_abuse(rng: random.Random, world: World, label: str | None) -> Example:
    # Abuse signals: return rate 40%+, 2+ earlier items returned worn, 2+ "not received" claims, this item 300+ EUR and
    # used, 2+ returns right after a weekend (wardrobing). None -> normal, one -> watch, two or more -> abuse.
    signals = _signals(rng, RETURN_SIGNALS, RETURN_COUNTS[label])
    worn = rng.randint(2, 4) if "worn" in signals else rng.randint(0, 1)
    weekends = rng.randint(2, 4) if "weekends" in signals else rng.randint(0, 1)
    claims = rng.randint(2, 4) if "not received" in signals else rng.choice((0, 0, 1))
    while True:
        orders = rng.randint(4, 40)
        returns = rng.randint(max(worn, weekends), max(worn, weekends, orders * 4 // 5))
        if (100 * returns // orders >= 40) == ("rate" in signals):
            break
    # Prices are judged as shown (rounded to the euro), and an expensive item only counts when it comes back used.
    expensive = "high value used" in signals or rng.random() < 0.5
    item = rng.choice([p for p in world.products if (round(p.price) >= 300) == expensive])
    if "high value used" in signals:
        condition = "used"
    else:
        condition = pick(rng, "unopened", "as new") if expensive else pick(rng, "used", "unopened", "as new")
    return Example(
        f"Return: {item.brand} {item.product_type}, {_eur(item.price)}, {condition} | 12 mo: {returns} returns of "
        f"{orders} orders ({100 * returns // orders}%) | Returned worn: {worn} | Not-received claims: {claims} | "
        f"After-weekend returns: {weekends}",
        label,
    )


TASKS = [
    GeneratedTask(
        TaskSpec("risk-fraud", "risk", "classify",
                 "Count signals: new account (<7 days), countries differ, amount over 3x avg (300 EUR if no orders), "
                 "2+ gift cards, 3+ failed payments, card name differs, express to forwarder. 0-1 approve, 2 review, "
                 "3+ reject.",
                 labels=("approve", "review", "reject")),
        "meta-train", fraud),
    GeneratedTask(
        TaskSpec("risk-fake-review", "risk", "classify",
                 "Classify the review. incentivised: the reviewer got it free or cheaper for reviewing; fake: generic "
                 "praise, no product details, unverified purchase and account under 30 days; otherwise genuine.",
                 labels=("genuine", "incentivised", "fake")),
        "meta-train", fake_review),
    GeneratedTask(
        TaskSpec("risk-return-abuse", "risk", "classify",
                 "Abuse signals: return rate 40%+, 2+ worn returns, 2+ not-received claims, this item 300+ EUR and "
                 "used, 2+ after-weekend returns. None: normal; one: watch; two or more: abuse.",
                 labels=("normal", "watch", "abuse")),
        "held-out", return_abuse),
]
