"""The toy vocabulary the Hugging Face tests build their tiny models and concept files from."""

CONCEPT_WORDS = [
    "oak", "pine", "elm", "tree", "dog", "cat", "wolf", "animal", "red", "blue", "green", "colour",
]  # fmt: skip
WORDS = [*CONCEPT_WORDS, "is", "a", "kind", "of", "the"]
