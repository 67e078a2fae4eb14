"""Word lists behind the synthetic pins: categories, their subjects and tags, and placeholders.

Names and countries come from Faker's en_US data (the same lists the original data set was drawn
from), read once as plain lists, so generation never calls Faker per row and stays fast.
"""

from __future__ import annotations

from itertools import accumulate

from faker.providers.address.en_US import Provider as AddressProvider
from faker.providers.person.en_US import Provider as PersonProvider

# Data contract §1: the 13 categories, with rough shares of the original data (weights, not exact).
CATEGORY_WEIGHTS: dict[str, float] = {
    "art": 8.0,
    "beauty": 6.5,
    "christmas": 9.0,
    "diy-and-crafts": 8.5,
    "education": 6.5,
    "event-planning": 7.0,
    "finance": 6.5,
    "home-decor": 8.5,
    "mens-fashion": 8.0,
    "quotes": 7.5,
    "tattoos": 8.0,
    "travel": 8.5,
    "vehicles": 7.5,
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_WEIGHTS)

# Data contract §1 placeholders, each in its own column.
NO_TITLE = "No Title Data Available"
NO_DESCRIPTION = "No description available"
NO_DESCRIPTION_STORY = "No description available Story format"
USER_INFO_ERROR = "User Info Error"
NO_TAGS = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"
IMAGE_SRC_ERROR = "Image src error."
SAVE_LOCATION_PREFIX = "Local save in /data/"

IMAGE = "image"
VIDEO = "video"
STORY_PAGE = "multi-video(story page format)"

# Per category: subjects a pin is about, words that qualify them, and tag phrases.
SUBJECTS: dict[str, tuple[str, ...]] = {
    "art": (
        "Watercolor Painting",
        "Abstract Art",
        "Pencil Drawing",
        "Acrylic Pour",
        "Sketchbook",
        "Canvas Art",
        "Portrait",
        "Landscape Painting",
        "Ink Illustration",
        "Mural",
    ),
    "beauty": (
        "Makeup Look",
        "Skincare Routine",
        "Nail Art",
        "Hairstyle",
        "Eyeliner",
        "Lipstick Shade",
        "Braids",
        "Face Mask",
        "Eyebrow Shape",
        "Curly Hair",
    ),
    "christmas": (
        "Christmas Tree",
        "Advent Calendar",
        "Christmas Wreath",
        "Gingerbread House",
        "Stocking",
        "Holiday Table",
        "Christmas Cookies",
        "Ornament",
        "Nativity Scene",
        "Christmas Village",
    ),
    "diy-and-crafts": (
        "Mason Jar",
        "Paper Flowers",
        "Macrame Wall Hanging",
        "Candle",
        "Felt Toy",
        "Wood Sign",
        "Resin Coaster",
        "Crochet Blanket",
        "Soap",
        "Pallet Shelf",
    ),
    "education": (
        "Lesson Plan",
        "Classroom Display",
        "Math Worksheet",
        "Reading Corner",
        "Science Experiment",
        "Phonics Game",
        "Study Schedule",
        "Anchor Chart",
        "Homeschool Routine",
        "Spelling Activity",
    ),
    "event-planning": (
        "Wedding Reception",
        "Birthday Party",
        "Baby Shower",
        "Table Setting",
        "Balloon Arch",
        "Dessert Table",
        "Bridal Shower",
        "Party Favor",
        "Photo Booth",
        "Garden Party",
    ),
    "finance": (
        "Budget Planner",
        "Savings Challenge",
        "Debt Payoff Plan",
        "Side Hustle",
        "Emergency Fund",
        "Retirement Plan",
        "Grocery Budget",
        "Money Tracker",
        "Passive Income",
        "Investment Portfolio",
    ),
    "home-decor": (
        "Living Room",
        "Bedroom",
        "Gallery Wall",
        "Kitchen Island",
        "Reading Nook",
        "Entryway",
        "Bathroom",
        "Farmhouse Table",
        "Bookshelf",
        "Patio",
    ),
    "mens-fashion": (
        "Casual Outfit",
        "Suit",
        "Leather Jacket",
        "Sneakers",
        "Denim Look",
        "Winter Coat",
        "Beard Style",
        "Watch",
        "Chelsea Boots",
        "Streetwear Fit",
    ),
    "quotes": (
        "Life Quote",
        "Motivational Quote",
        "Love Quote",
        "Friendship Quote",
        "Inspirational Saying",
        "Positive Affirmation",
        "Funny Quote",
        "Wisdom Quote",
        "Morning Mantra",
        "Strength Quote",
    ),
    "tattoos": (
        "Sleeve Tattoo",
        "Minimalist Tattoo",
        "Floral Tattoo",
        "Script Tattoo",
        "Geometric Tattoo",
        "Back Piece",
        "Wrist Tattoo",
        "Mandala Tattoo",
        "Fine Line Tattoo",
        "Animal Tattoo",
    ),
    "travel": (
        "Road Trip",
        "Beach Getaway",
        "City Guide",
        "Packing List",
        "Mountain Hike",
        "Island Escape",
        "Travel Itinerary",
        "Hidden Gem",
        "Backpacking Route",
        "Weekend Break",
    ),
    "vehicles": (
        "Classic Car",
        "Motorcycle",
        "Camper Van",
        "Pickup Truck",
        "Sports Car",
        "Off Road Build",
        "Vintage Bike",
        "Muscle Car",
        "Electric Car",
        "Hot Rod",
    ),
}

QUALIFIERS: tuple[str, ...] = (
    "Easy",
    "Simple",
    "Beautiful",
    "Modern",
    "Vintage",
    "Cozy",
    "Minimalist",
    "Creative",
    "Budget",
    "Rustic",
    "Elegant",
    "Colorful",
    "Classic",
    "Boho",
    "Stunning",
    "Cute",
    "Quick",
    "Unique",
    "Timeless",
    "Bold",
)

TITLE_TEMPLATES: tuple[str, ...] = (
    "{q} {s} Ideas",
    "{n} {q} {s} Ideas You Will Love",
    "How to Make a {q} {s}",
    "{s} Inspiration | {q} and Fun",
    "The Best {q} {s} for {y}",
    "{q} {s}",
    "{n} Ways to Style a {s}",
    "My {q} {s} Makeover",
    "{s}: a {q} Guide for Beginners",
    "DIY {q} {s} Tutorial",
)

DESCRIPTION_SENTENCES: tuple[str, ...] = (
    "Looking for {q} {s} ideas? This one is {a}.",
    "Save this pin for your next {s} project.",
    "A {q} {s} that anyone can try at home.",
    "We rounded up {n} of our favourite {s} ideas, from {q} to {q2}.",
    "Click through for the full step by step guide.",
    "Perfect for beginners and pros alike.",
    "This {q} {s} is {a} and takes less than an hour.",
    "Get inspired with these {q} {s} looks for {y}.",
    "Everything you need to know about the {s}, in one place.",
    "Follow for more {c} ideas!",
)

ADJECTIVES: tuple[str, ...] = (
    "so easy",
    "budget friendly",
    "absolutely gorgeous",
    "super cute",
    "surprisingly simple",
    "a total game changer",
    "perfect for small spaces",
    "kid friendly",
)

TAG_MODIFIERS: tuple[str, ...] = (
    "Ideas",
    "Inspiration",
    "Diy",
    "Tutorial",
    "Design",
    "Aesthetic",
    "Tips",
    "Projects",
    "For Beginners",
    "Art",
)

POSTER_SUFFIXES: tuple[str, ...] = (
    "Studio",
    "Designs",
    "Blog",
    "Co.",
    "Magazine",
    "Daily",
    "Lab",
    "Collective",
    "Shop",
    "& Co",
    "Journal",
    "Life",
)

QUALIFIERS_LOWER: tuple[str, ...] = tuple(word.lower() for word in QUALIFIERS)
CATEGORY_WORDS: dict[str, str] = {category: category.replace("-", " ") for category in CATEGORIES}

# Faker's weighted name lists and its country list (includes the long names of data contract §1).
FIRST_NAMES: tuple[str, ...] = tuple(PersonProvider.first_names)
FIRST_NAME_CUM_WEIGHTS: tuple[float, ...] = tuple(
    accumulate(float(w) for w in PersonProvider.first_names.values())
)
LAST_NAMES: tuple[str, ...] = tuple(PersonProvider.last_names)
LAST_NAME_CUM_WEIGHTS: tuple[float, ...] = tuple(
    accumulate(float(w) for w in PersonProvider.last_names.values())
)
COUNTRIES: tuple[str, ...] = tuple(AddressProvider.countries)
