"""Tests for the embedded benchmark (rankvideo.data.synthetic) and its reader (rankvideo.data.benchmark).

Builds are tiny (9 videos of 3 s at 96x96, 12 queries; well under a second each) and go to
pytest's tmp_path. Grading and proxies are checked on hand-built scenes whose expected values
are worked out in the comments.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rankvideo.data.benchmark import Benchmark
from rankvideo.data.synthetic import build as build_mod
from rankvideo.data.synthetic.build import BenchmarkConfig, VideoSpec, build_benchmark
from rankvideo.data.synthetic.proxies import ProxyConfig, caption, metadata, ocr
from rankvideo.data.synthetic.queries import Constraint, QuerySpec, VideoTruth, grade, satisfies
from rankvideo.data.synthetic.scenes import COLOURS, OnScreenText, Scene, SceneObject, render
from rankvideo.data.synthetic.world import EVENT_KINDS, PLACES, Event
from rankvideo.data.trec import FormatError
from rankvideo.data.video import read_clip, write_video

# ---------------------------------------------------------------------------------------------
# helpers


def small_cfg(**overrides) -> BenchmarkConfig:
    base = dict(num_events=3, videos_per_event=3, num_queries=12, video=VideoSpec(seconds=3.0), num_workers=1)
    base.update(overrides)
    return BenchmarkConfig(**base)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones included), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_benchmark(a: Path, b: Path) -> None:
    fa, fb = files_of(a), files_of(b)
    assert sorted(fa) == sorted(fb)
    # Every file, manifest.json included, must be byte-identical (the manifest holds no timing).
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs"


def obj(shape, colour, size="small", motion="static", appear=0.0) -> SceneObject:
    return SceneObject(shape=shape, colour=colour, size=size, motion=motion, appear=appear)


def scene(*objects, text=None, seconds=3.0, width=96, height=96, fps=8, background=(20, 20, 20), starts=None) -> Scene:
    return Scene(
        objects=tuple(objects),
        text=text,
        background=background,
        seconds=seconds,
        fps=fps,
        width=width,
        height=height,
        starts=tuple(starts) if starts is not None else tuple((0.5, 0.5) for _ in objects),
    )


def truth(*objects, text=None, kind="flood", place="Lisbon", details=("rescue boats", "sandbag walls")) -> VideoTruth:
    return VideoTruth(kind=kind, place=place, details=tuple(details), scene=scene(*objects, text=text))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench") / "synthetic"
    return out, build_benchmark(small_cfg(), out)


# ---------------------------------------------------------------------------------------------
# determinism


def test_build_is_deterministic_and_seed_dependent(tmp_path, built):
    ref, m_ref = built
    m_again = build_benchmark(small_cfg(), tmp_path / "again")
    assert m_again["sha256"] == m_ref["sha256"]
    assert_same_benchmark(ref, tmp_path / "again")
    # The digest really covers the files: recompute it from the folder.
    assert build_mod._digest(ref) == m_ref["sha256"]
    assert m_ref["num_videos"] == 9
    assert m_ref["num_queries"] == {"train": 7, "val": 2, "test": 3}  # round(7.2), round(2.4), rest
    assert len(list((ref / "videos").glob("*.mp4"))) == 9
    assert not (ref.parent / "synthetic.partial").exists()

    m_other = build_benchmark(small_cfg(seed=7), tmp_path / "other")
    assert m_other["sha256"] != m_ref["sha256"]
    assert files_of(tmp_path / "other")["corpus.jsonl"] != files_of(ref)["corpus.jsonl"]


def test_parallel_rendering_gives_the_same_bytes(tmp_path, built):
    ref, m_ref = built
    m_par = build_benchmark(small_cfg(num_workers=2), tmp_path / "par")
    assert m_par["sha256"] == m_ref["sha256"]
    assert_same_benchmark(ref, tmp_path / "par")


def test_shipped_debug_config_builds(tmp_path):
    # conf/debug/tiny.yaml asks for up to 3 objects in 3 s clips, which only have two 1 s entry
    # slots; sampling must cap the object count instead of crashing.
    cfg = small_cfg(num_events=6, videos_per_event=5, num_queries=30, video=VideoSpec(seconds=3.0, max_objects=3))
    build_benchmark(cfg, tmp_path / "dbg")
    for row in map(json.loads, (tmp_path / "dbg" / "corpus.jsonl").read_text().splitlines()):
        objs = row["truth"]["scene"]["objects"]
        assert 1 <= len(objs) <= 2
        appear = [o["appear"] for o in objs]
        assert appear == sorted(appear)
        assert all(b - a >= 0.7 for a, b in zip(appear, appear[1:]))  # slots 1 s apart, jitter < 0.3 s


# ---------------------------------------------------------------------------------------------
# resume


class _Interrupted(RuntimeError):
    pass


def _interrupt_after_rendering(monkeypatch, cfg, out):
    """Run a build that dies after rendering every video (as a crash or Ctrl-C would)."""
    def boom(*a, **k):
        raise _Interrupted()

    with monkeypatch.context() as m:
        m.setattr(build_mod, "_sample_queries", boom)
        with pytest.raises(_Interrupted):
            build_benchmark(cfg, out)
    stage = out.with_name(out.name + ".partial")
    assert stage.is_dir() and not out.exists()
    return stage


def _count_writes(monkeypatch) -> list[str]:
    written: list[str] = []
    real = build_mod.write_video

    def counting(path, *a, **k):
        written.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(build_mod, "write_video", counting)
    return written


def test_resume_reuses_rendered_videos(tmp_path, monkeypatch, built):
    ref, m_ref = built
    out = tmp_path / "synthetic"
    stage = _interrupt_after_rendering(monkeypatch, small_cfg(), out)
    assert (stage / ".fingerprint").is_file()
    videos = sorted((stage / "videos").glob("*.mp4"))
    assert len(videos) == 9
    # One video was not finished: it is missing, and a killed writer left its temp file behind.
    lost = videos[4]
    lost.unlink()
    (stage / "videos" / f".{lost.name}.0123abcd.tmp").write_bytes(b"half a video")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in videos if p != lost}

    written = _count_writes(monkeypatch)
    m = build_benchmark(small_cfg(), out)
    assert written == [lost.name]  # only the missing video is rendered again
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "videos").glob("*.mp4")}
    assert {k: after[k] for k in before} == before  # the same files, untouched
    assert lost.name in after
    assert not stage.exists()
    assert m["sha256"] == m_ref["sha256"]
    assert_same_benchmark(ref, out)


def test_partial_folder_of_another_config_is_discarded(tmp_path, monkeypatch, built):
    ref, m_ref = built
    out = tmp_path / "synthetic"
    stage = _interrupt_after_rendering(monkeypatch, small_cfg(seed=99), out)
    (stage / "junk.txt").write_text("left over")

    written = _count_writes(monkeypatch)
    m = build_benchmark(small_cfg(), out)
    assert len(written) == 9  # nothing of seed 99 is reused
    assert not (out / "junk.txt").exists()
    assert m["sha256"] == m_ref["sha256"]
    assert_same_benchmark(ref, out)


@pytest.mark.parametrize("marker", ["0123456789abcdef", None])
def test_partial_folder_with_wrong_or_missing_fingerprint_is_discarded(tmp_path, monkeypatch, built, marker):
    ref, m_ref = built
    out = tmp_path / "synthetic"
    stage = _interrupt_after_rendering(monkeypatch, small_cfg(), out)
    if marker is None:
        (stage / ".fingerprint").unlink()
    else:
        (stage / ".fingerprint").write_text(marker)
    victim = sorted((stage / "videos").glob("*.mp4"))[0]
    victim.write_bytes(b"not an mp4")  # would poison the result if it were reused

    written = _count_writes(monkeypatch)
    m = build_benchmark(small_cfg(), out)
    assert len(written) == 9
    assert m["sha256"] == m_ref["sha256"]
    assert_same_benchmark(ref, out)


def test_rebuild_replaces_a_previous_benchmark(tmp_path, built):
    ref, m_ref = built
    out = tmp_path / "synthetic"
    build_benchmark(small_cfg(seed=5), out)
    (out / "stale.txt").write_text("from the old build")
    m = build_benchmark(small_cfg(), out)
    assert not (out / "stale.txt").exists()
    assert m["sha256"] == m_ref["sha256"]
    assert_same_benchmark(ref, out)


# ---------------------------------------------------------------------------------------------
# grading


RED_CIRCLE_L = obj("circle", "red", "large", "left to right", 0.0)
BLUE_SQUARE_S = obj("square", "blue", "small", "upward", 1.1)


def C(kind, **args) -> Constraint:
    return Constraint(kind, args)


@pytest.mark.parametrize(
    "constraint, objects, expected",
    [
        # attribute: the object with the right size / the wrong size / no such object
        (C("attribute", shape="circle", colour="red", size="large"), [RED_CIRCLE_L], 1.0),
        (C("attribute", shape="circle", colour="red", size="small"), [RED_CIRCLE_L], 0.5),
        (C("attribute", shape="square", colour="red", size="large"), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.0),
        # motion
        (C("motion", shape="square", colour="blue", motion="upward"), [RED_CIRCLE_L, BLUE_SQUARE_S], 1.0),
        (C("motion", shape="square", colour="blue", motion="downward"), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.5),
        (C("motion", shape="square", colour="green", motion="upward"), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.0),
        # order: red circle (0.0 s) before blue square (1.1 s)
        (C("order", shape1="circle", colour1="red", shape2="square", colour2="blue"), [RED_CIRCLE_L, BLUE_SQUARE_S], 1.0),
        (C("order", shape1="square", colour1="blue", shape2="circle", colour2="red"), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.5),
        (C("order", shape1="circle", colour1="red", shape2="square", colour2="blue"), [RED_CIRCLE_L], 0.0),
        # count, total: exact only (off by one is no partial match for the total)
        (C("count", n=2, shape=None), [RED_CIRCLE_L, BLUE_SQUARE_S], 1.0),
        (C("count", n=3, shape=None), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.0),
        (C("count", n=1, shape=None), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.0),
        # count of one shape: exact 1.0, off by one 0.5, further 0.0
        (C("count", n=2, shape="circle"), [RED_CIRCLE_L, obj("circle", "green"), BLUE_SQUARE_S], 1.0),
        (C("count", n=2, shape="circle"), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.5),
        (C("count", n=2, shape="circle"), [RED_CIRCLE_L, obj("circle", "green"), obj("circle", "blue")], 0.5),
        (C("count", n=2, shape="circle"), [BLUE_SQUARE_S], 0.0),
        # comparison: large red circle bigger than small blue square
        (C("comparison", shape1="circle", colour1="red", shape2="square", colour2="blue"), [RED_CIRCLE_L, BLUE_SQUARE_S], 1.0),
        (C("comparison", shape1="square", colour1="blue", shape2="circle", colour2="red"), [RED_CIRCLE_L, BLUE_SQUARE_S], 0.5),
        (C("comparison", shape1="circle", colour1="red", shape2="square", colour2="blue"),
         [RED_CIRCLE_L, obj("square", "blue", "large")], 0.5),
        (C("comparison", shape1="circle", colour1="red", shape2="square", colour2="blue"), [RED_CIRCLE_L], 0.0),
        # negation: a red circle and nothing green
        (C("negation", shape="circle", colour="red", absent_colour="green"), [RED_CIRCLE_L, BLUE_SQUARE_S], 1.0),
        (C("negation", shape="circle", colour="red", absent_colour="green"), [RED_CIRCLE_L, obj("triangle", "green")], 0.5),
        (C("negation", shape="circle", colour="red", absent_colour="green"), [BLUE_SQUARE_S], 0.0),
    ],
)
def test_satisfies_visual_constraints(constraint, objects, expected):
    assert satisfies(constraint, truth(*objects)) == expected


def test_satisfies_ocr_and_detail():
    flood_text = OnScreenText("FLOOD", 0.0, 2.0)
    assert satisfies(C("ocr", word="FLOOD"), truth(RED_CIRCLE_L, text=flood_text)) == 1.0
    assert satisfies(C("ocr", word="RESCUE"), truth(RED_CIRCLE_L, text=flood_text)) == 0.0
    assert satisfies(C("ocr", word="FLOOD"), truth(RED_CIRCLE_L)) == 0.0
    assert satisfies(C("detail", detail="sandbag walls"), truth(RED_CIRCLE_L)) == 1.0
    assert satisfies(C("detail", detail="tear gas"), truth(RED_CIRCLE_L)) == 0.0
    with pytest.raises(ValueError, match="colour_of_sky"):
        satisfies(C("colour_of_sky"), truth(RED_CIRCLE_L))


def test_constraint_round_trip():
    c = C("order", shape1="circle", colour1="red", shape2="square", colour2="blue")
    assert c.to_dict() == {"kind": "order", "shape1": "circle", "colour1": "red", "shape2": "square", "colour2": "blue"}
    assert Constraint.from_dict(c.to_dict()) == c


def _query(*constraints, kind="flood", place="Lisbon") -> QuerySpec:
    return QuerySpec(qid="q", text="t", variant="all", qtype=constraints[0].kind, source_doc="d",
                     kind=kind, place=place, constraints=tuple(constraints))


def test_grade_levels():
    text = OnScreenText("FLOOD", 0.0, 2.0)
    attr = C("attribute", shape="circle", colour="red", size="large")
    word = C("ocr", word="FLOOD")
    q = _query(attr, word)
    # 3: everything holds
    assert grade(q, truth(RED_CIRCLE_L, text=text)) == 3
    # 2: the word holds fully, the circle only partially (wrong size)
    assert grade(q, truth(obj("circle", "red", "small"), text=text)) == 2
    # 1: the circle partially, the word not at all
    assert grade(q, truth(obj("circle", "red", "small"))) == 1
    # 1: the word fully, the circle not at all (2 needs every constraint at least partial)
    assert grade(q, truth(BLUE_SQUARE_S, text=text)) == 1
    # 0: nothing holds
    assert grade(q, truth(BLUE_SQUARE_S)) == 0
    # a single constraint: full 3, partial 1
    assert grade(_query(attr), truth(RED_CIRCLE_L)) == 3
    assert grade(_query(attr), truth(obj("circle", "red", "small"))) == 1


def test_grade_anchor_mismatch_is_zero():
    q = _query(C("attribute", shape="circle", colour="red", size="large"))
    assert grade(q, truth(RED_CIRCLE_L, place="Porto")) == 0  # wrong place
    assert grade(q, truth(RED_CIRCLE_L, kind="storm")) == 0  # wrong kind of event
    # A query that names no place matches the kind in any place.
    assert grade(replace(q, place=None), truth(RED_CIRCLE_L, place="Porto")) == 3
    assert grade(replace(q, place=None), truth(RED_CIRCLE_L, kind="storm", place="Porto")) == 0


def test_built_qrels_match_the_ground_truth(built):
    root, manifest = built
    bench = Benchmark(root)
    docs = {d.doc_id: d for d in bench.corpus()}
    assert len(docs) == 9
    rows = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
    queries = bench.queries()
    assert [q.qid for q in queries] == [r["qid"] for r in rows] and len(rows) == 12
    qrels = bench.qrels()
    assert set(qrels) == {r["qid"] for r in rows}
    for r in rows:
        assert qrels[r["qid"]][r["source_doc"]] == 3, r
        # Every judgment is the grade of the document's own ground truth; grade 0 is not written.
        spec = QuerySpec(qid=r["qid"], text=r["text"], variant=r["variant"], qtype=r["qtype"],
                         source_doc=r["source_doc"], kind=r["kind"], place=r["place"],
                         constraints=tuple(Constraint.from_dict(c) for c in r["constraints"]))
        expected = {}
        for doc_id, d in docs.items():
            t = d.truth
            g = grade(spec, VideoTruth(t["kind"], t["place"], tuple(t["details"]), Scene.from_dict(t["scene"])))
            if g > 0:
                expected[doc_id] = g
        assert qrels[r["qid"]] == expected
    # Split files partition the queries and their qrels.
    union = {}
    for split in ("train", "val", "test"):
        part = bench.qrels(split)
        assert {q.qid for q in bench.queries(split)} == set(part)
        assert not set(part) & set(union)
        union.update(part)
    assert union == qrels
    assert manifest["grades"]["3"] >= 12


# ---------------------------------------------------------------------------------------------
# proxies


NO_NOISE = ProxyConfig(caption_omission_rate=0.0, caption_mistake_rate=0.0, ocr_error_rate=0.0,
                       asr_offtopic_rate=0.0, title_misleading_rate=0.0, title_partial_rate=0.0,
                       description_visual_rate=0.0, description_mistake_rate=0.0)


def test_caption_without_noise_states_every_fact():
    sc = scene(obj("circle", "red", "small", "static", 0.0),
               obj("square", "blue", "large", "left to right", 1.1),
               obj("triangle", "yellow", "small", "upward", 2.0),
               text=OnScreenText("FLOOD", 0.5, 2.5))
    for seed in range(3):  # no randomness left to matter
        assert caption(sc, np.random.default_rng(seed), NO_NOISE) == (
            "First, a small red circle appears and stays still. "
            "Then, a large blue square appears and moves left to right. "
            "After that, a small yellow triangle appears and moves upward. "
            "In total 3 shapes can be seen. "
            "The word FLOOD is written at the bottom of the screen. "
            "The background is a plain dark colour."
        )
    one = scene(obj("circle", "white", "large", "downward"))
    assert caption(one, np.random.default_rng(0), NO_NOISE) == (
        "The video shows a large white circle that moves downward. "
        "In total 1 shape can be seen. The background is a plain dark colour."
    )


def test_caption_with_mistake_rate_one_gets_every_fact_wrong():
    truth_objs = [obj("circle", "red", "small", "static"), obj("square", "blue", "large", "upward", 1.2)]
    sc = scene(*truth_objs)
    cfg = replace(NO_NOISE, caption_mistake_rate=1.0)
    pat = re.compile(r"(?:First|Then), an? (small|large) (\w+) (\w+) appears and (stays still|moves [a-z ]+)\.")
    for seed in range(10):
        text = caption(sc, np.random.default_rng(seed), cfg)
        said = pat.findall(text)
        assert len(said) == 2, text
        for (size, colour, shape, motion), o in zip(said, truth_objs):
            assert size == o.size  # sizes are omitted, never wrong
            assert colour in COLOURS and colour != o.colour
            assert shape != o.shape
            assert motion != ("stays still" if o.motion == "static" else f"moves {o.motion}")
        n = int(re.search(r"In total (\d+) shape", text).group(1))
        assert n in (1, 3)


def test_ocr_proxy():
    sc = scene(RED_CIRCLE_L, text=OnScreenText("FLOOD", 0.0, 1.0))
    assert ocr(sc, np.random.default_rng(0), NO_NOISE) == "FLOOD"
    assert ocr(scene(RED_CIRCLE_L), np.random.default_rng(0), NO_NOISE) == ""
    noisy = replace(NO_NOISE, ocr_error_rate=1.0)
    for seed in range(10):
        got = ocr(sc, np.random.default_rng(seed), noisy)
        assert len(got) == 5 and sum(a != b for a, b in zip(got, "FLOOD")) == 1
        assert set(got) - set("FLOOD") <= {"0", "X"}  # O -> 0, F/L/D -> X


def test_metadata_title_and_description():
    ev = Event("E000", "flood", "Lisbon")
    details = ["rescue boats", "sandbag walls"]
    sc = scene(obj("circle", "red"))
    assert metadata(ev, details, sc, np.random.default_rng(0), NO_NOISE) == (
        "Lisbon flood: rescue boats", "Video filmed in Lisbon.")
    visual = replace(NO_NOISE, description_visual_rate=1.0)
    assert metadata(ev, details, sc, np.random.default_rng(0), visual)[1] == "Video filmed in Lisbon. Watch for the red circle."

    misleading = replace(NO_NOISE, title_misleading_rate=1.0)
    titles = [metadata(ev, details, sc, np.random.default_rng(seed), misleading) for seed in range(12)]
    for title, description in titles:
        m = re.fullmatch(r"(\w+) (\w+): rescue boats", title)
        assert m, title
        place, kind = m.groups()
        assert place in PLACES and kind in EVENT_KINDS
        assert (place, kind) != ("Lisbon", "flood")
        assert description == "Video filmed in Lisbon."  # the description keeps the true place
    assert len({t for t, _ in titles}) > 1


# ---------------------------------------------------------------------------------------------
# rendered and decoded frames


def test_rendered_circle_survives_encoding(tmp_path):
    # One large (radius 0.17 * 96 = 16 px) static red circle centred at (0.5 * 96, 0.5 * 0.8 * 96)
    # = (x 48, y 38.4) on a dark grey background.
    sc = scene(obj("circle", "red", "large", "static"), seconds=2.0, starts=[(0.5, 0.5)])
    frames = render(sc)
    assert frames.shape == (16, 96, 96, 3)
    path = tmp_path / "circle.mp4"
    write_video(path, frames, fps=sc.fps)
    clip = read_clip(path, fps=2)
    assert clip.num_frames == 4
    np.testing.assert_allclose(clip.timestamps, [0.0, 0.5, 1.0, 1.5], atol=1e-6)
    for f in clip.frames:
        r, g, b = (int(v) for v in f[38, 48])
        assert r > 150 and g < 100 and b < 100, (r, g, b)
        for y, x in [(2, 2), (2, 93), (93, 2), (93, 93)]:
            assert int(f[y, x].max()) < 50, f[y, x]
        # The circle's edge is where it should be: 20 px left of the centre is background.
        assert int(f[38, 28].max()) < 50


def test_on_screen_text_only_during_its_interval(tmp_path):
    # Text from 1.0 s to 2.5 s in a black strip over the bottom 20 % of the frame (rows 77-95).
    sc = scene(text=OnScreenText("FLOOD", 1.0, 2.5), seconds=4.0)
    path = tmp_path / "text.mp4"
    write_video(path, render(sc), fps=sc.fps)
    clip = read_clip(path, fps=2)
    np.testing.assert_allclose(clip.timestamps, np.arange(8) * 0.5, atol=1e-6)
    for t, f in zip(clip.timestamps, clip.frames):
        strip = f[80:96].astype(int)
        white = int((strip.min(axis=-1) > 200).sum())
        if 1.0 <= t < 2.5:
            assert white > 20, (t, white)  # letters are drawn
            assert int(np.median(strip)) < 15  # on a black band, darker than the background (20)
        else:
            assert white == 0, (t, white)
            assert abs(int(np.median(strip)) - 20) <= 4
        assert int(f[10:70].max()) < 50  # nothing else on screen


# ---------------------------------------------------------------------------------------------
# config validation


@pytest.mark.parametrize(
    "overrides, key",
    [
        (dict(variants={"caption": 1.0, "video": 1.0}), "synthesis.variants"),
        (dict(variants={"caption": 0.0}), "synthesis.variants"),
        (dict(visual_qtypes={"colour": 1.0}), "synthesis.visual_qtypes"),
        (dict(split_fractions={"train": 0.6, "val": 0.2, "test": 0.1}), "data.split_fractions"),
        (dict(split_fractions={"train": 0.8, "test": 0.2}), "data.split_fractions"),
        (dict(video=VideoSpec(width=95)), "data.video.width"),
        (dict(video=VideoSpec(height=33)), "data.video.width and height"),
        (dict(synthetic_train_queries=-5), "data.synthetic_train_queries"),
    ],
)
def test_invalid_config_is_rejected_before_anything_is_written(tmp_path, overrides, key):
    cfg = small_cfg(**overrides)
    with pytest.raises(ValueError, match=re.escape(key)):
        cfg.validate()
    with pytest.raises(ValueError, match=re.escape(key)):
        build_benchmark(cfg, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_too_many_events_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="data.num_events=300"):
        build_benchmark(small_cfg(num_events=300), tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# Benchmark reader errors


def _write_corpus(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "corpus.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_corpus_reader_reads_known_fields_only(tmp_path):
    _write_corpus(tmp_path / "b", [
        json.dumps({"doc_id": "v1", "video": "videos/v1.mp4", "title": "Flood", "extra": 1}),
        "",
        json.dumps({"doc_id": "v2", "video": "/abs/v2.mp4", "asr": "rescue boats"}),
    ])
    bench = Benchmark(tmp_path / "b")
    docs = bench.corpus()
    assert [d.doc_id for d in docs] == ["v1", "v2"]
    assert docs[0].title == "Flood" and docs[1].asr == "rescue boats"
    assert bench.video_path(docs[0]) == tmp_path / "b" / "videos" / "v1.mp4"
    assert bench.video_path(docs[1]) == Path("/abs/v2.mp4")


def test_malformed_json_names_file_and_line(tmp_path):
    path = _write_corpus(tmp_path / "b", [
        json.dumps({"doc_id": "v1", "video": "videos/v1.mp4"}),
        '{"doc_id": "v2", "video": ',
    ])
    with pytest.raises(FormatError) as err:
        Benchmark(tmp_path / "b").corpus()
    assert err.value.path == str(path) and err.value.line == 2
    assert str(path) in str(err.value) and "line 2" in str(err.value) and "not valid JSON" in str(err.value)


def test_non_object_and_missing_keys_name_the_line(tmp_path):
    _write_corpus(tmp_path / "b", ["[1, 2]"])
    with pytest.raises(FormatError, match="line 1: expected a JSON object"):
        Benchmark(tmp_path / "b").corpus()
    _write_corpus(tmp_path / "b", [json.dumps({"doc_id": "v1", "video": "x.mp4"}), json.dumps({"doc_id": "v2"})])
    with pytest.raises(FormatError, match="line 2: a corpus record needs 'doc_id' and 'video'"):
        Benchmark(tmp_path / "b").corpus()


def test_duplicate_doc_id_names_both_lines(tmp_path):
    path = _write_corpus(tmp_path / "b", [
        json.dumps({"doc_id": "v1", "video": "videos/v1.mp4"}),
        json.dumps({"doc_id": "v2", "video": "videos/v2.mp4"}),
        json.dumps({"doc_id": "v1", "video": "videos/v1b.mp4"}),
    ])
    with pytest.raises(FormatError) as err:
        Benchmark(tmp_path / "b").corpus()
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and "repeats line 1" in msg and "'v1'" in msg


def test_query_tsv_errors_name_the_line(tmp_path):
    _write_corpus(tmp_path / "b", [json.dumps({"doc_id": "v1", "video": "x.mp4"})])
    (tmp_path / "b" / "queries_test.tsv").write_text("q1\tflood in Lisbon\nq2 no tab here\n")
    with pytest.raises(FormatError, match=r"queries_test\.tsv, line 2: expected 'qid<TAB>text'"):
        Benchmark(tmp_path / "b").queries("test")


def test_missing_folder_is_a_helpful_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as err:
        Benchmark(missing)
    msg = str(err.value)
    assert str(missing) in msg and "corpus.jsonl" in msg and "synthesize" in msg


def test_setting_is_visible_and_captioned():
    """The kind of event shows as a background texture, the place as a corner emblem; a captioner
    names the setting (not the place)."""
    from rankvideo.data.synthetic.scenes import emblem_bits

    plain = scene(obj("circle", "red", "large", "static"))
    textured = replace(plain, kind_index=5, place_index=3)
    f_plain, f_tex = render(plain)[0].astype(int), render(textured)[0].astype(int)
    # Bottom-right corner region (no shapes there at t=0 for this scene): plain is one colour,
    # textured has two brightness levels 28 apart.
    region_p, region_t = f_plain[60:76, 70:94], f_tex[60:76, 70:94]
    assert len(np.unique(region_p.reshape(-1, 3), axis=0)) == 1
    levels = np.unique(region_t[..., 0])
    assert len(levels) == 2 and levels[1] - levels[0] == 28
    # The emblem: 3x3 cells of 6 px from (2, 2); lit cells follow the place's bits.
    bits = emblem_bits(3)
    for b, on in enumerate(bits):
        cy, cx = 2 + (b // 3) * 6 + 3, 2 + (b % 3) * 6 + 3
        assert (f_tex[cy, cx] > 150).all() == bool(on)
    assert len({tuple(emblem_bits(p)) for p in range(18)}) == 18
    text = caption(textured, np.random.default_rng(0), NO_NOISE, kind="flood")
    assert text.endswith("A small square emblem is shown in the top left corner. The setting looks like a flood.")
    assert "plain dark colour" not in text


def test_synthetic_train_queries_leave_val_and_test_unchanged(tmp_path, built):
    ref, m_ref = built
    m = build_benchmark(small_cfg(synthetic_train_queries=5), tmp_path / "more")
    assert m["num_queries"] == {"train": 7 + 5, "val": 2, "test": 3}
    for split in ("val", "test"):
        for name in (f"queries_{split}.tsv", f"qrels_{split}.trec"):
            assert (tmp_path / "more" / name).read_bytes() == (ref / name).read_bytes(), name
    rows = [json.loads(line) for line in (tmp_path / "more" / "queries.jsonl").read_text().splitlines()]
    extra = [r for r in rows if r["qid"].startswith("s")]
    assert len(extra) == 5 and {r["split"] for r in extra} == {"train"}
    base_texts = {json.loads(line)["text"] for line in (ref / "queries.jsonl").read_text().splitlines()}
    assert not base_texts & {r["text"] for r in extra}
    # Each synthetic query is judged like the others: its source video fully relevant.
    qrels = (tmp_path / "more" / "qrels_train.trec").read_text().split("\n")
    for r in extra:
        assert f"{r['qid']} 0 {r['source_doc']} 3" in qrels
