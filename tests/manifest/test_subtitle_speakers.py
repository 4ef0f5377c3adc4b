"""Speakers come only from subtitle conventions; a clause of a sentence before a colon is never one."""

from __future__ import annotations

import pytest

from prefect_lipsync.manifest.subtitle_speakers import (
    ALL_SPEAKER_RULES,
    NO_SPEAKER_RULES,
    parse_speaker_rules,
    split_speakers,
    voices_of,
)
from prefect_lipsync.manifest.subtitle_text import speech_of, strip_tags


@pytest.mark.parametrize(
    ("text", "speaker", "rest"),
    [
        ("ANNA: Hola, ¿qué tal?", "ANNA", "Hola, ¿qué tal?"),
        ("Bob Smith: Hi there", "Bob Smith", "Hi there"),
        ("Dr. Müller: Guten Tag.", "Dr. Müller", "Guten Tag."),
        ("Jean-Luc : Bonjour.", "Jean-Luc", "Bonjour."),  # French typography: a space before the colon
        ("O'Brien: Right.", "O'Brien", "Right."),
        ("María José: Vale.", "María José", "Vale."),
        ("GUARD 2: Halt!", "GUARD 2", "Halt!"),
        ("Ludwig van Beethoven: Da-da-da-dum.", "Ludwig van Beethoven", "Da-da-da-dum."),
        ("[Anna] Hola", "Anna", "Hola"),
        ("- MARIE: Bonjour.", "MARIE", "Bonjour."),
    ],
)
def test_name_like_labels_are_speakers(text: str, speaker: str, rest: str) -> None:
    found = split_speakers(text)
    assert (found.speaker, found.text) == (speaker, rest)


@pytest.mark.parametrize(
    "text",
    [
        "Règle numéro un: pas touche.",
        "J'ai dit: ça suffit!",
        "Regla número uno: no tocar.",
        "Le problème: personne ne sait.",
        "Das Problem: wir haben keine Zeit.",
        "Mein Vater sagte: Nein.",
        "Note: this is a sentence.",
        "Remember: we leave at 10:30.",
        "The rule is simple: no phones.",
        "Il a dit : non.",
        "Attenzione: pavimento bagnato.",
        "Eu disse: não.",
        "10:30 is the time",
        "Sí: claro que sí.",
        "Oye, tú: ven aquí.",
        "李明：今天天气很好。",  # no letter case: not told apart from a word
        "[laughs] Okay.",
        "[Laughs] Okay.",
        "[MUSIC PLAYING] Hello?",
        "[ríen emocionadas] ¡Sí!",
        "Visit https://example.com: now",
        'Digo: "Le doy un abrazo al estirado".',  # reported speech after the colon
        "Il a crié : « Non ! »",
    ],
)
def test_sentences_with_a_colon_and_sound_descriptions_name_no_speaker(text: str) -> None:
    assert split_speakers(text).speaker is None


def test_a_dialogue_cue_of_two_speakers_names_both_and_takes_neither() -> None:
    found = split_speakers("- PIERRE: Salut.\n- MARIE: Bonjour.")
    assert found.names == ["PIERRE", "MARIE"] and found.speaker is None
    assert found.text == "- Salut.\n- Bonjour."


def test_a_dialogue_line_may_name_its_speaker_in_brackets() -> None:
    found = split_speakers("- [Carlota] Vamos a brindar por Marga\n- [risas]")
    assert found.names == ["Carlota"] and found.text.startswith("- Vamos a brindar")
    assert split_speakers("- [Laughs] Okay").names == []


def test_webvtt_voices_win_and_can_be_switched_off() -> None:
    raw = "<v.loud Anna>Règle numéro un: pas touche.</v>"
    assert voices_of(raw) == ["Anna"]
    assert split_speakers(strip_tags(raw), voices=voices_of(raw)).speaker == "Anna"
    assert split_speakers(strip_tags(raw), {"label"}, voices=voices_of(raw)).speaker is None


def test_rules_are_configurable() -> None:
    assert split_speakers("ANNA: Hola", NO_SPEAKER_RULES).text == "ANNA: Hola"
    assert split_speakers("ANNA: Hola", {"dash"}).speaker is None
    assert split_speakers("- ANNA: Hola", {"dash"}).speaker == "ANNA"
    assert split_speakers("[Anna] Hola", {"label"}).speaker is None
    assert parse_speaker_rules("voice, dash") == {"voice", "dash"}
    assert parse_speaker_rules("none") == NO_SPEAKER_RULES
    assert parse_speaker_rules("bracket,label,dash,voice") == ALL_SPEAKER_RULES
    with pytest.raises(ValueError, match="unknown speaker rule"):
        parse_speaker_rules("names")


@pytest.mark.parametrize(
    ("text", "speech", "non_speech"),
    [
        ("[ríen emocionadas]", "", ["[ríen emocionadas]"]),
        ("(door slams)", "", ["(door slams)"]),
        ("♪ Frère Jacques ♪", "", ["♪ Frère Jacques ♪"]),
        ("♪♪", "", ["♪♪"]),
        ("（笑声）", "", ["（笑声）"]),
        ("- [gasps]\n- (sighs)", "", ["[gasps]", "(sighs)"]),
        ("(soupire) Où étiez-vous?", "Où étiez-vous?", ["(soupire)"]),
        ("Hola [ríe] amigos", "Hola amigos", ["[ríe]"]),
        ("Sin descripción", "Sin descripción", []),
    ],
)
def test_non_speech_is_taken_out_of_the_text(text: str, speech: str, non_speech: list[str]) -> None:
    got = speech_of(text)
    assert (got.text, got.non_speech) == (speech, non_speech)
    assert got.is_speech is bool(speech)


def test_markup_is_stripped() -> None:
    assert strip_tags("{\\an8}<i>Hola</i> <font color='red'>tú</font>") == "Hola tú"
