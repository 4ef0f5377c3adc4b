"""Who says a cue: only what subtitle conventions mark as a speaker, never a clause of a sentence.

The conventions (each a rule that can be switched off):
- `voice`: a WebVTT voice span, `<v Anna>` (authoritative: no name check).
- `dash`: a dialogue line `- ANNA: ...` (each line of a cue may carry one).
- `label`: a cue that starts with a short, name-like label and a colon, `Anna: ...`.
- `bracket`: a cue that starts with `[Anna]` followed by speech (SDH off-screen speaker style).

Name-like: one to three words, each capitalised or in capitals (lower-case particles such as
"de" or "van" between them), no digit first, not starting with an article, a pronoun or a word
that heads a sentence label ("Note:", "Règle numéro un:", "J'ai dit:", "Das Problem:" are
sentences). A bracketed label must also not be a sound word ("[Laughs] Hi" is a description).
Scripts without letter case (Chinese, Japanese) give no label speakers: there a name cannot be
told from a word; use WebVTT voices for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

SpeakerRule = Literal["voice", "dash", "label", "bracket"]
ALL_SPEAKER_RULES: frozenset[SpeakerRule] = frozenset(get_args(SpeakerRule))
NO_SPEAKER_RULES: frozenset[SpeakerRule] = frozenset()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MAX_LABEL = 32
_PARTICLES = _words("de del della der den di da das do dos du van von la le bin ibn al y e")
# First words of labels that are sentences, not names (en, es, fr, de, it, pt), casefolded.
_NOT_A_NAME = _words(
    """
    the a an this that these those my your his her its our their i we you he she it they me
    note notes warning remember rule step question answer example chapter part subject attention
    caution important tip update breaking location time date here there now today so and but
    el la los las un una unos unas mi mis tu tus su sus nuestro yo tú él ella nosotros ustedes
    nota regla paso pregunta respuesta ejemplo capítulo atención ojo aviso importante esto eso
    le les une des mon ma mes ton ta son sa notre votre je il elle nous vous ils elles règle
    étape réponse exemple chapitre voilà ceci cela
    bueno mira oye escucha listen look okay ok well yes no sí si oui non ja nein allora ecco
    der die das ein eine mein meine dein sein seine ich du er sie es wir ihr regel hinweis
    achtung frage antwort beispiel kapitel schritt wichtig
    lo gli uno mio mia io lui lei noi regola domanda risposta esempio capitolo attenzione
    o os um uma meu minha eu ele ela nós regra atenção pergunta exemplo
    """
)
# Sound words that SDH files put in brackets ("[Laughs]", "[MUSIC PLAYING]"), casefolded.
_SOUND_WORDS = _words(
    """
    laughs laughing laughter chuckles giggles sighs sighing music applause cheering cheers
    screams screaming scream gasps gasping groans coughs coughing crying cries sobbing sobs
    whispers whispering whimpers thunder silence static doorbell phone ringing footsteps
    inaudible indistinct muffled knocking knock explosion gunshot gunshots beeping beep
    risas ríe ríen música aplausos suspira suspiros grita gritos gritan llora llanto tose
    susurra jadea rires rit rient musique applaudissements soupire soupir cris crie pleure
    tousse chuchote lachen lacht musik applaus seufzt schreit weint hustet flüstert
    risate ride ridono musica applausi sospira urla piange tossisce sussurra
    risos aplausos suspira grito chora tosse sussurra
    """
)

_VOICE_RE = re.compile(r"<v(?:\.[^\s>]+)*[ \t]+([^>]+)>")
_LABEL_RE = re.compile(r"^\s*(?P<label>[^\W\d_][^:\n]{0,40}?)\s?:\s+(?P<rest>\S.*)$", re.DOTALL)
_DASH_RE = re.compile(
    r"^(?P<dash>\s*[-‐–—]\s*)(?:(?P<label>[^\W\d_][^:\n]{0,40}?)\s?:|\[(?P<bracketed>[^\]\n]{1,40})\])\s+(?P<rest>\S.*)$"
)
# Reported speech after the colon ('Digo: "Le doy..."', 'He said: «No»') is a sentence, not a label.
_QUOTES = "\"'“”„«»‘’‹›「『"
_BRACKET_RE = re.compile(r"^\s*\[(?P<label>[^\]\n]{1,40})\]\s*(?P<rest>\S.*)$", re.DOTALL)
_WORD_RE = re.compile(r"[^\W\d_](?:[^\W_]|['’.\-])*\.?|#?\d{1,2}")


def parse_speaker_rules(text: str) -> frozenset[SpeakerRule]:
    """'voice,dash' -> those rules; 'none' -> no rule; ValueError naming the allowed ones."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names == ["none"]:
        return NO_SPEAKER_RULES
    allowed = sorted(ALL_SPEAKER_RULES)
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(
            f"unknown speaker rule(s) {', '.join(unknown) or repr(text)}: use a comma list of "
            f"{', '.join(allowed)}, or none"
        )
    return frozenset(n for n in ALL_SPEAKER_RULES if n in names)


def _is_name_word(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return False
    if not letters[0].isupper():
        return False
    # "O'Brien", "Jean-Luc", "McKay" pass; "J'ai" (an elision before a lower-case word) does not.
    for sep in ("'", "’"):
        head, _, tail = word.partition(sep)
        if tail and len(head) == 1 and not tail[0].isupper():
            return False
    return True


def is_name_like(label: str, *, bracketed: bool = False) -> bool:
    """Whether `label` reads as a speaker's name (see the module docstring)."""
    label = label.strip()
    if not label or len(label) > _MAX_LABEL or any(c in label for c in ',;!?¿¡"«»“”'):
        return False
    words = label.split()
    if not 1 <= len(words) <= 4 or not all(_WORD_RE.fullmatch(w) for w in words):
        return False
    if words[0].casefold().strip(".") in _NOT_A_NAME:
        return False
    if bracketed and any(w.casefold().strip(".") in _SOUND_WORDS for w in words):
        return False
    named = 0
    for i, word in enumerate(words):
        if word.lstrip("#").isdigit():
            if i == 0 or i != len(words) - 1:  # "Guard 2" yes, "2 Guard" no
                return False
            continue
        if word.casefold() in _PARTICLES and 0 < i < len(words) - 1:
            continue
        if not _is_name_word(word):
            return False
        named += 1
    return 1 <= named <= 3


@dataclass(frozen=True)
class SpeakerSplit:
    """A cue's text without its speaker marks, and the speakers they name (in order, each once)."""

    text: str
    names: list[str] = field(default_factory=list)

    @property
    def speaker(self) -> str | None:
        """The cue's one speaker; None when it names none, or several (a dialogue cue)."""
        return self.names[0] if len(self.names) == 1 else None


def voices_of(raw_text: str) -> list[str]:
    """The WebVTT voice names of a cue's raw text (`<v Anna>`, `<v.loud Bob>`), each once."""
    return list(dict.fromkeys(m.group(1).strip() for m in _VOICE_RE.finditer(raw_text) if m.group(1).strip()))


def split_speakers(
    text: str, rules: Iterable[SpeakerRule] = ALL_SPEAKER_RULES, *, voices: Iterable[str] = ()
) -> SpeakerSplit:
    """Take the speaker marks the `rules` allow off `text` (tags already stripped)."""
    active = frozenset(rules)
    voice_names = list(dict.fromkeys(voices)) if "voice" in active else []
    if voice_names:
        return SpeakerSplit(text.strip(), voice_names)
    names: list[str] = []
    body = text.strip()
    if "bracket" in active:
        match = _BRACKET_RE.match(body)
        if match and is_name_like(match["label"], bracketed=True):
            names.append(match["label"].strip())
            body = match["rest"].strip()
    if not names and "label" in active:
        match = _LABEL_RE.match(body)
        if match and match["rest"][0] not in _QUOTES and is_name_like(match["label"]):
            names.append(match["label"].strip())
            body = match["rest"].strip()
    if "dash" in active:
        lines = []
        for line in body.split("\n"):
            match = _DASH_RE.match(line)
            label = match and (match["label"] or match["bracketed"])
            if (
                match
                and label
                and match["rest"][0] not in _QUOTES
                and is_name_like(label, bracketed=not match["label"])
            ):
                names.append(label.strip())
                line = match["dash"] + match["rest"].strip()
            lines.append(line)
        body = "\n".join(lines)
        if len(names) == 1 and body.count("\n") == 0:
            body = re.sub(r"^\s*[-‐–—]\s*", "", body)  # "- ANNA: Hola" alone is Anna's "Hola"
    return SpeakerSplit(body.strip(), list(dict.fromkeys(names)))
