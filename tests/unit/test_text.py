from core.text import fold, phrases_of, split_sentences, tokens_of, words


def test_fold_strips_accents_and_case() -> None:
    assert fold("Réclamation À Noël") == "reclamation a noel"


def test_words_are_folded() -> None:
    assert words("Séquence d'emails !") == ["sequence", "d", "emails"]


def test_split_sentences_drops_headings_and_list_marks() -> None:
    text = "# Titre\n\n## Section\nPremière phrase. Deuxième phrase !\n- **Un point** de liste.\n1. Étape un."
    assert split_sentences(text) == [
        "Première phrase.",
        "Deuxième phrase !",
        "Un point de liste.",
        "Étape un.",
    ]


def test_phrases_rebuild_the_text_and_keep_words_whole() -> None:
    text = "Bonjour,  voici\nla réponse [1] avec une phrase assez longue pour être coupée en deux."
    phrases = phrases_of(text, max_chars=20)
    assert "".join(phrases) == text
    assert phrases[0] == "Bonjour,  voici\n"  # a line break ends a phrase
    words = tokens_of(text)
    # Each phrase is a run of whole words, and only the last may be shorter than the limit
    # without ending a line.
    assert sum(len(tokens_of(p)) for p in phrases) == len(words)
    for phrase in phrases[:-1]:
        assert phrase.endswith("\n") or len(phrase) >= 20
        assert len(phrase) < 20 + max(len(w) for w in words)
    assert phrases_of("") == []
    assert phrases_of("court") == ["court"]


def test_tokens_rebuild_the_text_exactly() -> None:
    text = "Bonjour,  voici\nla réponse [1]."
    tokens = tokens_of(text)
    assert tokens == ["Bonjour,  ", "voici\n", "la ", "réponse ", "[1]."]
    assert "".join(tokens) == text
