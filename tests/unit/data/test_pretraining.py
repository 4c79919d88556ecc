"""The pre-training corpus (rankvideo.data.synthetic.pretraining): disjoint from the benchmark,
deterministic, and its questions answered correctly from the ground truth."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from conftest import compose_cfg
from rankvideo.data.synthetic.build import BenchmarkConfig, VideoSpec, _sample_corpus, _sample_queries
from rankvideo.data.synthetic.pretraining import (
    FORMS,
    GENERAL_QTYPES,
    QTYPES,
    SEARCH_LEADS,
    PretrainCorpus,
    PretrainCorpusConfig,
    PretrainVideo,
    build_corpus,
    describe,
    sample_example,
    sample_videos,
)
from rankvideo.data.synthetic.scenes import OnScreenText, Scene, SceneObject
from rankvideo.data.synthetic.world import PLACES
from rankvideo.stages.pretrain import corpus_config


def _default_benchmark_cfg() -> BenchmarkConfig:
    """The embedded benchmark exactly as the default pipeline builds it (data=synthetic)."""
    cfg = compose_cfg()
    d, s = cfg.data, cfg.synthesis
    return BenchmarkConfig(
        seed=int(cfg.seed), num_events=int(d.num_events), videos_per_event=int(d.videos_per_event),
        details_per_video=int(d.details_per_video), num_queries=int(d.num_queries),
        video=VideoSpec(**dict(d.video)), variants=dict(s.variants), visual_qtypes=dict(s.visual_qtypes),
        place_rate=float(s.place_rate),
    )


def test_the_default_corpus_shares_no_video_scene_caption_or_query_with_the_benchmark():
    bench_cfg = _default_benchmark_cfg()
    records, truths = _sample_corpus(bench_cfg)
    queries, _ = _sample_queries(bench_cfg, truths)
    bench_scenes = {Scene.from_dict(r["truth"]["scene"]) for r in records}
    bench_captions = {r["caption"] for r in records}
    bench_queries = {q.text for q in queries}

    pcfg = corpus_config(compose_cfg().pretrain.corpus)
    videos = sample_videos(pcfg)
    assert len(videos) == pcfg.num_videos
    # Scenes (every object, position, entry time, colour, text, background) never repeat, so no
    # rendered clip can either: rendering is a pure function of the scene.
    assert not bench_scenes & {v.scene for v in videos}
    rng = np.random.default_rng(0)
    texts = set()
    for v in videos[:600]:
        texts.add(describe(v, rng))
        for form in ("question", "rerank", "short"):
            for qtype in QTYPES:
                ex = sample_example(v, qtype, form, rng)
                if ex is not None:
                    texts.add(ex.text)
    assert not texts & bench_captions
    assert not texts & bench_queries
    # Not even the benchmark's query openings are used by the generic queries.
    leads = ("Video of", "Footage of", "Find the clip of", "News video of")
    assert not [t for t in texts if t.startswith(leads)]


def test_same_seed_same_videos_other_seed_other_videos():
    a = sample_videos(PretrainCorpusConfig(num_videos=20, num_heldout=2))
    b = sample_videos(PretrainCorpusConfig(num_videos=20, num_heldout=2))
    c = sample_videos(PretrainCorpusConfig(seed=7, num_videos=20, num_heldout=2))
    assert a == b
    assert not {v.scene for v in a} & {v.scene for v in c}


def _video(objects, text=None, kind="flood", place="Lisbon", emblem=True) -> PretrainVideo:
    scene = Scene(objects=tuple(objects), text=text, background=(30, 30, 30), seconds=6.0, fps=8, width=96, height=96,
                  starts=tuple((0.5, 0.5) for _ in objects), kind_index=0, place_index=1 if emblem else -1)
    return PretrainVideo(0, kind, place, scene)


RED_CIRCLE = SceneObject("circle", "red", "large", "upward", 0.0)
BLUE_SQUARE = SceneObject("square", "blue", "small", "static", 1.2)


def test_answers_follow_the_ground_truth():
    v = _video([RED_CIRCLE, BLUE_SQUARE], text=OnScreenText("FLOOD", 0.0, 4.0))
    rng = np.random.default_rng(3)
    seen = Counter()
    for _ in range(3000):
        ex = sample_example(v, QTYPES[int(rng.integers(len(QTYPES)))], "question", rng)
        if ex is None:
            continue
        q, a = ex.text, ex.answer
        seen[(ex.qtype, a)] += 1
        expected = {
            "Is there a red object?": "yes", "Is there a green object?": "no", "Is there a circle?": "yes",
            "Is there a triangle?": "no", "Is there a red circle?": "yes", "Is there a red square?": "no",
            "Is there a blue circle?": "no", "How many shapes are there?": "two", "How many circles are there?": "one",
            "How many triangles are there?": "zero", "Which object appears first?": "red circle",
            "Does the red circle appear before the blue square?": "yes",
            "Does the blue square appear before the red circle?": "no", "How does the red circle move?": "upward",
            "How does the blue square move?": "still", "Does the blue square stand still?": "yes",
            "Is the red circle bigger than the blue square?": "yes", "Is the blue square bigger than the red circle?": "no",
            "What word is written on screen?": "FLOOD", "Does the screen read FLOOD?": "yes",
            "Does the screen read FIRE?": "no", "What kind of event is this?": "flood", "Is this a flood?": "yes",
            "Is this a storm?": "no", "Which place does the emblem show?": "Lisbon", "Is the emblem of Lisbon shown?": "yes",
            "Is the emblem of Osaka shown?": "no", "Is there nothing red in the video?": "no",
            "Is there nothing green in the video?": "yes", "What colour is the circle?": "red",
            "What shape is the blue object?": "square",
        }
        if q in expected:
            assert a == expected[q], q
    # Yes/no answers are balanced per type (within sampling noise).
    for qtype in ("object", "order", "kind", "relevance"):
        yes, no = seen[(qtype, "yes")], seen[(qtype, "no")]
        assert yes and no and 0.6 < yes / no < 1.6, (qtype, yes, no)


def test_relevance_queries_change_exactly_one_part_when_irrelevant():
    v = _video([RED_CIRCLE, BLUE_SQUARE], kind="flood", place="Lisbon")
    rng = np.random.default_rng(5)
    for _ in range(400):
        ex = sample_example(v, "relevance", "rerank", rng)
        if ex is None:
            continue
        named_kind = [k for k in ("flood", "wildfire", "protest", "festival", "earthquake", "marathon", "storm",
                                  "election", "concert", "parade", "strike", "eruption") if k in ex.text]
        if ex.answer == "yes":
            assert named_kind == ["flood"], ex.text
            assert "Lisbon" in ex.text or not any(p in ex.text for p in ("Osaka", "Lima", "Valencia", "Seoul"))


def test_place_without_an_emblem_is_none():
    v = _video([RED_CIRCLE], emblem=False)
    rng = np.random.default_rng(1)
    answers = {sample_example(v, "place", "question", rng).answer for _ in range(200)}
    assert answers <= {"none", "no"} and "none" in answers


def test_rerank_form_uses_query_phrases_and_caption_form_a_full_description():
    v = _video([RED_CIRCLE, BLUE_SQUARE], text=OnScreenText("FLOOD", 0.0, 4.0))
    rng = np.random.default_rng(2)
    ex = sample_example(v, "caption", "caption", rng)
    assert ex.answer == ("A flood scene. The emblem of Lisbon is in the corner. It opens with a large red circle that "
                         "moves upward. " + ex.answer.split("upward. ")[1])
    assert "small blue square that stays still" in ex.answer and ex.answer.endswith("Two shapes in all.")
    for _ in range(50):
        ex = sample_example(v, "object", "rerank", rng)
        assert ex.yes_no and not ex.text.endswith("?")
    assert all(f in FORMS for f in ("short", "question", "instruct", "rerank", "caption"))


@pytest.mark.parametrize("workers", [1, 2])
def test_built_corpus_decodes_like_the_benchmark_and_resumes(tmp_path, workers):
    cfg = PretrainCorpusConfig(num_videos=6, num_heldout=2, video=VideoSpec(seconds=2.0), num_workers=workers)
    corpus = build_corpus(cfg, tmp_path / "c")
    assert corpus.frames.shape == (6, 4, 96, 96, 3)  # 2 s at 2 fps
    np.testing.assert_allclose(corpus.timestamps[0], [0.0, 0.5, 1.0, 1.5])
    assert corpus.train_indices == [0, 1, 2, 3] and corpus.heldout_indices == [4, 5]
    clip = corpus.clip(4)
    assert clip.frames.dtype == np.uint8 and clip.frames.flags.writeable
    # A red large circle is visible: some pixels are strongly red in the frames of a clip showing one.
    again = build_corpus(cfg, tmp_path / "c")  # reused, not rebuilt
    assert again.manifest["frames_sha256"] == corpus.manifest["frames_sha256"]
    other = build_corpus(cfg, tmp_path / "d")
    assert other.manifest["frames_sha256"] == corpus.manifest["frames_sha256"]
    assert isinstance(PretrainCorpus(tmp_path / "c").videos[0], PretrainVideo)


def test_corpus_config_is_checked():
    with pytest.raises(ValueError, match="num_videos > num_heldout"):
        PretrainCorpusConfig(num_videos=5, num_heldout=5).validate()


def test_search_queries_are_judged_by_the_worlds_grade():
    # A clip of a flood in Lisbon: a large red circle then a small blue square, the word FLOOD.
    v = _video([RED_CIRCLE, BLUE_SQUARE], text=OnScreenText("FLOOD", 0.0, 4.0), kind="flood", place="Lisbon")
    rng = np.random.default_rng(11)
    kinds = ("flood", "wildfire", "protest", "festival", "earthquake", "marathon", "storm", "election", "concert",
             "parade", "strike", "eruption")
    seen = Counter()
    for _ in range(600):
        ex = sample_example(v, "search", "rerank", rng)
        assert ex is not None and ex.yes_no and ex.text.startswith(SEARCH_LEADS)
        seen[ex.answer] += 1
        text = ex.text
        if ex.answer == "yes":
            # Relevant: its event and every visible fact hold of the clip.
            assert [k for k in kinds if k in text] == ["flood"], text
            assert " in " not in text.split("flood")[1][:4] or "in Lisbon" in text, text
            assert "nothing red" not in text and "nothing blue" not in text, text
            assert "exactly two shapes in total" in text or "in total" not in text, text
            for word in ("FIRE", "UPDATE", "BREAKING", "LIVE"):
                assert f" {word} " not in f" {text} ", text
        elif "flood" in text and "Lisbon" in text and "reporter" not in text and "narrator" not in text:
            # Irrelevant although it names the clip's event: a visible fact must fail.
            assert not ("exactly two shapes in total" in text and "red circle" not in text and "blue square" not in text
                        and "screen" not in text), text
    assert 0.8 < seen["yes"] / seen["no"] < 1.25


def test_the_added_search_type_leaves_the_first_rounds_draws_alone():
    assert "search" in QTYPES and "search" not in GENERAL_QTYPES and QTYPES[: len(GENERAL_QTYPES)] == GENERAL_QTYPES


def test_event_queries_name_the_place_and_turn_on_the_event():
    v = _video([RED_CIRCLE, BLUE_SQUARE], text=OnScreenText("FLOOD", 0.0, 4.0), kind="flood", place="Lisbon")
    kinds = ("flood", "wildfire", "protest", "festival", "earthquake", "marathon", "storm", "election", "concert",
             "parade", "strike", "eruption")
    rng = np.random.default_rng(5)
    seen = Counter()
    for _ in range(600):
        ex = sample_example(v, "event", "rerank", rng)
        assert ex is not None and ex.yes_no and ex.text.startswith(SEARCH_LEADS)
        named_kinds = [k for k in kinds if k in ex.text]
        named_places = [p for p in PLACES if p in ex.text]
        assert len(named_kinds) == 1 and len(named_places) == 1, ex.text  # the place is always named
        right = (named_kinds[0] == "flood", named_places[0] == "Lisbon")
        if ex.answer == "yes":
            assert right == (True, True), ex.text
            seen["yes"] += 1
        else:
            # Irrelevant: another place or another kind, never both, the clip's own facts kept.
            assert right in ((True, False), (False, True)), ex.text
            seen["other place" if right[0] else "other kind"] += 1
    no = seen["other place"] + seen["other kind"]
    assert 0.8 < seen["yes"] / no < 1.25
    assert 0.6 < seen["other place"] / no < 0.8
    # The terse form asks the query's event alone, with the same answer.
    for _ in range(40):
        ex = sample_example(v, "event", "short", rng)
        kind, place = ex.text[:-1].split(" in ")
        assert ex.answer == ("yes" if (kind, place) == ("flood", "Lisbon") else "no"), ex.text
    # A clip without its place's emblem cannot show the place: no event question about it.
    assert sample_example(_video([RED_CIRCLE], emblem=False), "event", "rerank", rng) is None


def test_the_event_type_leaves_the_search_draws_as_the_shipped_weights_were_trained_on():
    # `event` shares `_search_attempt` with `search`; the search questions the shipped rounds were
    # trained on must come out byte for byte as before (this hash was taken before `event` existed).
    v = _video([RED_CIRCLE, BLUE_SQUARE], text=OnScreenText("FLOOD", 0.0, 4.0), kind="flood", place="Lisbon")
    rng = np.random.default_rng(11)
    exs = [sample_example(v, "search", form, rng) for form in ("rerank", "short", "question") * 40]
    digest = hashlib.sha256("|".join(f"{e.text}={e.answer}" for e in exs).encode()).hexdigest()[:16]
    assert digest == "b46a950f1b113ca2"


def test_graded_queries_answer_partial_matches_yes_in_proportion_to_their_grade():
    objects = [RED_CIRCLE, BLUE_SQUARE, SceneObject("triangle", "green", "small", "left", 2.0),
               SceneObject("circle", "yellow", "large", "static", 3.0)]
    v = _video(objects, text=OnScreenText("FLOOD", 0.0, 4.0), kind="flood", place="Lisbon")
    rng = np.random.default_rng(7)
    yes, n = Counter(), Counter()
    for _ in range(1500):
        ex = sample_example(v, "graded", "rerank", rng)
        if ex is None:
            continue
        assert ex.text.startswith(SEARCH_LEADS) and ex.grade in (0, 1, 2, 3), ex
        n[ex.grade] += 1
        yes[ex.grade] += ex.answer == "yes"
        if ex.grade in (1, 2):
            # A partial match is of the clip's own event: its kind, and its place where one is named.
            assert "flood" in ex.text and not any(p in ex.text for p in PLACES if p != "Lisbon"), ex.text
    assert sum(n.values()) > 1400
    assert yes[3] == n[3] > 100 and yes[0] == 0 < n[0]
    # Half are partial matches; grade 2 needs two facts (one holding, one in part), so it is rarer.
    assert 0.4 < (n[1] + n[2]) / sum(n.values()) < 0.6 and n[1] > 500 and n[2] >= 10
    assert abs(yes[1] / n[1] - 1 / 3) < 0.06 and 0 < yes[2] < n[2]


def test_the_graded_type_leaves_the_search_draws_and_the_first_rounds_types_alone():
    assert QTYPES[: len(GENERAL_QTYPES)] == GENERAL_QTYPES and QTYPES.index("graded") > QTYPES.index("event")
    v = _video([RED_CIRCLE, BLUE_SQUARE], text=OnScreenText("FLOOD", 0.0, 4.0), kind="flood", place="Lisbon")
    rng = np.random.default_rng(11)
    ex = sample_example(v, "search", "rerank", rng)
    assert ex.grade in (0, 3) and (ex.grade == 3) == (ex.answer == "yes")
