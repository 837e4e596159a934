"""The conversation rules the nodes share: the latest question, who answered last, follow-ups.

Each rule has this one owner: the router, the retriever and the evals all read them from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from core.domain import Reply, RouteQuery, Specialist, as_specialist
from core.text import fold, words

# A message this short (in words) may be a follow-up of the previous turn ("et pour le délai ?").
FOLLOW_UP_MAX_WORDS = 8
# A reply longer than this (in words) says something of its own: the classifier reads it.
REPLY_MAX_WORDS = 30

# The rules below read folded text (lower case, no accents). A reaction starts with one of these
# words, and what follows asks nothing new (see _NEW_ASK).
_ACKNOWLEDGEMENT = re.compile(
    r"^\W*(merci\w*|thanks?|thx|ty|ok+|okay|oki|dac|d.accord|super|top|parfait\w*|genial\w*"
    r"|nickel|cool|excellent\w*|impeccable|compris|entendu|noted?|great|perfect|awesome|nice"
    r"|ca marche|ca roule|trop bien|tres bien|c.est (bon|clair|note|parfait|top|super|genial)"
    r"|je note|bien recu|bravo|yay|waouh|wow)\b"
)
_ONLY_SYMBOLS = re.compile(r"^[\W_]+$")
_YES_NO = re.compile(
    r"^\W*((ah|oh|alors|bah|ben|eh bien|euh|hmm)\W+)?"
    r"(oui|ouais|ouai|yes|yep|yup|yeah|si|carrement|volontiers|avec plaisir|je veux bien"
    r"|vas[- ]?y|allez[- ]?y|go|let.s go|ok (vas|go|pour)|d.accord pour|non|nan|no|nope"
    r"|pas (besoin|la peine|pour l.instant|maintenant)|surtout pas|plutot (pas|non|oui))\b"
)
# Edits of the answer just given: shorter, longer, more of them, another language or tone.
_EDIT = re.compile(
    r"\b(plus|moins) (court|courte|long|longue|simple\w*|pro|professionnel\w*|fun|drole"
    r"|chaleureu\w*|dynamique|percutant\w*|formel\w*|decontract\w*|detaill\w*|concis\w*|punchy"
    r"|leger\w*|sobre|rythm\w*|commercial\w*|vendeu\w*|serieu\w*|familier\w*|cash|direct"
    r"|d.energie|de details|d.emojis?|de hashtags?|d.exemples?)\b"
    r"|\b(\d+|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|quelques) (de plus|autres?)\b"
    r"|\ben (anglais|espagnol|francais|allemand|italien|portugais|neerlandais)\b"
    r"|\bin (english|french|spanish|german|italian)\b"
    r"|\b(reformule|raccourci|rallonge)\w*|\b(tutoie|vouvoie|tutoyer|vouvoyer)\b"
    r"|\b(sans|avec (des |un peu d.)?|ajoute (des )?|enleve (les )?)"
    r"(emojis?|emoticones?|hashtags?)\b"
    r"|\b(la meme|le meme)\b.{0,30}\b(version|linkedin|tiktok|insta\w*|facebook|stor(y|ies))\b"
    r"|\bsous forme de (liste|check.?list|tableau|points)\b"
    r"|\b(refai[st]|refaire|redonne|remets?)\b.{0,20}\b(le|la|les|l|moi|en|version)\b"
)
# The same, only in a short message: in a longer one they start a new request ("un exemple de
# séquence pour une boutique ?", "résume-moi les avantages de Brevo").
_SHORT_EDIT = re.compile(
    r"^\W*(d.)?autres?\b|^\W*encore\b|\bune autre (version|idee|proposition)\b"
    r"|\b(un|des) exemples?\b|\b(resume|simplifie|developpe|detaille|traduis|corrige)\w*"
    r"|\bexplique.{0,20}\b(simplement|simple|comme si)\b|\bversion (plus|sans|avec|courte|longue)\b"
    r"|^\W*(shorter|longer|more|another one|simpler|make it \w+)\b"
)
# Dissatisfaction with the answer just given ("c'est nul", "ça sert à rien", "tu comprends
# rien"): a complaint, for a person. Only as a reaction to an answer: in a first message or a
# question ("mes posts c'est nul, je fais comment ?") it describes the user's own work.
_DISSATISFIED = re.compile(
    r"\b(c.est|c|ca|cest|t.es|tu es|vous etes|votre truc|ton truc|ta reponse|votre reponse)"
    r" (vraiment |trop |completement |super |grave |franchement )?"
    r"(nul|nulle|nuls|naze|pourri\w*|n.importe quoi|nimp|inutile\w*|a cote de la plaque)\b"
    r"|^\W*(nul|nulle|naze|pourri|n.importe quoi|nimp|inutile|useless|rubbish)"
    r"( (ton|votre|ce) truc| (ta|votre|cette) reponse)?\W*$"
    r"|\b(ca|ton truc|votre truc|ta reponse|votre reponse|tes reponses|vos reponses)"
    r" (ne )?(me )?sert (vraiment |strictement )?a rien\b(?! d)"
    r"|\b(tu|vous) (ne )?(comprends|comprenez) (vraiment )?rien\b"
    r"|\b(this|that|it) (is|was) (useless|rubbish|garbage|terrible)\b"
)
# What turns a reaction into a new request: a question, a request verb, a change of subject.
_NEW_ASK = re.compile(
    r"\?|\b(comment|pourquoi|combien|quel|quelle|quels|quelles|est.ce|c.est quoi|ou est"
    r"|peux|pourrais|pouvez|pourriez|peut|faudrait|faut|il me faut|besoin|j.aimerais"
    r"|je voudrais|je veux(?! bien)|voudrais|sinon|au fait|par contre|autre chose|maintenant"
    r"|aussi|mais|how|what|why|can you|could you|also|btw|by the way|but)\b"
)


def latest_user_message(messages: Sequence[AnyMessage]) -> str:
    """The text of the last human message (the one this turn answers)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def previous_specialist(messages: Sequence[AnyMessage]) -> Specialist | None:
    """The last specialist who answered in this conversation (escalations do not count)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and (specialist := as_specialist(message.name)):
            return specialist
    return None


def is_follow_up(messages: Sequence[AnyMessage], max_words: int = FOLLOW_UP_MAX_WORDS) -> bool:
    """A short message after an earlier question: it leans on that question's context."""
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    return len(humans) > 1 and len(words(humans[-1].text)) <= max_words


def reply_kind(messages: Sequence[AnyMessage]) -> Reply | None:
    """How the latest message reacts to the specialist's answer just before it, if it does.

    Thanks, a yes or a no, and edits of that answer ("plus court", "5 de plus", "en anglais")
    carry no topic of their own: they belong to whoever wrote the answer. Dissatisfaction with
    it ("c'est nul", "ça sert à rien") is a complaint. A short message with
    no question after an answer that asked one ("Vous utilisez quel outil ?" - "calendly") is an
    answer to it. Anything that asks something new is not a reply.
    """
    if len(messages) < 2 or not isinstance(messages[-1], HumanMessage):
        return None
    answer = messages[-2]
    if not isinstance(answer, AIMessage) or as_specialist(answer.name) is None:
        return None
    text = fold(messages[-1].text).strip()
    count = len(words(text))
    if count > REPLY_MAX_WORDS:
        return None
    if _EDIT.search(text) or (count <= FOLLOW_UP_MAX_WORDS and _SHORT_EDIT.search(text)):
        return "edit"
    if not text or _ONLY_SYMBOLS.match(text):
        return "acknowledgement"
    if _NEW_ASK.search(text):
        return None
    if _DISSATISFIED.search(text):
        return "complaint"
    if _YES_NO.match(text):
        return "yes_no"
    if _ACKNOWLEDGEMENT.match(text):
        return "acknowledgement"
    if "?" in answer.text and count <= FOLLOW_UP_MAX_WORDS:
        return "answer"
    return None


def route_query(messages: Sequence[AnyMessage], max_words: int = FOLLOW_UP_MAX_WORDS) -> RouteQuery:
    """What the router decides on for the conversation's latest message."""
    follow_up = is_follow_up(messages, max_words)
    return RouteQuery(
        message=latest_user_message(messages),
        previous=previous_specialist(messages),
        follow_up=follow_up,
        history=messages[:-1],
        reply=reply_kind(messages),
        in_context=search_text(messages, max_words) if follow_up else "",
    )


def search_text(messages: Sequence[AnyMessage], max_words: int = FOLLOW_UP_MAX_WORDS) -> str:
    """What to search for: the question, plus the previous question when it is a follow-up.

    "Et combien d'emails ?" means nothing alone; glued to "Comment automatiser mes emails de
    bienvenue ?" it finds the right passage.
    """
    humans = [m.text for m in messages if isinstance(m, HumanMessage)]
    if not humans:
        return ""
    if is_follow_up(messages, max_words):
        return f"{humans[-2]} {humans[-1]}"
    return humans[-1]
