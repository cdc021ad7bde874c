"""A deterministic e-commerce world: a product catalogue with departments, brands, attributes and prices.

Every generated task draws from the same world, so a product's title, attributes and price agree across tasks
(the title generator, the attribute extractor and the QA task all see one truth). Customers, orders and sessions
are drawn per example by the task generators from this catalogue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

# department -> product type -> (brands, attribute choices, price range in EUR)
CATALOGUE: dict[str, dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]], tuple[float, float]]]] = {
    "electronics": {
        "headphones": (("Sonara", "Bassline", "Aurex", "Quietek"),
                       {"color": ("black", "white", "navy", "rose gold"), "connectivity": ("bluetooth", "wired", "usb-c"),
                        "style": ("over-ear", "in-ear", "on-ear")}, (19, 349)),
        "smartphone": (("Novaphone", "Pixelon", "Zentro"),
                       {"color": ("black", "silver", "blue", "green"), "storage": ("64GB", "128GB", "256GB", "512GB"),
                        "screen": ("6.1 inch", "6.4 inch", "6.7 inch")}, (149, 1299)),
        "phone case": (("Armorly", "Casewise", "Shellguard"),
                       {"color": ("clear", "black", "red", "lilac"), "material": ("silicone", "leather", "polycarbonate"),
                        "fits": ("Novaphone 12", "Pixelon 8", "Zentro X", "Novaphone 13")}, (7, 49)),
        "laptop": (("Corelite", "Vantix", "Zentro"),
                   {"ram": ("8GB", "16GB", "32GB"), "storage": ("256GB SSD", "512GB SSD", "1TB SSD"),
                    "screen": ("13.3 inch", "14 inch", "15.6 inch")}, (399, 2499)),
        "charger": (("Voltix", "Chargeon", "Amperly"),
                    {"power": ("20W", "45W", "65W", "100W"), "connector": ("usb-c", "lightning", "micro-usb"),
                     "color": ("white", "black")}, (9, 79)),
    },
    "fashion": {
        "sneakers": (("Stridex", "Urbanfoot", "Kelso"),
                     {"color": ("white", "black", "grey", "olive"), "size": ("38", "39", "40", "41", "42", "43", "44", "45"),
                      "material": ("leather", "mesh", "canvas", "suede")}, (39, 189)),
        "t-shirt": (("Cottonway", "Basico", "Nordline"),
                    {"color": ("white", "black", "navy", "mustard", "sage"), "size": ("XS", "S", "M", "L", "XL", "XXL"),
                     "fit": ("regular", "slim", "oversized")}, (9, 45)),
        "jeans": (("Denimco", "Rivetta", "Kelso"),
                  {"color": ("light blue", "dark blue", "black"), "size": ("W28 L30", "W30 L32", "W32 L32", "W34 L34"),
                   "fit": ("skinny", "straight", "relaxed")}, (29, 129)),
        "winter jacket": (("Polarix", "Nordline", "Fjellhus"),
                          {"color": ("black", "forest green", "red", "beige"), "size": ("S", "M", "L", "XL"),
                           "filling": ("down", "synthetic")}, (79, 399)),
    },
    "home": {
        "coffee maker": (("Brewmaster", "Cafino", "Kettlo"),
                         {"capacity": ("1.2 l", "1.5 l", "1.8 l"), "type": ("drip", "espresso", "pod"),
                          "color": ("black", "stainless steel", "red")}, (29, 599)),
        "bed sheets": (("Dreamweave", "Linenhaus", "Softnest"),
                       {"size": ("single", "double", "queen", "king"), "material": ("cotton", "linen", "bamboo"),
                        "color": ("white", "sand", "grey", "sage")}, (19, 149)),
        "frying pan": (("Cheffield", "Ironware", "Panora"),
                       {"diameter": ("20 cm", "24 cm", "28 cm"), "material": ("cast iron", "stainless steel", "non-stick aluminium"),
                        "induction": ("induction-ready", "not for induction")}, (15, 129)),
        "vacuum cleaner": (("Dustra", "Cyclon", "Sweepo"),
                           {"type": ("cordless stick", "robot", "canister"), "power": ("150W", "400W", "700W"),
                            "color": ("grey", "white", "purple")}, (89, 699)),
        "desk lamp": (("Lumo", "Brightway", "Nordline"),
                      {"color": ("black", "white", "brass"), "bulb": ("LED", "E27 socket"),
                       "feature": ("dimmable", "usb port", "touch control")}, (15, 119)),
    },
    "beauty": {
        "shampoo": (("Silkroot", "Purelle", "Aquaviva"),
                    {"volume": ("250 ml", "400 ml", "1 l"), "hair type": ("dry", "oily", "curly", "colour-treated"),
                     "scent": ("unscented", "citrus", "coconut")}, (3, 29)),
        "face cream": (("Purelle", "Dermalys", "Botanica"),
                       {"volume": ("30 ml", "50 ml"), "skin type": ("dry", "sensitive", "combination"),
                        "spf": ("no SPF", "SPF 15", "SPF 30")}, (8, 79)),
        "perfume": (("Maison Vey", "Solenne", "Aquaviva"),
                    {"volume": ("30 ml", "50 ml", "100 ml"), "family": ("floral", "woody", "fresh", "oriental")}, (25, 180)),
    },
    "grocery": {
        "coffee beans": (("Cafino", "Altura", "Roastery 9"),
                         {"weight": ("250 g", "500 g", "1 kg"), "roast": ("light", "medium", "dark"),
                          "origin": ("Colombia", "Ethiopia", "Brazil", "blend")}, (5, 39)),
        "olive oil": (("Oliveto", "Terra Sol", "Kalamos"),
                      {"volume": ("500 ml", "750 ml", "1 l"), "grade": ("extra virgin", "virgin")}, (6, 35)),
        "green tea": (("Leafline", "Tenzo", "Matchaya"),
                      {"count": ("20 bags", "50 bags", "100 g loose"), "flavour": ("plain", "jasmine", "mint")}, (3, 25)),
    },
    "sports": {
        "yoga mat": (("Zenflex", "Groundup", "Asana Pro"),
                     {"thickness": ("4 mm", "6 mm", "10 mm"), "material": ("TPE", "natural rubber", "PVC"),
                      "color": ("purple", "teal", "black")}, (15, 99)),
        "running shoes": (("Stridex", "Pacera", "Trailon"),
                          {"size": ("38", "40", "42", "44", "46"), "terrain": ("road", "trail"),
                           "color": ("neon yellow", "black", "blue")}, (59, 219)),
        "dumbbells": (("Ironfit", "Gymcore"),
                      {"weight": ("2 kg", "5 kg", "10 kg", "adjustable 2-24 kg"), "material": ("neoprene", "cast iron", "rubber")}, (15, 349)),
        "bicycle helmet": (("Cranio", "Velosafe"),
                           {"size": ("S", "M", "L"), "color": ("white", "matte black", "orange"),
                            "type": ("road", "mountain", "urban")}, (29, 199)),
    },
    "toys": {
        "building blocks": (("Brickly", "Konstrukt"),
                            {"pieces": ("250 pieces", "500 pieces", "1200 pieces"), "age": ("4+", "8+", "12+"),
                             "theme": ("space", "city", "castle")}, (15, 149)),
        "board game": (("Tablewise", "Meeple & Co"),
                       {"players": ("2 players", "2-4 players", "3-6 players"), "age": ("8+", "10+", "14+"),
                        "duration": ("30 min", "60 min", "90 min")}, (19, 69)),
        "plush toy": (("Cuddlo", "Snugglies"),
                      {"animal": ("bear", "rabbit", "dinosaur", "unicorn"), "height": ("20 cm", "35 cm", "60 cm")}, (9, 49)),
    },
    "pets": {
        "dog food": (("Pawfect", "Wildtail", "Kibblo"),
                     {"weight": ("2 kg", "7 kg", "12 kg"), "flavour": ("chicken", "salmon", "lamb", "beef"),
                      "life stage": ("puppy", "adult", "senior")}, (12, 79)),
        "cat litter": (("Litterly", "Purrfect", "Kibblo"),
                       {"weight": ("5 l", "10 l", "20 l"), "type": ("clumping", "silica", "wood pellets")}, (6, 35)),
        "dog leash": (("Pawfect", "Trailtail"),
                      {"length": ("1.2 m", "2 m", "5 m retractable"), "color": ("red", "black", "reflective green")}, (8, 45)),
    },
}


# product type -> its department
DEPARTMENT_OF: dict[str, str] = {t: department for department, types in CATALOGUE.items() for t in types}
# brand -> the departments it sells in (some brands sell in two, e.g. Stridex: sneakers and running shoes)
BRAND_DEPARTMENTS: dict[str, tuple[str, ...]] = {}
for _department, _types in CATALOGUE.items():
    for _brands, _, _ in _types.values():
        for _brand in _brands:
            if _department not in BRAND_DEPARTMENTS.get(_brand, ()):
                BRAND_DEPARTMENTS[_brand] = (*BRAND_DEPARTMENTS.get(_brand, ()), _department)


@dataclass(frozen=True)
class Product:
    sku: str
    department: str
    product_type: str
    brand: str
    attributes: dict[str, str] = field(hash=False)
    price: float
    model: str

    @property
    def title(self) -> str:
        """The canonical catalogue title: brand, model, type, then attribute values."""
        values = ", ".join(self.attributes.values())
        return f"{self.brand} {self.model} {self.product_type.title()} - {values}"


@dataclass(frozen=True)
class World:
    products: tuple[Product, ...]

    @property
    def product_types(self) -> tuple[str, ...]:
        return tuple(t for types in CATALOGUE.values() for t in types)

    def of_type(self, product_type: str) -> tuple[Product, ...]:
        return tuple(p for p in self.products if p.product_type == product_type)

    def in_department(self, department: str) -> tuple[Product, ...]:
        return tuple(p for p in self.products if p.department == department)


MODEL_SYLLABLES = ("Aero", "Nova", "Pro", "Flex", "Max", "Lite", "Prime", "Edge", "Core", "Air", "One", "Plus")


def random_product(rng: random.Random, product_type: str) -> Product:
    """A new product of `product_type`: a brand, model name, attribute values and price drawn from the catalogue."""
    department = DEPARTMENT_OF[product_type]
    brands, attribute_choices, (low, high) = CATALOGUE[department][product_type]
    attributes = {name: rng.choice(values) for name, values in attribute_choices.items()}
    model = f"{rng.choice(MODEL_SYLLABLES)} {rng.randint(1, 9)}{rng.choice(('', '0', '00', 'X', 'S'))}"
    price = round(rng.uniform(low, high), 0) - 0.01
    sku = f"{department[:3].upper()}-{rng.randint(10000, 99999)}"
    return Product(sku, department, product_type, rng.choice(brands), attributes, price, model)


@lru_cache(maxsize=8)
def build_world(seed: int = 0, products_per_type: int = 12) -> World:
    """The catalogue for `seed`: `products_per_type` products of every product type, same seed -> same world."""
    rng = random.Random(f"world:{seed}")
    return World(tuple(random_product(rng, t) for t in DEPARTMENT_OF for _ in range(products_per_type)))
