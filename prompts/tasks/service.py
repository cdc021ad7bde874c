"""Service family: customer intents, escalation, return eligibility, agent replies, a pet-shop domain, slot filling."""

from __future__ import annotations

import json
import random

from ..synthetic import GeneratedTask
from ..noise import noisy, pick
from ..spec import Example, TaskSpec
from ..world import Product, World

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
NAMES = ("Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Leo", "Mila",
         "Noah", "Olga", "Paul", "Rosa", "Sami", "Tara", "Yusuf")
CARRIERS = ("DHL", "UPS", "DPD", "GLS", "FedEx", "Hermes")
COMPETITORS = ("MegaMart", "ShopHub", "BuyNow", "PriceKing", "DealDepot")
CLOTHES = ("sneakers", "t-shirt", "jeans", "winter jacket", "running shoes", "bicycle helmet")
APPLIANCES = ("headphones", "smartphone", "laptop", "charger", "coffee maker", "vacuum cleaner", "desk lamp")


def _order_id(rng: random.Random) -> str:
    """An order number in one of the formats customers copy from their confirmation email."""
    n = rng.randint(100000, 9999999)
    return pick(rng, f"#{n}", str(n), f"SL-{n}", f"A{n}")


def _date(rng: random.Random) -> str:
    day, month = rng.randint(1, 28), rng.choice(MONTHS)
    return pick(rng, f"{day} {month}", f"{month} {day}")


def _when(rng: random.Random) -> str:
    """When something happened, as a customer would say it: a date or a relative day."""
    return pick(rng, f"on {_date(rng)}", "yesterday", "last week", f"last {rng.choice(('Monday', 'Friday', 'Sunday'))}",
                f"{rng.randint(2, 12)} days ago")


def _money(rng: random.Random, amount: float) -> str:
    return pick(rng, f"{amount:.2f} EUR", f"€{amount:.2f}", f"{amount:.2f} euros")


def _ref(rng: random.Random, product: Product) -> str:
    """How a customer names a product: by type, brand, model or a colour they remember."""
    color = product.attributes.get("color")
    options = [product.product_type, f"{product.brand} {product.product_type}", f"{product.brand} {product.model}",
               f"{product.brand} {product.model} {product.product_type}"]
    if color:
        options.append(f"{color} {product.product_type}")
    return rng.choice(options)


def _product(rng: random.Random, world: World, types: tuple[str, ...] = ()) -> Product:
    return rng.choice([p for p in world.products if p.product_type in types] if types else world.products)


# ---------------------------------------------------------------- service-intent
# intent -> (phrasings, product types the phrasing makes sense for; empty = any). Slots: {p} product, {p2} another
# product, {o} order number, {w} when, {a} amount, {c} colour, {s}/{s2} sizes, {code} coupon, {shop} a competitor.
INTENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "where_is_my_order": ((
        "Where is my order {o}? It was supposed to arrive {w}.",
        "I ordered the {p} {w} and still nothing. Can you tell me where it is?",
        "tracking for {o} hasn't updated in days, where is my parcel",
        "Any update on my {p}? Order {o}.",
        "My package hasn't shown up yet, order {o}. When will it get here?",
        "It's been ages since I ordered the {p} and I have no idea where it is. Could you check order {o} for me?",
        "status of {o}?",
        "has my {p} shipped yet? ordered it {w}",
    ), ()),
    "cancel_order": ((
        "Please cancel order {o}, I ordered it by mistake.",
        "I want to cancel the {p} I bought {w}.",
        "Can I still cancel {o}? I don't need it anymore.",
        "cancel my order {o} before it ships pls",
        "Changed my mind about the {p}, please don't send it. Order {o}.",
        "I ordered the {p} {w} but my sister already got me one, so I'd like to cancel it if it hasn't gone out. "
        "Order {o}.",
        "stop order {o}, I no longer want it",
    ), ()),
    "return_item": ((
        "I'd like to return the {p}, it's not what I expected.",
        "How do I send back the {p} from order {o}?",
        "can I return a {p} I bought {w}? never used it",
        "I need a return label for order {o}.",
        "The {p} isn't for me, I want to return it.",
        "I got the {p} as a present {w} but I already have one. What's the process to return it? Order {o}.",
    ), ()),
    "refund_status": ((
        "I returned the {p} {w}, where is my refund?",
        "Still waiting for my refund of {a} for order {o}.",
        "When will I get my money back for {o}? You received the return already.",
        "the refund for the {p} hasn't reached my account yet",
        "has my refund been processed? order {o}",
        "You confirmed the return of my {p} {w} but the {a} still isn't back on my card. How long does it take?",
    ), ()),
    "change_address": ((
        "I need to change the delivery address for order {o}.",
        "I moved {w}, can you send the {p} to my new address instead?",
        "Wrong street on order {o}, please update the shipping address.",
        "can I have {o} shipped to my office instead of home?",
        "There's a typo in my postcode for order {o}, can you fix it before it ships?",
    ), ()),
    "damaged_item": ((
        "The {p} arrived broken.",
        "My {p} came damaged, the box was crushed and it's cracked. Order {o}.",
        "received order {o} {w} and the {p} is scratched all over",
        "The {p} was smashed when I opened the parcel. What now?",
        "the {p} arrived dented, clearly damaged in transit",
    ), ()),
    "wrong_item": ((
        "I ordered the {p} but you sent me {p2}.",
        "Wrong item in order {o}, this isn't what I bought.",
        "the parcel for {o} contained someone else's order",
        "got {p2} instead of the {p} I paid for",
        "I ordered the {p} in {c} and received a completely different product.",
    ), ()),
    "missing_item": ((
        "Order {o} arrived but the {p} was missing from the box.",
        "Only got one of the two items I ordered, the {p} isn't there.",
        "my parcel came without the {p}, the rest was fine",
        "The {p} is listed on the packing slip but wasn't in the package. Order {o}.",
        "half of order {o} is missing, no {p} in the box",
    ), ()),
    "payment_failed": ((
        "My card keeps getting declined at checkout.",
        "Payment failed when I tried to buy the {p}.",
        "checkout says payment unsuccessful, I tried three times for the {p}",
        "Why won't my payment go through? I'm trying to order the {p}.",
        "I get a PayPal error every time I try to pay for the {p}.",
    ), ()),
    "charged_twice": ((
        "I was charged twice for order {o}.",
        "My bank shows two payments of {a} for the {p}.",
        "double charge on my card for {o}!",
        "You took {a} from my account two times for one {p}.",
        "Same order {o} billed twice, please refund the duplicate payment.",
    ), ()),
    "apply_coupon": ((
        "My discount code isn't working at checkout.",
        "I forgot to enter my coupon code on order {o}, can you still apply it?",
        "the code {code} says invalid, it should give 10% off the {p}",
        "How do I use a voucher on the {p}?",
        "Promo code {code} from your email doesn't apply to my basket.",
    ), ()),
    "price_match": ((
        "I saw the {p} for {a} on {shop}, can you match that price?",
        "do you price match? {shop} has the {p} cheaper",
        "The {p} is {a} at {shop}. Will you match it?",
        "Will you match {shop}'s price of {a} for the {p}?",
    ), ()),
    "product_availability": ((
        "Is the {p} in stock?",
        "When will the {p} be available again?",
        "The {p} says sold out, are you restocking it?",
        "do you have the {p} in {c}?",
        "Can I preorder the {p}? It's out of stock on your site.",
    ), ()),
    "size_advice": ((
        "What size {t} should I get? I'm normally a {s}.",
        "Does the {p} run small or large?",
        "I'm 180 cm and 75 kg, which size of the {p} would fit me?",
        "Torn between {s} and {s2} for the {p}, which one should I order?",
        "my feet are wide, should I size up in the {p}?",
    ), CLOTHES),
    "warranty_claim": ((
        "My {p} stopped working after 8 months, is it still under warranty?",
        "The {p} I bought {w} broke, I'd like a warranty repair.",
        "How do I make a warranty claim for my {p}?",
        "{p} won't turn on anymore, bought it last year. Is that covered by the guarantee?",
        "the {p} has a fault after 10 months of normal use, I want to claim the warranty",
    ), APPLIANCES),
    "invoice_request": ((
        "Can you send me an invoice for order {o}?",
        "I need a VAT invoice for the {p}, it's for my company.",
        "Where can I download the invoice for {o}?",
        "Please add my company name to the invoice for order {o}.",
        "need a proper invoice for the {p} for my tax return",
    ), ()),
    "change_payment_method": ((
        "Can I pay for order {o} with PayPal instead of my card?",
        "I want to switch the payment on {o} to a different card.",
        "How do I update my saved credit card?",
        "Please change the payment method for the {p} from bank transfer to card.",
        "my card expired, how do I put a new one on my account for order {o}",
    ), ()),
    "account_login": ((
        "I can't log into my account.",
        "The password reset email never arrives.",
        "my account is locked after too many login attempts",
        "It keeps saying wrong password but I'm sure it's right.",
        "I can't sign in to check on the {p}, the login page just reloads.",
    ), ()),
    "delete_account": ((
        "Please delete my account and all my data.",
        "How do I close my account permanently?",
        "I want you to erase my personal data under GDPR.",
        "remove my customer account, I won't shop here again",
        "Once the {p} arrives, please delete my account completely.",
    ), ()),
    "newsletter_unsubscribe": ((
        "Stop sending me marketing emails.",
        "How do I unsubscribe from your newsletter?",
        "I get three promo emails a day, take me off the mailing list.",
        "unsubscribe me please, the link in the email doesn't work",
        "I bought one {p} and now you spam me daily. Stop the newsletter.",
    ), ()),
    "delivery_options": ((
        "Do you offer next-day delivery for the {p}?",
        "Can I pick up my order at a parcel locker?",
        "How much is express shipping?",
        "do you ship to Switzerland?",
        "Can I choose a delivery time slot for the {p}?",
    ), ()),
    "contact_human": ((
        "I want to talk to a real person.",
        "Can I speak to a human agent please?",
        "Give me a phone number, I don't want a chatbot.",
        "Connect me with someone from customer service about order {o}.",
        "is there an actual person I can chat with about the {p}?",
    ), ()),
    "gift_wrapping": ((
        "Can you gift wrap the {p}?",
        "Is it possible to add a gift message to order {o}?",
        "I'm sending the {p} to my mum, can you wrap it and leave the price off?",
        "do you do gift wrapping? the {p} is a birthday present",
        "Please put order {o} in gift packaging.",
    ), ()),
    "exchange_item": ((
        "Can I swap the {p} for a bigger size?",
        "I'd like to exchange the {p} for the {c} one.",
        "The {s} doesn't fit, can I exchange the {p} for a {s2}?",
        "can I trade in the {p} from order {o} for a different colour?",
        "Please exchange the {p} I got {w} for the same model in {c}.",
    ), CLOTHES),
}

OPENERS = ("", "", "", "Hi, ", "Hello! ", "Good morning, ", "Hey team, ", "Quick question: ", "Hi there. ")
CLOSERS = ("", "", "", " Thanks.", " Thank you!", " Cheers", " Thanks in advance!", " Kind regards, {name}",
           " Please help.", " Thx")
CHATTY = ("I've been a customer for years and love your shop. ", "Sorry to bother you on a weekend. ",
          "Writing from my phone, sorry for typos. ", "My husband told me to write to you. ")


def _open(opener: str, body: str) -> str:
    """`body` after a greeting, its first letter cased as the greeting's punctuation asks."""
    starts_lower = opener.endswith((", ", ": ")) and not body.startswith(("I ", "I'"))
    return opener + (body[0].lower() if starts_lower else body[0].upper()) + body[1:]


def _intent_slots(rng: random.Random, world: World, types: tuple[str, ...]) -> dict[str, str]:
    product = _product(rng, world, types)
    other = rng.choice([p for p in world.products if p.product_type != product.product_type])
    sizes = sorted({p.attributes["size"] for p in world.of_type(product.product_type) if "size" in p.attributes})
    s, s2 = (rng.sample(sizes, 2) if len(sizes) >= 2 else ("M", "L"))
    return {"p": _ref(rng, product), "p2": f"{other.brand} {other.product_type}", "t": product.product_type,
            "o": _order_id(rng), "w": _when(rng), "a": _money(rng, product.price),
            "c": rng.choice(("black", "white", "blue", "red", "grey")),
            "s": s, "s2": s2, "code": f"{rng.choice(('SAVE', 'WELCOME', 'SPRING', 'VIP'))}{rng.randint(5, 30)}",
            "shop": rng.choice(COMPETITORS), "name": rng.choice(NAMES)}


def intent(rng: random.Random, world: World, label: str | None) -> Example:
    phrasings, types = INTENTS[label]
    slots = _intent_slots(rng, world, types)
    body = rng.choice(phrasings).format(**slots)
    chatty = rng.choice(CHATTY) if rng.random() < 0.15 else ""
    text = _open(rng.choice(OPENERS), chatty + body) + rng.choice(CLOSERS).format(**slots)
    return Example(noisy(rng, text, typo_rate=0.04), label)


# ---------------------------------------------------------------- service-escalate
# The same topics (a human, the law, safety, earlier contacts) occur stated (escalate_now), conditional on this chat
# failing (escalate_if_unresolved) and negated (self_serve): the label is in how they are said, not which words.
ROUTINE_ISSUES = (
    "My order {o} with the {p} still hasn't arrived.",
    "I want to return the {p} from order {o}.",
    "I was charged twice for order {o}.",
    "I need to change the delivery address on order {o}.",
    "My refund for the {p} hasn't come through yet.",
    "The wrong {p} was delivered for order {o}.",
    "My coupon didn't apply to the {p}.",
)
FAULT_ISSUES = (
    "The {p} I got stopped working after a week.",
    "The {p} from order {o} won't switch on.",
    "The {p} arrived with a crack in it.",
    "My {p} started making a strange noise {w}.",
)
SAFETY_INCIDENTS = (
    "The {p} overheated and burned my hand, this is a safety hazard.",
    "Smoke came out of the {p} and it nearly caught fire.",
    "My son got an electric shock from the {p}, it's dangerous.",
    "A sharp edge on the {p} cut my daughter, someone got hurt.",
    "The {p} caught fire on the counter {w}.",
)
ESCALATE_TRIGGERS = {
    "human": ("I want to speak to a real person right now, not a bot.", "Transfer me to a human agent, please.",
              "Get me a manager on the phone today.", "Please have a person call me back today.",
              "Put me through to a real person now, I don't care if I have to wait."),
    "legal": ("My lawyer is already drafting a complaint.",
              "I'm reporting you to the consumer protection agency today.",
              "I've asked my bank for a chargeback.", "I'll see you in court over this."),
    "repeat": ("This is my fourth message about it and nobody has replied, as if I don't exist.",
               "I've called three times and was cut off every time.", "Fifth email this week, still no answer.",
               "I contacted you twice already and nothing was resolved, so now I want a manager."),
}
CONDITIONAL_TRIGGERS = {
    "human": ("If the bot can't sort this out, then I'd like to talk to a human.",
              "Try to solve it here first; only if that fails, put me through to a person.",
              "Should this chat not fix it, a manager can call me.",
              "If there's no answer here, I'll need a real person."),
    "legal": ("If this isn't fixed by Friday, I'll contact my lawyer.",
              "Unless the refund shows up this week, I'll ask my bank for a chargeback.",
              "If nothing happens, the consumer protection agency will hear about it.",
              "Sort it out here or I'll have to take it to court."),
    "repeat": ("This is my second message; if no one answers this time, I want a manager.",
               "I wrote once before; if that goes unanswered again, I'll need someone to call me.",
               "Last time nobody replied, so if this chat fails too please pass me to a person."),
}
NEGATED_TRIGGERS = {
    "human": ("No need for a human, just tell me if I can fix it myself.",
              "I don't need to speak to a person, a quick answer is fine.",
              "No manager needed, the bot is fine.", "You don't have to pass me to an agent."),
    "legal": ("I'm not threatening legal action or anything, just asking if you can help.",
              "No lawyer or chargeback needed, I'm sure it's a mix-up.",
              "I don't want to complain to the consumer protection agency, I just want to know.",
              "Nothing for court, haha, just a question."),
    "repeat": ("Last time I contacted you it was resolved fast, so no worries.", "First time I've had to write to you.",
               "Your team answered my last message quickly, thanks for that.",
               "I called three times before about other orders and you always helped."),
}
NEGATED_SAFETY = ("No smoke, no fire, nobody hurt, it just doesn't work.",
                  "It's not dangerous or a safety thing, just annoying.",
                  "No burn marks or electric shock, it simply stopped.", "Nobody got hurt, it's only cosmetic.")
FILLERS = ("I'm a bit annoyed, to be honest.", "Not angry at all.", "Let me know if you need photos.",
           "Not sure if this is the right place to ask.", "Thanks in advance.", "I'm really frustrated.",
           "Please reply if you need the order number.", "")


def escalate(rng: random.Random, world: World, label: str | None) -> Example:
    slots = {"p": _ref(rng, _product(rng, world, APPLIANCES)), "o": _order_id(rng), "w": _when(rng)}
    kinds = ["human", "legal", "repeat"]
    rng.shuffle(kinds)
    fault = rng.random() < 0.4
    issue = rng.choice(FAULT_ISSUES if fault else ROUTINE_ISSUES)
    extra: list[str] = []
    if label == "escalate_now":
        if rng.random() < 0.25:
            issue, fault = rng.choice(SAFETY_INCIDENTS), False  # the incident itself is the reason to escalate
        else:
            extra.append(rng.choice(ESCALATE_TRIGGERS[kinds.pop()]))
    elif label == "escalate_if_unresolved":
        extra.append(rng.choice(CONDITIONAL_TRIGGERS[kinds.pop()]))
    else:
        extra.append(rng.choice(NEGATED_TRIGGERS[kinds.pop()]))
    # A negated mention of another topic, so negations appear under every label; else small talk.
    if rng.random() < 0.55:
        negated = NEGATED_SAFETY if fault and rng.random() < 0.5 else NEGATED_TRIGGERS[kinds.pop()]
        extra.append(rng.choice(negated))
    else:
        extra.append(rng.choice(FILLERS))
    rng.shuffle(extra)
    text = " ".join(s for s in [issue, *extra] if s).format(**slots)
    return Example(noisy(rng, text, typo_rate=0.03), label)


# ---------------------------------------------------------------- service-return-eligibility
FINAL_SALE_GROUPS = (("perfume", "face cream", "shampoo"), ("headphones",), ("bed sheets",), ("t-shirt", "jeans"),
                     ("coffee beans", "green tea", "olive oil"), ("dog food", "cat litter"), ("smartphone", "laptop"))
CONDITIONS = ("unopened", "opened", "used")


def _policy(rng: random.Random, window: int, unopened: bool, final_sale: tuple[str, ...], proof: bool,
            grace: int) -> str:
    parts = [pick(rng, f"Returns within {window} days of delivery.", f"{window}-day return window from delivery.",
                  f"You may return items up to {window} days after delivery.")]
    if grace:
        parts.append(pick(rng, f"Requests up to {grace} days late are reviewed by staff.",
                          f"Late requests (max {grace} days over) go to manual review."))
    if unopened:
        parts.append(pick(rng, "Items must be unopened.", "Only unopened items.",
                          "Opened or used items are not accepted."))
    if final_sale:
        parts.append(pick(rng, f"Final sale: {', '.join(final_sale)}.", f"No returns on {' or '.join(final_sale)}."))
    if proof:
        parts.append(pick(rng, "Receipt required; without one a request is reviewed.",
                          "Proof of purchase needed, otherwise manual review."))
    return " ".join(parts)


def _days_phrase(rng: random.Random, days: int) -> str:
    if days <= 27 and rng.random() < 0.35:
        # Dates in one month, so the gap is a plain subtraction.
        start = rng.randint(1, 28 - days)
        month = rng.choice(MONTHS)
        return f"delivered {start} {month}, return asked {start + days} {month}"
    return pick(rng, f"delivered {days} days ago", f"{days} days since delivery",
                f"return asked {days} days after delivery")


def return_eligibility(rng: random.Random, world: World, label: str | None) -> Example:
    # Rejection sampling over random policies and orders: every condition word occurs under every label, and the
    # label is always the rule's verdict. not_eligible: too late, final sale or opened when unopened is required;
    # needs_review: otherwise, inside the late-review grace period or no receipt where one is required.
    while True:
        product = rng.choice(world.products)
        window = rng.choice((14, 15, 28, 30, 60, 100))
        grace = rng.choice((0, 0, 5, 7, 10))
        unopened = rng.random() < 0.4
        final_sale = rng.choice(FINAL_SALE_GROUPS) if rng.random() < 0.5 else ()
        if final_sale and rng.random() < 0.4 and product.product_type not in final_sale:
            final_sale = (product.product_type, *final_sale)[:3]
        proof = rng.random() < 0.4
        days = rng.randint(1, window + grace + 40)
        if days in (window, window + grace):
            continue  # boundary days read ambiguously
        condition = rng.choice(CONDITIONS)
        receipt = rng.random() < 0.6
        if (days > window + grace or product.product_type in final_sale
                or (unopened and condition != "unopened")):
            verdict = "not_eligible"
        elif days > window or (proof and not receipt):
            verdict = "needs_review"
        else:
            verdict = "eligible"
        if verdict == label:
            break
    receipt_text = pick(rng, "receipt: yes", "has receipt") if receipt else pick(rng, "receipt: no", "no receipt")
    policy = _policy(rng, window, unopened, final_sale, proof, grace)
    facts = [f"{product.brand} {product.product_type}", _days_phrase(rng, days), condition, receipt_text]
    return Example(f"Policy: {policy}\nOrder: {', '.join(facts)}.", label)


# ---------------------------------------------------------------- service-reply
REQUESTS = {
    "track": ("Where is my {p}?", "when will my {p} arrive", "Any news on my order? I'm waiting for the {p}.",
              "has the {p} shipped?", "I still don't have my {p}, what's going on?"),
    "cancel": ("Please cancel my order for the {p}.", "i want to cancel the {p}", "Can I still cancel this order?",
               "Changed my mind, cancel the {p} please."),
    "refund": ("Where is my refund for the {p}?", "when do i get my money back", "Has my refund been sent?",
               "I'm still waiting on the refund for the {p}."),
    "address": ("Can I change the delivery address for the {p}?", "i moved, please send it to my new address",
                "Wrong address on my order, can you update it?", "Please ship the {p} to my office instead."),
}
STATUSES = ("processing", "shipped", "out for delivery", "delivered", "delayed", "cancelled", "returned")


def _facts(status: str, f: dict[str, str]) -> str:
    detail = {
        "processing": f"processing, placed {f['placed']}, ships by {f['ship']}",
        "shipped": f"shipped {f['ship']} via {f['carrier']}, expected {f['eta']}",
        "out for delivery": f"out for delivery today with {f['carrier']}",
        "delivered": f"delivered {f['eta']}",
        "delayed": f"delayed at {f['carrier']}, new estimate {f['eta']}",
        "cancelled": f"cancelled {f['ship']}, refund issued {f['refund']}",
        "returned": f"returned, refund issued {f['refund']}",
    }[status]
    return f"Order {f['o']}: {detail}, total {f['total']}."


def _reply_core(request: str, status: str, f: dict[str, str]) -> str:
    """What the agent must say: decided by the request and the order's status, quoting the order's facts."""
    o, refunded = f["o"], status in ("cancelled", "returned")
    if refunded:
        done = f"Order {o} was {status} and your refund of {f['total']} was issued on {f['refund']}."
        return {"track": done, "refund": done + " Please allow 3-5 business days for it to show.",
                "cancel": f"Order {o} is already {status}; your refund of {f['total']} was issued on {f['refund']}.",
                "address": f"Order {o} was {status}, so there is no delivery to redirect."}[request]
    in_transit = status in ("shipped", "out for delivery", "delayed")
    if request == "track":
        return {
            "processing": f"Your order {o} is being prepared and will ship by {f['ship']}.",
            "shipped": f"Your order {o} shipped on {f['ship']} with {f['carrier']} and should arrive on {f['eta']}.",
            "out for delivery": f"Good news: your order {o} is out for delivery with {f['carrier']} today.",
            "delivered": f"Order {o} was delivered on {f['eta']}. If you can't find it, please check with your "
                         "neighbours and tell us.",
            "delayed": f"Sorry, order {o} is delayed at {f['carrier']}. The new estimated delivery date is {f['eta']}.",
        }[status]
    if request == "cancel":
        if status == "processing":
            return f"I've cancelled order {o} before it shipped. Your refund of {f['total']} follows within 5 days."
        if in_transit:
            return (f"Order {o} has already shipped with {f['carrier']}, so it can't be cancelled. You can return it "
                    "for free once it arrives.")
        return f"Order {o} was delivered on {f['eta']}, so it can't be cancelled, but you can return it within 30 days."
    if request == "refund":
        if status == "delivered":
            return (f"Order {o} was delivered on {f['eta']} and no return has reached us, so no refund is due yet. "
                    "You can start a return in your account.")
        return (f"No refund has been issued for order {o}: it is {status} and was not cancelled. Let us know if you "
                "want to cancel it.")
    if status == "processing":
        return (f"Order {o} hasn't shipped yet, so I can update the address. Please send the full new address "
                f"before {f['ship']}.")
    if in_transit:
        return (f"Order {o} is already with {f['carrier']}, so we can't change the address. Please contact "
                f"{f['carrier']} to redirect it.")
    return f"Order {o} was already delivered on {f['eta']}, so the address can no longer be changed."


def reply(rng: random.Random, world: World, label: str | None) -> Example:
    request = rng.choice(tuple(REQUESTS))
    status = rng.choice(STATUSES)
    product = rng.choice(world.products)
    month = rng.randrange(12)
    # Dates in order within one month: placed, shipped, delivered or expected, refunded.
    days = sorted(rng.sample(range(1, 29), 4))
    facts = {key: f"{d} {MONTHS[month]}" for key, d in zip(("placed", "ship", "eta", "refund"), days)}
    facts.update(o=_order_id(rng), carrier=rng.choice(CARRIERS), total=f"{product.price:.2f} EUR")
    name = rng.choice(NAMES) if rng.random() < 0.5 else ""
    message = rng.choice(REQUESTS[request]).format(p=_ref(rng, product))
    # The signature stays as typed so the reply can greet the customer by the name the input shows.
    message = noisy(rng, message, typo_rate=0.04) + (f" - {name}" if name else "")
    greeting = f"Hi {name}!" if name else "Hello!"
    answer = f"{greeting} {_reply_core(request, status, facts)}"
    return Example(f"Customer: {message}\n{_facts(status, facts)}", answer)


# ---------------------------------------------------------------- service-intent-petshop
# Slots: {food} something a pet eats (sold by subscription), {dog} a dog food, {bag} anything sold in bags, {p} any
# pet product, {pet} the customer's pet, {f}/{f2} flavours, {n} a small number.
PET_FOODS = ("grain-free cat food", "kitten food", "bird seed mix", "rabbit hay", "senior dog food", "wet cat food")
PETS = ("my dog", "my cat", "our puppy", "our kitten", "my rabbit", "Bella", "Max", "Luna", "Milo", "our old labrador")
FLAVOURS = ("chicken", "salmon", "lamb", "beef", "turkey", "duck")
PETSHOP_INTENTS: dict[str, tuple[str, ...]] = {
    "skip_next_delivery": (
        "Can I skip just the next delivery of {food}? We still have half a bag.",
        "please skip my next box, we're away, but keep the subscription going after that",
        "Don't send the next {bag} shipment, only that one, the one after is fine.",
        "We have too much {food} at home, can you skip one delivery?",
        "skip the upcoming order on my subscription please, {pet} is eating less",
    ),
    "change_subscription_flavour": (
        "Please switch my {dog} subscription from {f} to {f2}.",
        "{pet} got bored of the {f} one, can the next boxes be {f2} instead?",
        "can I change the flavour in my subscription to {f2}?",
        "Swap {f} for {f2} in my regular {food} order please.",
        "{pet} won't eat {f} anymore, change my subscription flavour",
    ),
    "pause_subscription": (
        "Pause my subscription for two months while we're abroad.",
        "Can I put my {bag} deliveries on hold until further notice?",
        "please freeze the subscription until {pet} is back from the vet clinic",
        "We're moving house, pause all deliveries for a few weeks.",
        "I want to pause, not cancel, my {food} subscription for the summer.",
    ),
    "vet_prescription_needed": (
        "Does the renal diet food need a vet prescription?",
        "My vet prescribed a special diet for {pet}, how do I upload the prescription?",
        "can I buy the urinary care food without a prescription from my vet?",
        "The checkout asks for a vet prescription for the {food}, what do I send?",
        "where do I send the prescription from our vet for the hypoallergenic food",
    ),
    "pet_allergy_question": (
        "{pet} is allergic to {f}, which of your foods are safe?",
        "Does the {food} contain grain? {pet} has allergies.",
        "is there any {f} in the {dog}? {pet} reacts badly to it",
        "Which foods do you have for a dog with a {f} allergy?",
        "{pet} gets itchy skin from {f}, what can you recommend?",
    ),
    "bulk_discount": (
        "Do you give a discount if I buy 10 bags of {bag}?",
        "I run a small shelter, is there a price break for bulk orders of {food}?",
        "any discount for ordering {n} bags at once?",
        "We have {n} dogs, do you do bulk pricing on the {dog}?",
        "Is it cheaper per kilo if I buy a pallet of {bag}?",
    ),
    "live_animal_question": (
        "Do you sell live fish?",
        "can I buy a hamster from you?",
        "Do you ship live crickets for my gecko?",
        "Are there any kittens for adoption through your shop?",
        "do you deliver live mealworms along with the {p}?",
    ),
    "damaged_bag": (
        "The bag of {bag} arrived ripped and there was kibble everywhere.",
        "the {bag} bag split open in transit",
        "My {bag} came with a hole in the bag, half of it spilled in the box.",
        "The {bag} bag was torn when it arrived, can I get a new one?",
        "bag of {bag} burst during delivery, it's all over the parcel",
    ),
    "subscription_cancel": (
        "Cancel my subscription entirely, we don't have a dog anymore.",
        "Please end my {food} auto-delivery, I don't want any more boxes.",
        "i want to stop the subscription for good",
        "{pet} passed away, please cancel all future deliveries.",
        "How do I cancel my {bag} subscription completely?",
    ),
    "delivery_frequency": (
        "Can I get deliveries every {n} weeks instead of every 4?",
        "Please change my {bag} delivery interval to monthly.",
        "the bags last longer than expected, can you send them less often?",
        "{pet} eats more now, please deliver the {food} every 2 weeks.",
        "how do I change how often my subscription ships?",
    ),
    "puppy_food_transition": (
        "Our puppy is 11 months old, when should we switch to adult food?",
        "How do I move my puppy from puppy kibble to the adult {dog} gradually?",
        "when is the right age to change a puppy to adult dog food?",
        "our puppy had an upset tummy after switching to adult food, how slowly should we change?",
        "Can a {n} month old puppy already eat the adult {dog}?",
    ),
    "loyalty_points": (
        "How many reward points do I have?",
        "My points from the last {p} order weren't added.",
        "Can I use my loyalty points on the {p}?",
        "do the loyalty points expire?",
        "I should have {n}00 points, but my account shows zero.",
    ),
}


def petshop_intent(rng: random.Random, world: World, label: str | None) -> Example:
    dogs = sorted({f"{p.brand} dog food" for p in world.of_type("dog food")})
    litter = [f"{p.brand} cat litter" for p in world.of_type("cat litter")]
    leashes = [f"{p.brand} dog leash" for p in world.of_type("dog leash")]
    food = rng.choice(dogs + list(PET_FOODS))
    f, f2 = rng.sample(FLAVOURS, 2)
    slots = {"food": food, "dog": rng.choice(dogs), "bag": rng.choice((food, rng.choice(litter))),
             "p": rng.choice((food, rng.choice(litter), rng.choice(leashes))), "pet": rng.choice(PETS), "f": f,
             "f2": f2, "n": str(rng.randint(3, 9))}
    body = rng.choice(PETSHOP_INTENTS[label]).format(**slots)
    text = _open(rng.choice(OPENERS), body) + rng.choice(CLOSERS).format(name=rng.choice(NAMES))
    return Example(noisy(rng, text, typo_rate=0.04), label)


# ---------------------------------------------------------------- service-slot-filling
# action -> phrasings around the object "{0}" (the product with its quantity) and an order reference "{1}".
SLOT_ACTIONS: dict[str, tuple[str, ...]] = {
    "cancel": ("Please cancel {0}{1}.", "I want to cancel {0}{1}", "can you stop {0}{1} before it ships?",
               "I no longer need {0}{1}, cancel it please."),
    "return": ("I'd like to return {0}{1}.", "how do I send back {0}{1}?", "I want to return {0}{1}, not happy with it",
               "Returning {0}{1}, please send a label."),
    "exchange": ("Can I exchange {0}{1} for another size?", "I'd like to swap {0}{1} for a different colour.",
                 "please exchange {0}{1}", "{0}{1} doesn't fit, can I swap it?"),
    "track": ("Where is {0}{1}?", "can you track {0}{1}", "{0}{1} hasn't arrived yet, where is it?",
              "Any tracking update on {0}{1}?"),
    "reorder": ("I want to order {0} again{1}.", "please reorder {0}{1}", "Can I buy {0} again{1}?",
                "Loved it, send me {0} again{1}."),
}
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")


def slot_filling(rng: random.Random, world: World, label: str | None) -> Example:
    action = rng.choice(tuple(SLOT_ACTIONS))
    product = rng.choice(world.products)
    name = None
    if rng.random() < 0.8:
        name = pick(rng, f"{product.brand} {product.model}", f"{product.brand} {product.product_type}",
                    f"{product.brand} {product.model} {product.product_type}", product.product_type)
    quantity = rng.randint(1, 6) if rng.random() < 0.5 else None
    order = _order_id(rng) if rng.random() < 0.7 else None
    if name and quantity:
        obj = pick(rng, f"{quantity} x {name}", f"{quantity} {name}", f"{NUMBER_WORDS[quantity - 1]} {name}")
    elif name:
        obj = f"{pick(rng, 'the', 'my')} {name}"
    elif quantity:
        unit = pick(rng, "items", "units") if quantity > 1 else "item"
        obj = f"{pick(rng, str(quantity), NUMBER_WORDS[quantity - 1])} {unit}"
    else:
        obj = pick(rng, "my order", "my stuff", "my parcel")
    ref = pick(rng, f" from order {order}", f" (order {order})", f", order no. {order}") if order else ""
    if action == "reorder" and ref:
        ref = pick(rng, f" like order {order}", f" as in order {order}")
    frame = rng.choice(SLOT_ACTIONS[action])
    # Noise goes on the frame only, so the extracted values are exact copies of what the message says.
    text = noisy(rng, frame, typo_rate=0.05).format(obj, ref)
    answer = {"order_id": order, "product": name, "action": action, "quantity": quantity}
    return Example(text[0].upper() + text[1:], json.dumps(answer, ensure_ascii=False))


TASKS = [
    GeneratedTask(
        TaskSpec("service-intent", "service", "classify",
                 "What does the customer want from the online shop? Answer with one intent.", labels=tuple(INTENTS)),
        "meta-train", intent),
    GeneratedTask(
        TaskSpec("service-escalate", "service", "classify",
                 "Does this message need a human agent? escalate_now: safety incident, legal threat, repeated failed "
                 "contacts or a person demanded; escalate_if_unresolved: only if this chat fails; else self_serve.",
                 labels=("escalate_now", "escalate_if_unresolved", "self_serve")),
        "meta-train", escalate),
    GeneratedTask(
        TaskSpec("service-return-eligibility", "service", "classify",
                 "Apply the return policy to the order: is the return eligible, not_eligible or needs_review?",
                 labels=("eligible", "not_eligible", "needs_review")),
        "meta-train", return_eligibility),
    GeneratedTask(
        TaskSpec("service-reply", "service", "generate",
                 "Write a short, polite support reply to the customer that uses the order facts correctly."),
        "meta-train", reply),
    GeneratedTask(
        TaskSpec("service-intent-petshop", "service", "classify",
                 "A customer writes to a pet-supplies shop with food subscriptions. Which intent is it?",
                 labels=tuple(PETSHOP_INTENTS)),
        "held-out", petshop_intent),
    GeneratedTask(
        TaskSpec("service-slot-filling", "service", "extract",
                 "Extract JSON with keys order_id, product, action (cancel, return, exchange, track or reorder) and "
                 "quantity from the customer's message; use null when absent."),
        "held-out", slot_filling),
]
