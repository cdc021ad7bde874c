"""Product family: offer category, attribute extraction, catalogue titles, spec-sheet QA, marketing copy, offer matching."""

from __future__ import annotations

import json
import random
import re

from ..synthetic import GeneratedTask
from ..noise import noisy, pick
from ..spec import Example, TaskSpec
from ..world import CATALOGUE, MODEL_SYLLABLES, Product, World, random_product


# Shop categories for `product-category`: finer than departments, so a title must be read, not just its brand.
CATEGORIES = {
    "audio": ("headphones",),
    "phones_and_accessories": ("smartphone", "phone case", "charger"),
    "computers_and_office": ("laptop", "desk lamp"),
    "footwear": ("sneakers", "running shoes"),
    "clothing": ("t-shirt", "jeans", "winter jacket"),
    "kitchen": ("coffee maker", "frying pan"),
    "household": ("bed sheets", "vacuum cleaner"),
    "personal_care": ("shampoo", "face cream", "perfume"),
    "food_and_drink": ("coffee beans", "olive oil", "green tea"),
    "fitness": ("yoga mat", "dumbbells", "bicycle helmet"),
    "toys_and_games": ("building blocks", "board game", "plush toy"),
    "pet_supplies": ("dog food", "cat litter", "dog leash"),
}

# What merchants call a product type besides its catalogue name.
SYNONYMS = {
    "headphones": ("headset", "earphones"),
    "smartphone": ("mobile phone", "phone", "cell phone"),
    "phone case": ("cover", "case", "bumper case"),
    "laptop": ("notebook", "ultrabook"),
    "charger": ("wall charger", "power adapter", "charging plug"),
    "sneakers": ("trainers", "shoes"),
    "t-shirt": ("tee", "T shirt", "top"),
    "jeans": ("denim", "denim pants"),
    "winter jacket": ("parka", "coat", "puffer jacket"),
    "coffee maker": ("coffee machine", "espresso machine"),
    "bed sheets": ("sheet set", "bedding set"),
    "frying pan": ("skillet", "pan"),
    "vacuum cleaner": ("vacuum", "hoover"),
    "desk lamp": ("table lamp", "reading light"),
    "shampoo": ("hair wash", "hair shampoo"),
    "face cream": ("moisturiser", "day cream"),
    "perfume": ("eau de parfum", "fragrance", "EDP"),
    "coffee beans": ("whole bean coffee", "espresso beans"),
    "olive oil": ("cooking oil", "oil"),
    "green tea": ("tea", "sencha"),
    "yoga mat": ("exercise mat", "fitness mat"),
    "running shoes": ("runners", "running trainers"),
    "dumbbells": ("dumbbell set", "hand weights"),
    "bicycle helmet": ("bike helmet", "cycling helmet"),
    "building blocks": ("construction set", "brick set"),
    "board game": ("family game", "party game"),
    "plush toy": ("soft toy", "stuffed animal", "cuddly toy"),
    "dog food": ("dry dog food", "kibble"),
    "cat litter": ("litter", "cat sand"),
    "dog leash": ("dog lead", "leash"),
}

# How merchants abbreviate or re-space a value; each rewrite keeps distinct values distinct.
VARIANTS = (
    (re.compile(r"(\d) inch\b"), (r'\1"', r"\1in", r"\1-inch")),
    (re.compile(r"(\d+)GB\b"), (r"\1 GB", r"\1gb")),
    (re.compile(r"(\d+)TB\b"), (r"\1 TB", r"\1tb")),
    (re.compile(r"(\d) (ml|g|kg|l|cm|mm|m)\b"), (r"\1\2",)),
    (re.compile(r"(\d+)W\b"), (r"\1 W", r"\1 watt")),
    (re.compile(r"^W(\d+) L(\d+)$"), (r"W\1/L\2", r"\1x\2")),
    (re.compile(r"^(\d\d)$"), (r"EU \1", r"size \1")),
    (re.compile(r"^(XS|S|M|L|XL|XXL)$"), (r"size \1", r"sz \1")),
    (re.compile(r"\bblack\b"), ("blk",)),
    (re.compile(r"\bwhite\b"), ("wht",)),
    (re.compile(r"\bgrey\b"), ("gray",)),
    (re.compile(r"\bbluetooth\b"), ("BT", "wireless")),
    (re.compile(r"\bstainless steel\b"), ("SS", "st. steel")),
    (re.compile(r"\bnon-stick\b"), ("nonstick",)),
    (re.compile(r"\bpieces\b"), ("pcs",)),
    (re.compile(r"^([A-Z][a-z]+) (\d\w*)$"), (r"\1\2", r"\1-\2")),  # model numbers: "Nova 7X" -> "Nova7X", "Nova-7X"
)

PREFIXES = ("NEW", "Sale!", "Original", "2025 Model", "[Free Shipping]", "Top Seller", "Hot Deal", "Official")
SUFFIXES = ("Free Delivery", "Gift Idea", "Fast Shipping", "Best Price", "In Stock", "Limited Offer", "EU Version")

# Attribute keys `product-attributes` extracts, in output order.
EXTRACT_KEYS = ("brand", "model", "product_type", "color", "size", "material")

# How copy names an attribute whose bare value would read oddly ("128GB" -> "128GB storage").
PHRASES = {
    "size": "size {}", "storage": "{} storage", "screen": "{} screen", "ram": "{} RAM", "power": "{} power",
    "connector": "{} connector", "fits": "fits the {}", "fit": "{} fit", "filling": "{} filling",
    "capacity": "{} capacity", "diameter": "{} diameter", "hair type": "for {} hair", "skin type": "for {} skin",
    "family": "{} scent", "roast": "{} roast", "flavour": "{} flavour", "thickness": "{} thick",
    "terrain": "for {} running", "age": "ages {}", "theme": "{} theme", "duration": "{} playing time",
    "height": "{} tall", "life stage": "for {} dogs", "bulb": "{} bulb", "origin": "{} beans", "animal": "{} design",
}

OPENERS = ("Meet the {name}: {attrs}.", "The {name} - {attrs}.", "Say hello to the {name}: {attrs}.",
           "Introducing the {name}, {attrs}.", "Your new favourite: the {name}, {attrs}.", "{Name}: {attrs}.")
CLOSERS = {
    "electronics": ("Tech that keeps up with your day.", "Upgrade your setup today."),
    "fashion": ("Style and comfort, every day.", "A wardrobe favourite in the making."),
    "home": ("Built to last, easy to love.", "Make your home work for you."),
    "beauty": ("Treat yourself every day.", "Your daily ritual, upgraded."),
    "grocery": ("Taste the difference.", "Quality you can taste."),
    "sports": ("Ready when you are.", "Train harder, recover better."),
    "toys": ("Hours of fun for the whole family.", "Play, build and imagine."),
    "pets": ("Happy pets, happy owners.", "Made with your pet in mind."),
}

# What may come in the box besides the product, per department: `product-qa` asks about one of these.
BOX_EXTRAS = {
    "electronics": ("a usb-c cable", "a carry pouch", "a power adapter", "a quick start guide", "a screen protector"),
    "fashion": ("spare laces", "a gift box", "a dust bag", "a storage bag"),
    "home": ("a user manual", "a spare filter", "a wall mount", "a storage bag"),
    "beauty": ("a gift box", "a travel size", "a pump dispenser", "a sample"),
    "grocery": ("a resealable bag", "a gift box", "a recipe card", "a measuring scoop"),
    "sports": ("a carry strap", "a storage bag", "an exercise guide", "spare pads"),
    "toys": ("an instruction booklet", "a storage box", "a gift bag", "spare pieces"),
    "pets": ("a measuring scoop", "poop bags", "a storage bag", "a feeding guide"),
}
WARRANTIES = ("6 months", "1 year", "2 years", "3 years", "5 years", "lifetime")


def _product(rng: random.Random, world: World, product_type: str | None = None) -> Product:
    """A catalogue product, or half the time a fresh attribute combination of the same type (more variety)."""
    product_type = product_type or rng.choice(world.product_types)
    if rng.random() < 0.5:
        return rng.choice(world.of_type(product_type))
    return random_product(rng, product_type)


def _variant(rng: random.Random, value: str, rate: float) -> str:
    """`value` as one merchant writes it: each applicable abbreviation is used with probability `rate`."""
    for pattern, replacements in VARIANTS:
        if pattern.search(value) and rng.random() < rate:
            value = pattern.sub(rng.choice(replacements), value, count=1)
    return value


def _type_word(rng: random.Random, product_type: str) -> str:
    if rng.random() < 0.5:
        return rng.choice(SYNONYMS[product_type])
    return product_type.title() if rng.random() < 0.5 else product_type


def _offer_title(rng: random.Random, product: Product, type_rate: float, model_rate: float = 1.0,
                 abbreviate: float = 0.3, all_attributes: bool = False) -> tuple[str, dict[str, str]]:
    """A merchant's title for `product` and what it wrote for each field (brand, model, product_type, attributes).

    Merchants reorder fields, drop some, abbreviate values, add marketing words and shout or whisper the title.
    """
    style = rng.random()
    case = str.upper if style < 0.1 else str.lower if style < 0.3 else (lambda text: text)
    written = {"brand": product.brand}
    if rng.random() < model_rate:
        written["model"] = _variant(rng, product.model, abbreviate)
    if rng.random() < type_rate:
        written["product_type"] = _type_word(rng, product.product_type)
    names = list(product.attributes)
    rng.shuffle(names)
    if not all_attributes:  # without a type word a title needs two values to say what it is
        names = names[: rng.randint(1 if "product_type" in written else 2, len(names))]
    for name in names:
        written[name] = _variant(rng, product.attributes[name], abbreviate)
    written = {key: case(value) for key, value in written.items()}
    head = " ".join(written[k] for k in ("brand", "model") if k in written)
    kind = written.get("product_type", "")
    values = [written[name] for name in names]
    layout = rng.randrange(6)
    if layout == 0:
        title = f"{head} {kind} - {', '.join(values)}"
    elif layout == 1:
        title = f"{head} {kind} {' '.join(values)}"
    elif layout == 2:
        title = f"{head} {' '.join(values)} {kind}"
    elif layout == 3:
        title = f"{kind} {head} ({', '.join(values)})"
    elif layout == 4:
        title = " | ".join([f"{head} {kind}", *values])
    else:
        title = ", ".join([f"{head} {' '.join(values[:1])}", *values[1:], *([kind] if kind else [])])
    title = re.sub(r"\s+", " ", title).strip()
    if rng.random() < 0.25:
        title = f"{case(rng.choice(PREFIXES))} {title}"
    if rng.random() < 0.25:
        title = f"{title} {pick(rng, '-', '|', '*')} {case(rng.choice(SUFFIXES))}"
    return title, written


def _price(rng: random.Random, price: float) -> str:
    return pick(rng, f"{price:.2f} EUR", f"€{price:.2f}", f"EUR {price:.2f}", f"{price:.2f}€".replace(".", ","))


def _fields_text(rng: random.Random, fields: list[tuple[str, str]]) -> str:
    """Product fields as a merchant feed might give them: "key: value" lines, JSON, or "key=value; ..."."""
    style = rng.random()
    if style < 0.5:
        return "\n".join(f"{key}: {value}" for key, value in fields)
    if style < 0.8:
        return json.dumps(dict(fields), ensure_ascii=False)
    return "; ".join(f"{key}={value}" for key, value in fields)


def _shuffled_fields(rng: random.Random, product: Product) -> list[tuple[str, str]]:
    """Brand, model, type and a non-empty subset of the attributes, in a random order."""
    names = list(product.attributes)
    rng.shuffle(names)
    fields = [("brand", product.brand), ("model", product.model), ("product_type", product.product_type)]
    fields += [(name, product.attributes[name]) for name in names[: rng.randint(1, len(names))]]
    rng.shuffle(fields)
    return fields


def category(rng: random.Random, world: World, label: str | None) -> Example:
    # The type word is often missing or a synonym: brand, model and attribute values must carry the category.
    product = _product(rng, world, rng.choice(CATEGORIES[label]))
    title, _ = _offer_title(rng, product, type_rate=0.55)
    return Example(noisy(rng, title, typo_rate=0.04, casing=False), label)


def attributes(rng: random.Random, world: World, label: str | None) -> Example:
    title, written = _offer_title(rng, _product(rng, world), type_rate=0.7, model_rate=0.8)
    answer = {key: written[key] for key in EXTRACT_KEYS if key in written}
    return Example(title, json.dumps(answer, ensure_ascii=False))


def catalogue_title(rng: random.Random, world: World, label: str | None) -> Example:
    # House format = Product.title: "Brand Model Type - value, value"; values keep the order the feed gave them.
    product = _product(rng, world)
    fields = _shuffled_fields(rng, product)
    values = [value for key, value in fields if key in product.attributes]
    # Feeds carry price and SKU, which the title leaves out.
    for key, value in (("price", f"{product.price:.2f}"), ("sku", product.sku)):
        if rng.random() < 0.4:
            fields.insert(rng.randint(0, len(fields)), (key, value))
    clean = f"{product.brand} {product.model} {product.product_type.title()} - {', '.join(values)}"
    return Example(_fields_text(rng, fields), clean)


def spec_qa(rng: random.Random, world: World, label: str | None) -> Example:
    # Span answers are copied from the sheet; box questions are yes/no; anything the sheet lacks is "not stated".
    product = _product(rng, world)
    extras = BOX_EXTRAS[product.department]
    names = list(product.attributes)
    rng.shuffle(names)
    shown = names[: rng.randint(1, len(names))]
    optional = {
        "warranty": rng.choice(WARRANTIES),
        "dimensions": " x ".join(str(rng.randint(3, 60)) for _ in range(3)) + " cm",
        "in the box": ", ".join([product.product_type, *rng.sample(extras, rng.randint(1, 2))]),
    }
    if "weight" not in product.attributes:  # dumbbells, coffee beans ... already state their weight
        optional["weight"] = pick(rng, f"{rng.randint(1, 19) * 50} g", f"{rng.randint(1, 9)}.{rng.randint(0, 9)} kg")
    present = [key for key in optional if rng.random() < 0.65]
    sheet = [(name.capitalize(), product.attributes[name]) for name in shown]
    sheet += [(key.capitalize(), optional[key]) for key in present]
    rng.shuffle(sheet)
    sheet = [("Product", f"{product.brand} {product.model} {product.product_type}"), ("Price", f"{product.price:.2f} EUR"), *sheet]
    topic = rng.choice(["price", "attribute", "box", *optional])
    if topic == "price":
        question, answer = pick(rng, "how much is it?", "what does it cost?", "what's the price?", "price?"), sheet[1][1]
    elif topic == "attribute":
        name = rng.choice(names)
        question = pick(rng, "what's the {}?", "which {} is it?", "{}?", "can you tell me the {}?").format(name)
        answer = product.attributes[name] if name in shown else "not stated"
    elif topic == "box":
        item = rng.choice(extras)
        question = pick(rng, "is there {} in the box?", "does it come with {}?", "is {} included?").format(item)
        answer = "not stated" if "in the box" not in present else "yes" if item in optional["in the box"] else "no"
    else:
        question = {
            "warranty": ("how long is the warranty?", "does it have a warranty?", "what warranty do I get?"),
            "dimensions": ("what are the dimensions?", "how big is it?", "dimensions?"),
            "weight": ("how heavy is it?", "what does it weigh?", "weight?"),
            "in the box": ("what comes in the box?", "what's included?", "what do I get in the package?"),
        }[topic]
        question = rng.choice(question)
        answer = optional[topic] if topic in present else "not stated"
    text = "\n".join(f"{key}: {value}" for key, value in sheet) + f"\nQuestion: {noisy(rng, question, typo_rate=0.03)}"
    return Example(text, json.dumps({"answer": answer}, ensure_ascii=False))


def marketing_copy(rng: random.Random, world: World, label: str | None) -> Example:
    product = _product(rng, world)
    fields = _shuffled_fields(rng, product)
    phrases = [PHRASES.get(key, "{}").format(value) for key, value in fields if key in product.attributes]
    attrs = phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"
    name = f"{product.brand} {product.model} {product.product_type}"
    text = rng.choice(OPENERS).format(name=name, Name=name, attrs=attrs)
    if rng.random() < 0.6:
        text += " " + rng.choice(CLOSERS[product.department])
    return Example(_fields_text(rng, fields), text)


def _changed(rng: random.Random, product: Product) -> Product:
    """A hard negative: same brand and type, but another model number or one other attribute value."""
    choices = CATALOGUE[product.department][product.product_type][1]
    if rng.random() < 0.35:
        syllable, number = product.model.split(" ")
        model = product.model
        while model == product.model:
            model = pick(rng, f"{rng.choice(MODEL_SYLLABLES)} {number}", f"{syllable} {rng.randint(1, 9)}{number[1:]}",
                         f"{syllable} {number[0]}{rng.choice(('', '0', '00', 'X', 'S'))}")
        return Product(product.sku, product.department, product.product_type, product.brand, product.attributes,
                       product.price, model)
    name = rng.choice(list(product.attributes))
    value = rng.choice([v for v in choices[name] if v != product.attributes[name]])
    return Product(product.sku, product.department, product.product_type, product.brand,
                   {**product.attributes, name: value}, product.price, product.model)


def match(rng: random.Random, world: World, label: str | None) -> Example:
    # Both classes go through the same rendering (layouts, abbreviations, typos, price drift), so only the
    # comparison of model and attribute values separates them.
    first = _product(rng, world)
    second = first if label == "same" else _changed(rng, first)
    offers = []
    for product in (first, second):
        text, _ = _offer_title(rng, product, type_rate=0.6, abbreviate=0.4, all_attributes=True)
        price = product.price if rng.random() < 0.4 else round(product.price * rng.uniform(0.93, 1.07)) - 0.01
        offers.append(f"{noisy(rng, text, typo_rate=0.03, casing=False)} | {_price(rng, price)}")
    return Example(f"Offer A: {offers[0]}\nOffer B: {offers[1]}", label)


TASKS = [
    GeneratedTask(
        TaskSpec("product-category", "product", "classify",
                 "Which shop category does this merchant's offer belong to? The title may not name the product "
                 "type: read the brand, model and attributes.",
                 labels=tuple(CATEGORIES)),
        "meta-train", category),
    GeneratedTask(
        TaskSpec("product-attributes", "product", "extract",
                 "Extract the attributes written in this offer title as JSON. Keys, in this order and only if "
                 "present: brand, model, product_type, color, size, material. Copy values exactly as written."),
        "meta-train", attributes),
    GeneratedTask(
        TaskSpec("product-title", "product", "generate",
                 "Write the catalogue title: 'Brand Model Product Type' with the type in Title Case, then ' - ' "
                 "and the other values comma-separated in the given order. Leave out price and SKU."),
        "meta-train", catalogue_title),
    GeneratedTask(
        TaskSpec("product-qa", "product", "extract",
                 "Answer the question from the spec sheet as JSON {\"answer\": ...}: copy the value, say yes or no "
                 "for box contents, or \"not stated\" if the sheet does not say."),
        "meta-train", spec_qa),
    GeneratedTask(
        TaskSpec("product-copy", "product", "generate",
                 "Write one or two sentences of marketing copy (at most 40 words) that mention every attribute given."),
        "meta-train", marketing_copy),
    GeneratedTask(
        TaskSpec("product-match", "product", "classify",
                 "Do the two offers sell the same product (same brand, model and attributes, however written; "
                 "prices may differ)? Answer same or different.",
                 labels=("same", "different")),
        "held-out", match),
]
