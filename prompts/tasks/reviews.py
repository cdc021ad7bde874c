"""Reviews family: star rating, sentiment, main aspect, the shop's reply, and a furniture shop's aspects (held out).

Every review is composed from a plan: a list of (aspect, polarity) statements, polarity +2 strong praise, +1 mild
praise, 0 "just okay", -1 mild complaint, -2 strong complaint, or None for a fact with no opinion. The labels are
read off the plan, so they follow from what the text says, never from one keyword.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..synthetic import GeneratedTask
from ..noise import noisy, pick
from ..spec import Example, TaskSpec
from ..world import Product, World

Plan = list[tuple[str, int | None]]


@dataclass(frozen=True)
class Aspect:
    """What a review can say about one aspect: subjects for the generic opinion frames, concrete sentences by
    polarity, and facts that carry no opinion. Templates use the keys of the review's context."""

    subjects: tuple[str, ...]
    said: dict[int, tuple[str, ...]]
    facts: tuple[str, ...]


# Opinion frames that work for any aspect's subject; negations sit on both sides ("not bad at all" is praise,
# "wouldn't say it was great" a complaint) so no single word decides the polarity.
FRAMES: dict[int, tuple[str, ...]] = {
    2: ("{s} was {strong} {great}.", "{s} couldn't have been better.", "{s} was nothing short of {great}.",
        "really impressed with {s}.", "{s} was {great}, {strong} happy with that."),
    1: ("{s} was {mild} {good}.", "{s} was not bad at all.", "no complaints about {s}.", "can't complain about {s}.",
        "{s} was better than I expected.", "{s} was {good}."),
    0: ("{s} was okay, nothing special.", "{s} was average.", "{s} was alright, I guess.",
        "{s} was fine, not amazing but not bad.", "{s} was just okay."),
    -1: ("{s} was a bit {meh}.", "{s} wasn't great.", "I wouldn't say {s} was great.", "{s} could have been better.",
         "not too happy with {s}.", "{s} was not as good as I hoped."),
    -2: ("{s} was {strong} {awful}.", "{s} couldn't have been worse.", "{s} was a complete disaster.",
         "really disappointed with {s}, {awful}.", "{s} was {awful}, never again."),
}
WORDS = {
    "strong": ("really", "absolutely", "super", "truly", "incredibly"),
    "mild": ("quite", "pretty", "fairly"),
    "great": ("excellent", "amazing", "perfect", "fantastic", "outstanding", "superb"),
    "good": ("good", "decent", "nice", "solid"),
    "meh": ("disappointing", "underwhelming", "mediocre", "poor"),
    "awful": ("terrible", "awful", "horrible", "appalling"),
}

QUALITY_DURABLE = Aspect(
    ("the quality", "the build quality", "the material"),
    {2: ("the {item} {be} really well made, {it} feel{s} premium.", "been using {obj} daily for {weeks} weeks and {it} still look{s} brand new.",
         "rock solid build, best {item} I've owned.", "excellent craftsmanship, every detail is spot on."),
     1: ("decent build, does the job well.", "the {item} feel{s} sturdy enough for everyday use.",
         "not perfect, but solid for everyday use."),
     -1: ("the {item} feel{s} a bit flimsy.", "a few small scratches on {obj} straight out of the box.",
          "the finish on the {item} is a little rough."),
     -2: ("the {item} fell apart after {weeks} weeks.", "cheap junk, {it} {was} damaged after the first use.",
          "poor quality, {it} look{s} nothing like the photos and feel{s} cheap.")},
    ("the {item} {be} the {colour} version.", "I've had {obj} for {weeks} weeks now.", "it's the same {item} my {relative} has."),
)
QUALITY_CONSUMABLE = Aspect(
    ("the quality", "the product quality", "the freshness"),
    {2: ("top quality {item}, you can tell straight away.", "best {item} I've ever bought, will order again.",
         "the {item} {be} excellent, really high quality."),
     1: ("good {item}, does what it should.", "nice {item}, solid quality for everyday use.",
         "not the fanciest, but good {item} for every day."),
     -1: ("the {item} {be} a bit weaker than I expected.", "quality seems lower than the last batch.",
          "the {item} {be} slightly stale."),
     -2: ("the {item} smelled off and went straight in the bin.", "awful {item}, nothing like the description.",
          "the {item} {was} already past the best-before date.")},
    ("this is the {size_or_pack} pack.", "I've used the {item} for {weeks} weeks now.", "my {relative} recommended this {item}."),
)
PRICE = Aspect(
    ("value for money", "the value", "the deal"),
    {2: ("great value for {price} EUR.", "at {price} EUR it's a steal.", "cheaper than anywhere else, brilliant deal."),
     1: ("fair price for what you get.", "reasonably priced at {price} EUR.", "not cheap, but worth the money."),
     -1: ("a bit pricey for what it is.", "{price} EUR feels slightly too much.", "saw {obj} cheaper elsewhere a week later."),
     -2: ("way overpriced at {price} EUR.", "a rip-off, half the price in other shops.", "totally not worth {price} EUR.")},
    ("I paid {price} EUR.", "the price was {price} EUR when I ordered.", "I bought {obj} at full price."),
)
DELIVERY = Aspect(
    ("the delivery", "shipping", "the courier"),
    {2: ("arrived the next day, super fast.", "delivered in {fast} days, well ahead of the estimate.",
         "the courier was friendly and right on time."),
     1: ("arrived on time.", "tracking worked and {it} came when expected.", "not express, but delivery was on schedule."),
     -1: ("took a few days longer than promised.", "delivery was {late} days late.", "annoyingly had to pick {obj} up at the depot."),
     -2: ("took {weeks} weeks to arrive and tracking never updated.", "the courier left {obj} in the rain outside my door.",
          "marked as delivered but I only got {obj} {late} days later.")},
    ("it was delivered on {day}.", "it came with {courier}.", "I ordered on {day} and {courier} delivered it."),
)
SIZE_FIT = Aspect(
    ("the fit", "the sizing"),
    {2: ("fits perfectly, true to size.", "ordered my usual {size} and the fit is spot on.", "the fit is perfect, like {it} {was} made for me."),
     1: ("the {size} fits well.", "sizing is accurate.", "not my usual size, but {it} fit{s} well."),
     -1: ("runs a little small, should have ordered a size up.", "the {size} is slightly too big for me.",
          "a bit tight, the sizing is off by a little."),
     -2: ("the {size} is way too small, nothing like the size chart.", "completely wrong sizing, couldn't even get {obj} on.",
          "doesn't fit at all, had to send {obj} back.")},
    ("I ordered size {size}.", "I usually wear {size}.", "I checked the size chart before ordering the {size}."),
)
SERVICE = Aspect(
    ("customer service", "the support team", "the seller's support"),
    {2: ("support replied within an hour and sorted everything.", "customer service went above and beyond for me.",
         "support agent {agent} was incredibly helpful."),
     1: ("support answered my question within a day.", "the support team was polite and helpful.",
         "not instant, but support got back to me and helped."),
     -1: ("support took {days} days to answer a simple question.", "had to email support twice before anyone replied.",
          "the support chat kept sending me to the FAQ."),
     -2: ("customer service ignored my emails for {weeks} weeks.", "support was rude and refused to help.",
          "nobody at support could tell me anything, useless.")},
    ("I emailed support to change the delivery address.", "I called customer service about my invoice.",
     "I asked support about the warranty on {day}."),
)
PACKAGING = Aspect(
    ("the packaging", "the box", "the wrapping"),
    {2: ("beautifully packed, perfect as a gift.", "the packaging was plastic-free and really neat.",
         "wrapped with so much care, not a scratch."),
     1: ("well packed, nothing moving around.", "packed securely in a recyclable box.", "not fancy, but the packaging did its job."),
     -1: ("the box was a bit dented.", "a bit too much plastic in the packaging.", "the packaging was a bit thin for such a trip."),
     -2: ("the box arrived crushed and torn open.", "no padding at all, just thrown loose in a huge box.",
          "the packaging was soaked and falling apart.")},
    ("it came in a cardboard box.", "the {item} came in the original box.", "it was packed in a paper bag."),
)
# Facts about nothing the aspect task scores: fillers that every task may add.
GENERIC_FACTS = ("bought {obj} as a gift for my {relative}.", "this is my second order from this shop.",
                 "I ordered {obj} on {day}.", "{it} replaced my old {item}.", "I use {obj} most days.")

SHOP_ASPECTS = ("quality", "price", "delivery", "size_fit", "customer_service", "packaging")
SIZED = ("sneakers", "t-shirt", "jeans", "winter jacket", "running shoes", "bicycle helmet")
CONSUMABLE = ("shampoo", "face cream", "perfume", "coffee beans", "olive oil", "green tea", "dog food", "cat litter")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
COURIERS = ("DHL", "UPS", "DPD", "GLS", "the post")
AGENTS = ("Anna", "Tom", "Lea", "Marco", "Sofia")
RELATIVES = ("mum", "dad", "sister", "brother", "son", "daughter", "partner", "friend")


def _shop_aspects(product: Product) -> dict[str, Aspect]:
    """The aspects a review of `product` can talk about: fit only for things you wear."""
    aspects = {"quality": QUALITY_CONSUMABLE if product.product_type in CONSUMABLE else QUALITY_DURABLE,
               "price": PRICE, "delivery": DELIVERY, "size_fit": SIZE_FIT, "customer_service": SERVICE,
               "packaging": PACKAGING}
    if product.product_type not in SIZED:
        del aspects["size_fit"]
    return aspects


def _shop_context(rng: random.Random, product: Product) -> dict[str, str]:
    plural = product.product_type.endswith("s")  # headphones, sneakers, coffee beans...
    attrs = product.attributes
    return {
        "item": product.product_type, "it": "they" if plural else "it", "obj": "them" if plural else "it",
        "be": "are" if plural else "is", "was": "were" if plural else "was", "s": "" if plural else "s",
        "price": f"{product.price:.2f}", "size": attrs.get("size", ""), "colour": attrs.get("color", "standard"),
        "size_or_pack": attrs.get("volume") or attrs.get("weight") or attrs.get("count") or "standard",
        "days": str(rng.randint(3, 9)), "weeks": str(rng.randint(2, 6)), "fast": str(rng.randint(2, 3)),
        "late": str(rng.randint(2, 9)), "day": rng.choice(DAYS), "courier": rng.choice(COURIERS),
        "agent": rng.choice(AGENTS), "relative": rng.choice(RELATIVES),
    }


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    return text if text.startswith(("I ", "I'")) else text[:1].lower() + text[1:]


def _sentence(rng: random.Random, aspect: Aspect | None, polarity: int | None, ctx: dict[str, str]) -> str:
    """One sentence of `polarity` about `aspect` (None: a generic fact); half the opinions use a generic frame."""
    if aspect is None:
        template = rng.choice(GENERIC_FACTS)
    elif polarity is None:
        template = rng.choice(aspect.facts)
    elif polarity == 0 or rng.random() < 0.5:
        frame = rng.choice(FRAMES[polarity])
        template = frame.format(s=rng.choice(aspect.subjects), **{k: rng.choice(v) for k, v in WORDS.items()})
    else:
        template = rng.choice(aspect.said[polarity])
    return _upper_first(template.format(**ctx))


def _review(rng: random.Random, aspects: dict[str, Aspect], plan: Plan, ctx: dict[str, str], filler: float = 0.3) -> str:
    """The review text of `plan` (in order), sometimes opened by a generic fact, with contrast words between a
    praise and a complaint and a few typos."""
    sentences: list[tuple[str, int]] = []
    if rng.random() < filler:
        sentences.append((_sentence(rng, None, None, ctx), 0))
    for name, polarity in plan:
        text = _sentence(rng, aspects[name], polarity, ctx)
        while any(text == s for s, _ in sentences):  # two statements about one aspect must differ
            text = _sentence(rng, aspects[name], polarity, ctx)
        sentences.append((text, polarity or 0))
    body, previous = sentences[0]
    for text, sign in sentences[1:]:
        if ", but " in text:  # "not cheap, but worth it" takes no second connector
            body += " " + text
        elif previous * sign < 0 and rng.random() < 0.7:
            body = body[:-1] + pick(rng, ", but ", ". However, ", ", although ", ". That said, ") + _lower_first(text)
        elif previous * sign > 0 and rng.random() < 0.25:
            body = body[:-1] + pick(rng, ", and ", ". Also, ", ". Plus, ") + _lower_first(text)
        else:
            body += " " + text
        previous = sign
    # Typos go into the words only; the ending is ours, so noisy() cannot put ":(" on a five-star review.
    return noisy(rng, body[:-1], typo_rate=0.03) + pick(rng, ".", ".", "!", "")


def _shop_input(product: Product, review: str) -> str:
    return f"Product: {product.brand} {product.model} {product.product_type}\nReview: {review}"


# Star rating -> the plans that earn it (signed strengths of statements on distinct aspects). 5: strong praise only;
# 4: mild praise only, or strong praise with a mild gripe; 3: just okay, or praise and complaint of equal strength.
STAR_PLANS: dict[str, tuple[tuple[int, ...], ...]] = {
    "5": ((2,), (2, 2), (2, 1)),
    "4": ((1,), (1, 1), (2, -1)),
    "3": ((0,), (0, 0), (1, -1), (2, -2)),
    "2": ((-1,), (-1, -1), (-2, 1)),
    "1": ((-2,), (-2, -2), (-2, -1)),
}


def _star_review(rng: random.Random, world: World, stars: str) -> tuple[Product, Plan, str]:
    """A review that earns `stars`: its product, its plan and its text."""
    product = rng.choice(world.products)
    aspects = _shop_aspects(product)
    strengths = list(rng.choice(STAR_PLANS[stars]))
    rng.shuffle(strengths)
    plan: Plan = list(zip(rng.sample(list(aspects), len(strengths)), strengths))
    return product, plan, _review(rng, aspects, plan, _shop_context(rng, product))


def stars(rng: random.Random, world: World, label: str | None) -> Example:
    product, _, review = _star_review(rng, world, label)
    return Example(_shop_input(product, review), label)


def sentiment(rng: random.Random, world: World, label: str | None) -> Example:
    # positive: praise only; negative: complaints only; mixed: at least one of each; neutral: facts only.
    product = rng.choice(world.products)
    aspects = _shop_aspects(product)
    if label == "neutral":
        strengths: list[int | None] = [None] * rng.randint(1, 3)
    elif label == "mixed":
        strengths = [rng.choice((1, 2)), rng.choice((-1, -2))] + ([rng.choice((2, 1, -1, -2))] if rng.random() < 0.25 else [])
    else:
        sign = 1 if label == "positive" else -1
        strengths = [sign * rng.choice((1, 2)) for _ in range(rng.randint(1, 2))]
    rng.shuffle(strengths)
    plan: Plan = list(zip(rng.sample(list(aspects), len(strengths)), strengths))
    filler = 0.6 if label == "neutral" else 0.3
    return Example(_shop_input(product, _review(rng, aspects, plan, _shop_context(rng, product), filler)), label)


def _main_aspect_plan(rng: random.Random, main: str, others: list[str]) -> Plan:
    """A plan whose main aspect is `main` by the rule the instruction states: the complained-about aspect if there
    is a complaint (only the main one ever has one), otherwise the aspect with the most sentences."""
    case = rng.random()
    if case < 0.4:  # only the main aspect: one or two opinions of one sign, or facts
        sign = rng.choice((1, -1))
        plan: Plan = [(main, sign * rng.choice((1, 2))) for _ in range(rng.randint(1, 2))]
        if len(plan) == 2 and rng.random() < 0.3:  # a fact alone would not tell a reader the aspect
            plan[rng.randrange(2)] = (main, None)
        return plan
    if case < 0.75:  # a complaint about the main aspect, praise for another in passing
        plan = [(main, rng.choice((-1, -2))) for _ in range(rng.randint(1, 2))]
        plan.insert(rng.randint(0, len(plan)), (rng.choice(others), rng.choice((1, 2))))
        return plan
    # no complaint: two opinions on the main aspect, one sentence on another (a fact does not outweigh an opinion)
    plan = [(main, rng.choice((1, 2))), (main, rng.choice((1, 2)))]
    rng.shuffle(plan)
    plan.insert(rng.randint(0, 2), (rng.choice(others), rng.choice((1, 2, None))))
    return plan


def aspect(rng: random.Random, world: World, label: str | None) -> Example:
    products = [p for p in world.products if p.product_type in SIZED] if label == "size_fit" else world.products
    product = rng.choice(products)
    aspects = _shop_aspects(product)
    plan = _main_aspect_plan(rng, label, [a for a in aspects if a != label])
    return Example(_shop_input(product, _review(rng, aspects, plan, _shop_context(rng, product), filler=0.2)), label)


OPENINGS = {"5": "Thank you for the five-star review!", "4": "Thank you for the four-star review!",
            "3": "Thank you for your review.", "2": "Thank you for your feedback.", "1": "Thank you for letting us know."}
THANKS = {"quality": "We're glad you love the quality of the {item}.", "price": "Great to hear you found it good value.",
          "delivery": "Great to hear the delivery went smoothly.", "size_fit": "Happy to hear the fit is right.",
          "customer_service": "We'll pass your kind words on to our support team.",
          "packaging": "Glad it arrived nicely packed."}
SORRY = {"quality": "the {item} let you down; please contact us for a replacement or refund.",
         "price": "you found it overpriced; we'll review our pricing.",
         "delivery": "about the delivery; we've raised it with our courier.",
         "size_fit": "about the fit; exchanges for another size are free.",
         "customer_service": "our support let you down; we're looking into your case now.",
         "packaging": "about the packaging; we've told our warehouse team."}
NOUNS = {"quality": "quality", "price": "price", "delivery": "delivery", "size_fit": "fit",
         "customer_service": "customer service", "packaging": "packaging"}


def reply(rng: random.Random, world: World, label: str | None) -> Example:
    # The reply is a function of the review's plan: one line per opinion, in the review's order, so a model can
    # learn which aspect to name and whether to thank or apologise.
    rating = rng.choice(tuple(STAR_PLANS))
    product, plan, review = _star_review(rng, world, rating)
    item = product.product_type
    lines = [OPENINGS[rating]]
    okay = list(dict.fromkeys(NOUNS[name] for name, polarity in plan if polarity == 0))
    for name, polarity in plan:
        if polarity > 0:
            lines.append(THANKS[name].format(item=item))
        elif polarity < 0:
            lines.append(("We're very sorry " if polarity == -2 else "We're sorry ") + SORRY[name].format(item=item))
        elif okay:  # "just okay": one line naming every such aspect, where the first was said
            lines.append(f"Thanks for your honest words on the {' and '.join(okay)}; we'll keep working to earn "
                         "five stars.")
            okay = []
    if all(polarity > 0 for _, polarity in plan):
        lines.append(f"Enjoy your {item}!")
    product_line, review_line = _shop_input(product, review).split("\n")
    return Example(f"{product_line}\nRating: {rating}/5\n{review_line}", " ".join(lines))


# The held-out shop: furniture, with aspects meta-training never names. (item, brands, materials, colours, is a seat
# or bed: only those can be (un)comfortable).
FURNITURE: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], bool], ...] = (
    ("sofa", ("Hyggelund", "Sofaria"), ("velvet", "linen", "leather"), ("grey", "forest green", "navy"), True),
    ("armchair", ("Hyggelund", "Sitwell"), ("velvet", "boucle", "leather"), ("mustard", "cream", "rust"), True),
    ("desk chair", ("Ergoline", "Sitwell"), ("mesh", "fabric", "faux leather"), ("black", "grey", "white"), True),
    ("dining chair", ("Tavola", "Nordrum"), ("oak", "beech", "rattan"), ("natural", "black", "white"), True),
    ("bed frame", ("Dormio", "Hyggelund"), ("pine", "metal", "upholstered fabric"), ("white", "grey", "walnut"), True),
    ("bookshelf", ("Oakhaus", "Shelfie"), ("oak", "pine", "laminate"), ("white", "natural oak", "black"), False),
    ("wardrobe", ("Oakhaus", "Nordrum"), ("pine", "oak veneer", "MDF"), ("white", "grey", "oak"), False),
    ("dining table", ("Tavola", "Nordrum"), ("solid oak", "walnut", "ash"), ("natural", "dark walnut", "black"), False),
    ("coffee table", ("Tavola", "Shelfie"), ("oak", "marble-effect", "metal"), ("white", "black", "natural"), False),
    ("tv stand", ("Shelfie", "Oakhaus"), ("oak veneer", "laminate", "pine"), ("white", "black", "oak"), False),
)
FURNITURE_MODELS = ("Lund", "Fjord", "Solna", "Malva", "Kira", "Bergen", "Tova", "Eik")
FURNITURE_ASPECTS: dict[str, Aspect] = {
    "assembly": Aspect(
        ("the assembly", "putting it together", "the assembly process"),
        {2: ("put it together in {mins} minutes on my own, super easy.", "assembly was a breeze, every part fitted first time.",
             "only a few screws, assembled before my coffee got cold."),
         1: ("took about an hour to assemble, easy enough.", "assembly was straightforward with two people.",
             "not quick, but assembling it was easy."),
         -1: ("took {hours} hours to put together, a bit fiddly.", "some holes didn't quite line up during assembly."),
         -2: ("assembly was a nightmare, {hours} hours and two of us swearing.", "the screws kept stripping, I gave up assembling it.",
              "holes drilled in the wrong place, impossible to assemble.")},
        ("I assembled it on my own on {day}.", "it comes flat-packed in {boxes} boxes.", "my {relative} helped me put it together."),
    ),
    "sturdiness": Aspect(
        ("the stability", "the sturdiness", "the frame"),
        {2: ("rock solid, doesn't wobble at all.", "really sturdy, not a single creak after {weeks} weeks.",
             "built like a tank, my kids climb on it and it doesn't move."),
         1: ("feels stable enough for daily use.", "stable and feels well built.", "not heavy, but it stands firm."),
         -1: ("it wobbles a bit on a flat floor.", "the {item} creaks a little when you lean on it."),
         -2: ("one of the legs snapped within {weeks} weeks.", "wobbles like crazy, feels like it will collapse.",
              "already sagging in the middle, cheap chipboard inside.")},
        ("it's made of {material}.", "it weighs about {kilos} kg.", "it stands on a tiled floor."),
    ),
    "comfort": Aspect(
        ("the comfort", "the cushioning", "the comfort level"),
        {2: ("so comfortable, I could sit on it all day.", "incredibly comfy, perfect after a long work day.",
             "like sitting on a cloud."),
         1: ("comfortable enough for a few hours.", "nice and soft, pretty comfy.", "not plush, but comfy enough."),
         -1: ("a bit too firm for my taste.", "gets uncomfortable after an hour or so."),
         -2: ("back pain after one evening, so uncomfortable.", "rock hard, like sitting on a plank.",
              "the cushions flattened within {weeks} weeks, now it's unusable.")},
        ("I use it for about {hours} hours a day.", "I'm quite tall, about 1.90 m.", "it's the {material} version."),
    ),
    "delivery_damage": Aspect(
        ("the condition it arrived in", "the state it arrived in"),
        {2: ("arrived in perfect condition, not a single scratch.", "everything arrived undamaged and complete."),
         1: ("arrived without any damage.", "no damage on arrival, all parts there.", "the box was old, but the parts inside were fine."),
         -1: ("arrived with a small dent on one corner.", "one panel had a minor scratch from transport."),
         -2: ("arrived with a cracked panel, the box smashed.", "half the parts were broken when it arrived.",
              "the top was split in two on delivery.")},
        ("two men delivered it on {day}.", "it arrived on a pallet.", "the courier brought it up to the flat."),
    ),
    "finish_colour": Aspect(
        ("the finish", "the colour", "the paint"),
        {2: ("the {colour} finish is gorgeous, exactly like the photos.", "beautiful smooth finish, the colour is stunning."),
         1: ("the colour matches the photos well.", "nice even finish.", "not the exact shade, but the colour looks nice."),
         -1: ("the {colour} is a shade darker than the pictures.", "the finish is slightly uneven in places."),
         -2: ("the paint is already peeling off.", "the colour is completely different from the website, looks cheap.",
              "the {colour} finish is blotchy and streaked all over.")},
        ("I chose the {colour} version.", "the colour is called {colour} on the website.", "it's {colour} with black handles."),
    ),
    "instructions": Aspect(
        ("the manual", "the assembly guide", "the instruction leaflet"),
        {2: ("the instructions are crystal clear, great diagrams.", "best manual I've seen, every step illustrated."),
         1: ("the manual was clear enough to follow.", "instructions were easy to follow.",
             "not wordy, but the pictures in the manual are clear."),
         -1: ("a couple of steps in the manual were confusing.", "the diagrams are a bit small and hard to read."),
         -2: ("the instructions skip half the steps.", "the manual was for a different model, useless.",
              "there were no instructions in the box at all.")},
        ("the manual has {pages} pages.", "the instructions are pictures only.", "there's also a video guide online."),
    ),
}


def furniture_aspect(rng: random.Random, world: World, label: str | None) -> Example:
    seats = label == "comfort"
    item, brands, materials, colours, seat = rng.choice([f for f in FURNITURE if f[4] or not seats])
    aspects = {name: a for name, a in FURNITURE_ASPECTS.items() if name != "comfort" or seat}
    material = rng.choice(materials)
    ctx = {"item": item, "it": "it", "obj": "it", "be": "is", "was": "was", "s": "s", "material": material,
           "colour": rng.choice(colours), "mins": str(rng.choice((15, 20, 30, 40))), "hours": str(rng.randint(2, 6)),
           "weeks": str(rng.randint(2, 8)), "day": rng.choice(DAYS), "relative": rng.choice(RELATIVES),
           "boxes": str(rng.randint(2, 4)), "kilos": str(rng.randint(8, 90)), "pages": str(rng.randint(6, 40))}
    plan = _main_aspect_plan(rng, label, [a for a in aspects if a != label])
    review = _review(rng, aspects, plan, ctx, filler=0.2)
    return Example(f"Product: {rng.choice(brands)} {rng.choice(FURNITURE_MODELS)} {item}, {material}\nReview: {review}", label)


ASPECT_RULE = "If it complains about something, answer that aspect; otherwise the aspect it says most about."

TASKS = [
    GeneratedTask(
        TaskSpec("reviews-stars", "reviews", "classify",
                 "Star rating 1-5. 5: only praise, some strong; 4: only mild praise, or strong praise with a minor gripe; "
                 "3: just okay, or equal praise and complaint; 2 and 1 mirror 4 and 5.",
                 labels=("1", "2", "3", "4", "5")),
        "meta-train", stars),
    GeneratedTask(
        TaskSpec("reviews-sentiment", "reviews", "classify",
                 "What is the review's sentiment? positive: only praise; negative: only complaints; mixed: clear "
                 "praise and a clear complaint; neutral: facts only, no opinion.",
                 labels=("positive", "negative", "mixed", "neutral")),
        "meta-train", sentiment),
    GeneratedTask(
        TaskSpec("reviews-aspect", "reviews", "classify",
                 f"Which aspect is this shop review mainly about? {ASPECT_RULE}", labels=SHOP_ASPECTS),
        "meta-train", aspect),
    GeneratedTask(
        TaskSpec("reviews-reply", "reviews", "generate",
                 "Write the shop's short public reply (at most 40 words): thank the customer for praise and apologise "
                 "for complaints, naming each aspect they raised."),
        "meta-train", reply),
    GeneratedTask(
        TaskSpec("reviews-aspect-furniture", "reviews", "classify",
                 f"Which aspect is this furniture shop review mainly about? {ASPECT_RULE}",
                 labels=tuple(FURNITURE_ASPECTS)),
        "held-out", furniture_aspect),
]
