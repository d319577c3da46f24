"""Baselines: the translation memory returns the nearest training source's target; word by word looks up
each word."""

from rnnkit.data.pairs import Pairs
from rnnkit.tasks.translate_baselines import TranslationMemory, WordByWord, word_dictionary


def test_translation_memory_returns_the_most_similar_sources_target():
    train = Pairs(["Das Haus ist alt.", "Der Hund bellt laut.", "Wir gehen nach Hause."],
                  ["The house is old.", "The dog barks loudly.", "We are going home."])  # fmt: skip
    memory = TranslationMemory(train)
    assert memory.translate(["Der Hund bellt.", "Das Haus ist sehr alt."]) == ["The dog barks loudly.",
                                                                                "The house is old."]  # fmt: skip


def test_word_by_word_with_the_dictionary_entries():
    phrases = [("Hund", "dog"), ("bellt", "barks"), ("der", "the"), ("Hund", "hound"), ("laufen", "to run"),
               ("der große Hund", "the big dog")]  # fmt: skip
    dictionary = word_dictionary(phrases)
    assert dictionary == {"hund": "dog", "bellt": "barks", "der": "the", "laufen": "run"}  # first entry wins
    assert WordByWord(dictionary).translate(["Der Hund bellt, laufen!"]) == ["The dog barks, run!"]
    assert word_dictionary(phrases, reverse=True)["run"] == "laufen"
