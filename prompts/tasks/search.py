"""Search family: query-product relevance, query category, query rewriting."""

from __future__ import annotations

import random

from ..synthetic import GeneratedTask
from ..noise import noisy, pick, typo
from ..spec import Example, TaskSpec
from ..world import BRAND_DEPARTMENTS, CATALOGUE, Product, World

# What a product type is usually bought with: a product of one of these types is a complement, not a substitute.
COMPLEMENTS = {
    "smartphone": ("phone case", "charger", "headphones"),
    "laptop": ("charger", "headphones", "desk lamp"),
    "coffee maker": ("coffee beans",),
    "sneakers": ("t-shirt", "jeans"),
    "running shoes": ("yoga mat", "bicycle helmet"),
    "frying pan": ("olive oil",),
    "dog leash": ("dog food",),
    "yoga mat": ("dumbbells", "running shoes"),
    "jeans": ("t-shirt", "sneakers"),
    "bed sheets": ("desk lamp",),
}


def _query_for(rng: random.Random, product: Product) -> str:
    """A shopper's query for `product`: its type plus one or two of its attributes, sometimes the brand."""
    parts = [product.product_type]
    attrs = list(product.attributes.items())
    rng.shuffle(attrs)
    for name, value in attrs[: rng.randint(1, 2)]:
        parts.insert(0, value) if rng.random() < 0.6 else parts.append(pick(rng, value, f"{name} {value}"))
    if rng.random() < 0.35:
        parts.insert(0, product.brand)
    if rng.random() < 0.2:
        parts.append(pick(rng, "cheap", "best", "sale", "for men", "for women", "gift"))
    return noisy(rng, " ".join(parts), typo_rate=0.06)


def _conflicting(rng: random.Random, world: World, product: Product) -> Product:
    """Same type as `product` but differing in at least one attribute the query asked about, or another brand."""
    candidates = [p for p in world.of_type(product.product_type) if p.sku != product.sku and p.attributes != product.attributes]
    return rng.choice(candidates)


def relevance(rng: random.Random, world: World, label: str | None) -> Example:
    # Exact: the product matches every attribute in the query. Substitute: same product type, some attribute or
    # brand differs. Complement: a product bought together with it. Irrelevant: another department entirely.
    anchor = rng.choice([p for p in world.products if p.product_type in COMPLEMENTS])
    query_product = anchor
    query = _query_for(rng, query_product)
    if label == "Exact":
        shown = query_product
    elif label == "Substitute":
        shown = _conflicting(rng, world, query_product)
        # The query must name something the shown product lacks, or it would be an exact match.
        differing = [v for k, v in query_product.attributes.items() if shown.attributes.get(k) != v]
        query = noisy(rng, f"{rng.choice(differing)} {query_product.product_type}", typo_rate=0.05)
    elif label == "Complement":
        shown = rng.choice(world.of_type(rng.choice(COMPLEMENTS[query_product.product_type])))
    else:
        # Another department, and not one of the complements that cross departments (laptop -> desk lamp).
        complements = COMPLEMENTS[query_product.product_type]
        shown = rng.choice([p for p in world.products
                            if p.department != query_product.department and p.product_type not in complements])
    return Example(f"Query: {query}\nProduct: {shown.title} ({shown.price:.2f} EUR)", label)


def query_category(rng: random.Random, world: World, label: str | None) -> Example:
    product = rng.choice(world.in_department(label))
    style = rng.random()
    if style < 0.5:
        query = _query_for(rng, product)
    elif style < 0.8:
        # Queries that never name the product type: the shopper describes a need.
        need = {
            "electronics": ("something to listen to music on the train", "replacement for my cracked phone", "need to charge my phone faster", "work computer for uni"),
            "fashion": ("outfit for a wedding in winter", "comfy shoes for walking all day", "something warm to wear skiing", "basic tops for summer"),
            "home": ("make my morning coffee at home", "new bedding for guest room", "light for reading at night", "cleaning the carpet with a dog in the house"),
            "beauty": ("my hair is frizzy after washing", "cream for flaky skin in winter", "present smell nice for my mum", "sunscreen for face"),
            "grocery": ("beans for my espresso machine", "oil for salad dressing", "something warm to drink without caffeine... or with a little"),
            "sports": ("start working out at home", "protect my head on the bike", "stretching at the gym", "marathon training"),
            "toys": ("gift for a 6 year old who likes space", "games night with friends", "soft toy for a newborn"),
            "pets": ("my puppy keeps pulling on walks", "food for an older dog", "the cat box smells"),
        }[label]
        query = noisy(rng, rng.choice(need), typo_rate=0.05)
    elif len(BRAND_DEPARTMENTS[product.brand]) == 1:
        # Brand + model only: the shopper knows the product; readable only if the brand sells in one department.
        query = noisy(rng, f"{product.brand} {product.model}", typo_rate=0.03)
        query += pick(rng, "", " price", " in stock?", " reviews", " deal")
    else:
        query = noisy(rng, f"{product.brand} {product.model} {product.product_type}", typo_rate=0.03)
    return Example(query, label)


def _misspell(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    i = rng.randrange(len(words))
    words[i] = typo(rng, words[i]) if len(words[i]) >= 4 else words[i]
    if rng.random() < 0.5:
        j = rng.randrange(len(words))
        words[j] = typo(rng, words[j])
    return " ".join(words)


def query_rewrite(rng: random.Random, world: World, label: str | None) -> Example:
    # The clean query keeps the shopper's intent: attribute values, type, and the brand when one was given.
    product = rng.choice(world.products)
    attrs = list(product.attributes.values())
    rng.shuffle(attrs)
    clean = " ".join([*attrs[: rng.randint(1, 2)], product.product_type])
    if rng.random() < 0.4:
        clean = f"{product.brand} {clean}"
    clean = clean.lower()
    messy = _misspell(rng, clean)
    if rng.random() < 0.3:
        messy = messy.replace(" ", "", 1)  # a missing space, as on phone keyboards
    if rng.random() < 0.3:
        messy = messy.upper() if rng.random() < 0.3 else messy.title()
    if messy == clean:
        messy = clean.replace(" ", "  ") + pick(rng, "!!", "??", " pls")
    return Example(messy, clean)


TASKS = [
    GeneratedTask(
        TaskSpec("search-relevance", "search", "classify",
                 "How relevant is the product to the shopper's query? Exact: matches everything asked; Substitute: "
                 "same kind of product but differs in something asked; Complement: bought together with it; "
                 "Irrelevant: unrelated.",
                 labels=("Exact", "Substitute", "Complement", "Irrelevant")),
        "meta-train", relevance),
    GeneratedTask(
        TaskSpec("search-query-category", "search", "classify",
                 "Which shop department should this search query go to?", labels=tuple(CATALOGUE)),
        "meta-train", query_category),
    GeneratedTask(
        TaskSpec("search-query-rewrite", "search", "generate",
                 "Rewrite the search query: fix spelling, spacing and casing, keep its meaning. Answer with the "
                 "corrected query in lower case."),
        "meta-train", query_rewrite),
]
