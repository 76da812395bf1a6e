"""Train / validation / test splits of processed clips, in one place.

A clip is any dict with ``"speaker"`` and ``"utt"`` (:func:`~coursekit.data.dataset.load_index`
gives them). Three rules, each deterministic (the same clips give the same split on every
machine and run):

* :func:`utterance_split`: per speaker, the clips sorted by utterance name, those at positions
  ``i % every == offset`` held out (every 5th: 2 of 10 sample utterances, 25 of GRID s1's 125);
* :func:`speaker_split`: whole speakers held out, named, or a fraction drawn by a stable hash
  of the speaker names (no speaker in two parts);
* :func:`hashed_utterance_split`: fractions of the clips drawn by a stable hash of
  ``"speaker/utt"``, so adding clips never moves the others (Audio2AU's validation clips).

:func:`make_split` combines the first two: the *test speakers* are kept out of training
entirely, and every 5th utterance of the other speakers is held out. Training
(:func:`coursekit.train.talker.split_for_training`, ``coursekit train``) and evaluation
(:func:`coursekit.evaluate.select_clips`, ``coursekit evaluate``) both call it, so they agree
on which clips were never trained on; its :class:`Split` ``test`` holds both kinds
(``heldout``: unseen utterances of training speakers; ``unseen``: the test speakers' clips).

:data:`SPLITS` names the presets of the command line: ``"utterance"`` (every 5th utterance,
plus any ``--test-speakers``) and ``"paper"`` (GRID's 27 training / 6 test speakers,
:data:`GRID_TEST_SPEAKERS`, no utterance held out).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

GRID_SPEAKERS = tuple(f"s{i}" for i in range(1, 35) if i != 21)
"""The 33 GRID speakers with videos: s1-s34 without s21 (whose videos are missing)."""

GRID_TEST_SPEAKERS = ("s11", "s13", "s14", "s15", "s24", "s28")
"""The paper's split of GRID: these 6 speakers are tested, the other 27 of
:data:`GRID_SPEAKERS` trained on. They are the 6 with the smallest stable hash at seed 0, i.e.
what ``speaker_split(clips of GRID_SPEAKERS, test=6 / 33, seed=0)`` draws; written out here so
that the split never moves."""

SPLITS = {
    "utterance": {"test_speakers": None, "holdout_every": 5},
    "paper": {"test_speakers": GRID_TEST_SPEAKERS, "holdout_every": 0},
}
"""Named :func:`make_split` settings (``--split`` of the command line)."""


@dataclass(frozen=True)
class Split:
    """Clips in three disjoint parts (lists of clip dicts).

    train: trained on. val: kept aside during training to choose epochs (may be empty).
    test: never trained on: the held-out utterances of training speakers and every clip of
    ``test_speakers``. test_speakers: the speakers kept out of training entirely.
    """

    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    test: list = field(default_factory=list)
    test_speakers: tuple = ()

    @property
    def heldout(self) -> list:
        """Test clips of training speakers (held-out utterances)."""
        return [c for c in self.test if c["speaker"] not in self.test_speakers]

    @property
    def unseen(self) -> list:
        """Test clips of the test speakers (voices and faces never trained on)."""
        return [c for c in self.test if c["speaker"] in self.test_speakers]

    def describe(self) -> str:
        """One line: how many clips and speakers each part has."""
        def part(clips):
            return f"{len(clips)} clips of {len({c['speaker'] for c in clips})} speakers"
        text = f"train {part(self.train)}"
        if self.val:
            text += f"; validation {part(self.val)}"
        text += f"; test: {len(self.heldout)} held-out utterances"
        if self.test_speakers:
            text += f", {len(self.unseen)} clips of test speakers {', '.join(self.test_speakers)}"
        return text


def clip_key(clip: dict) -> str:
    """``"speaker/utt"``: a clip's name in checkpoints and reports."""
    return f"{clip['speaker']}/{clip['utt']}"


def _sort_key(clip: dict) -> tuple[str, str]:
    return clip["speaker"], clip["utt"]


def unit_hash(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` (same on every machine and run)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def parse_speakers(spec) -> tuple[str, ...] | float | None:
    """Test speakers as given by a user: None or ``""`` (none), ``"s1,s2"`` or a list of
    names (a sorted tuple), or a fraction (a float)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return float(spec)
    names = spec.split(",") if isinstance(spec, str) else spec
    names = tuple(sorted({str(s).strip() for s in names if str(s).strip()}))
    return names or None


def pick_speakers(speakers, spec, seed: int = 0, what: str = "test") -> set[str]:
    """The speakers of ``speakers`` that ``spec`` names: None (none), names (each must be
    among ``speakers``), or a fraction in [0, 1) of them (at least one and never all when
    above 0): those with the smallest :func:`unit_hash` of their name at ``seed``."""
    speakers = sorted(set(speakers))
    spec = parse_speakers(spec)
    if spec is None:
        return set()
    if not isinstance(spec, float):
        unknown = set(spec) - set(speakers)
        if unknown:
            raise ValueError(f"{what} speakers not in the clips: {sorted(unknown)}")
        return set(spec)
    if not 0.0 <= spec < 1.0:
        raise ValueError(f"{what} fraction must be in [0, 1), got {spec}")
    n = int(round(spec * len(speakers)))
    if spec > 0 and len(speakers) > 1:
        n = min(max(n, 1), len(speakers) - 1)
    return set(sorted(speakers, key=lambda s: unit_hash(s, seed))[:n])


def _parts(clips, labels, test_speakers=()) -> Split:
    parts = ([], [], [])
    for clip, label in zip(clips, labels):
        parts[label].append(clip)
    return Split(*parts, test_speakers=tuple(sorted(test_speakers)))


def speaker_split(clips: list[dict], test=None, val=None, seed: int = 0) -> Split:
    """No speaker in two parts; parts in the input order.

    test, val: speaker names (a list or ``"s1,s2"``) or fractions of all the speakers
    (:func:`pick_speakers`; the test speakers first, then the validation ones among the rest,
    with ``seed + 1``)."""
    speakers = sorted({c["speaker"] for c in clips})
    test_spk = pick_speakers(speakers, test, seed, "test")
    rest = [s for s in speakers if s not in test_spk]
    if isinstance(val, float) and rest:  # a fraction of all speakers, drawn from the rest
        val = min(val * len(speakers) / len(rest), 0.999)
    val_spk = pick_speakers(rest, val, seed + 1, "validation")
    if val_spk & test_spk:
        raise ValueError(f"speakers both in val and test: {sorted(val_spk & test_spk)}")
    part = {s: 2 if s in test_spk else 1 if s in val_spk else 0 for s in speakers}
    return _parts(clips, [part[c["speaker"]] for c in clips], test_spk)


def hashed_utterance_split(clips: list[dict], val: float = 0.0, test: float = 0.1,
                           seed: int = 0) -> Split:
    """Fractions of the clips, parts in the input order: each clip goes by ``u =``
    :func:`unit_hash` of ``"speaker/utt"`` (``u < test``: test, ``u < test + val``: val), so
    adding clips never moves the others."""
    val, test = float(val or 0.0), float(test or 0.0)
    if val < 0 or test < 0 or val + test >= 1:
        raise ValueError(f"utterance split needs fractions with val + test < 1, "
                         f"got val={val}, test={test}")
    labels = []
    for c in clips:
        u = unit_hash(clip_key(c), seed)
        labels.append(2 if u < test else 1 if u < test + val else 0)
    return _parts(clips, labels)


def utterance_split(clips: list[dict], every: int | None = 5, offset: int = 4) -> Split:
    """Per speaker, clips sorted by utterance name; those at positions ``i % every == offset``
    go to ``test`` (``every`` 0 or None: none). Both parts sorted by speaker, then utterance."""
    if every and not 0 <= offset < every:
        raise ValueError(f"holdout offset must be in [0, {every}), got {offset}")
    train, test, position = [], [], {}
    for clip in sorted(clips, key=_sort_key):
        i = position[clip["speaker"]] = position.get(clip["speaker"], -1) + 1
        (test if every and i % every == offset else train).append(clip)
    return Split(train, [], test)


def make_split(clips: list[dict], test_speakers=None, *, holdout_every: int | None = 5,
               holdout_offset: int = 4, val: float = 0.0, seed: int = 0) -> Split:
    """The split that training and evaluation share.

    test_speakers: speakers kept out of training entirely (names, ``"s1,s2"``, or a fraction
        drawn by :func:`pick_speakers` with ``seed``); None: none.
    holdout_every, holdout_offset: of every other speaker, the utterances that
        :func:`utterance_split` holds out (0 or None: none).
    val: a fraction of the remaining training clips moved to ``val``
        (:func:`hashed_utterance_split` with ``seed``).

    Every part is sorted by speaker, then utterance. Raises ValueError for unknown test
    speakers, or when they leave no clip to train on.
    """
    by_speaker = speaker_split(clips, test=test_speakers, seed=seed)
    if clips and not by_speaker.train:
        raise ValueError(f"every speaker is a test speaker ({', '.join(by_speaker.test_speakers)})"
                         ": no clip left to train on")
    held = utterance_split(by_speaker.train, holdout_every, holdout_offset)
    train, val_part = held.train, []
    if val:
        drawn = hashed_utterance_split(held.train, test=val, seed=seed)
        train, val_part = drawn.train, drawn.test
    test = sorted(held.test + by_speaker.test, key=_sort_key)
    return Split(train, val_part, test, by_speaker.test_speakers)


def split_settings(name: str | None = None, test_speakers=None) -> dict:
    """:func:`make_split` keyword arguments of a :data:`SPLITS` preset (``"utterance"`` when
    None), with ``test_speakers`` added (the ``"paper"`` preset names its own)."""
    name = name or "utterance"
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
    settings = dict(SPLITS[name])
    if parse_speakers(test_speakers) is not None:
        if settings["test_speakers"] is not None:
            raise ValueError(f"the {name!r} split names its own test speakers; "
                             "give either it or test speakers")
        settings["test_speakers"] = parse_speakers(test_speakers)
    return settings


def load_split(root, test_speakers=None, **kwargs) -> Split:
    """:func:`make_split` of every complete clip of the processed dataset ``root``; errors
    name ``root``."""
    from .dataset import load_index

    clips = load_index(root)
    try:
        return make_split(clips, test_speakers, **kwargs)
    except ValueError as err:
        raise ValueError(f"{root}: {err}") from None
