from core.text import fold, split_sentences, tokens_of, words


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


def test_tokens_rebuild_the_text_exactly() -> None:
    text = "Bonjour,  voici\nla réponse [1]."
    tokens = tokens_of(text)
    assert tokens == ["Bonjour,  ", "voici\n", "la ", "réponse ", "[1]."]
    assert "".join(tokens) == text
