"""Templates and lexicons: expansion, starter sets, bad input."""
from __future__ import annotations

import pytest

from raikit.audits.errors import RaikitInputError
from raikit.fairness.templates import Lexicon, Template, builtin_path, expand, fill, load_lexicons, load_templates

LEX = {"person": Lexicon("person", {"male": ("he", "the man"), "female": ("she",)}),
       "occupation": Lexicon("occupation", {"": ("engineer", "nurse", "pilot")})}


def test_product_expansion_rows_and_columns():
    frame = expand([Template(id="t", text="{person} is {a:occupation}.")], LEX)
    assert len(frame) == 3 * 3
    assert set(frame["text"]) >= {"He is an engineer.", "The man is a nurse.", "She is a pilot."}
    row = frame[frame["text"] == "She is a pilot."].iloc[0]
    assert (row["person"], row["person_group"], row["occupation"]) == ("she", "female", "pilot")


def test_zip_filters_mask_and_subsample():
    lex = {"a": Lexicon("a", {"": ("x1", "x2")}), "b": Lexicon("b", {"": ("y1", "y2")})}
    zipped = expand([Template(id="z", text="{a} and {b} {mask}")], lex, mode="zip", mask="[MASK]")
    assert zipped["text"].tolist() == ["X1 and y1 [MASK]", "X2 and y2 [MASK]"]
    kept = expand([Template(id="t", text="{person} is {a:occupation}.")], LEX, filters={"person": ["female"]})
    assert set(kept["person"]) == {"she"}
    big = {"n": Lexicon("n", {"": tuple(f"w{i}" for i in range(40))})}
    tpl = [Template(id="t", text="{n} met {n1} and {n2}.")]
    one = expand(tpl, big, max_instances=50, seed=3)
    two = expand(tpl, big, max_instances=50, seed=3)
    assert len(one) == 50 and one["text"].tolist() == two["text"].tolist()
    assert one.attrs["n_total"] == 40 ** 3
    assert expand(tpl, big, max_instances=50, seed=4)["text"].tolist() != one["text"].tolist()


def test_fill_articles_and_capitals():
    assert fill("{a:x} was here", {"x": "hour-long talk"}) == "An hour-long talk was here"
    assert fill("I met {a:x}", {"x": "university dean"}) == "I met a university dean"


def test_starter_sets_load_and_resolve():
    names = ["gender", "occupations", "race_ethnicity", "religion", "nationality", "age", "disability",
             "sexual_orientation", "identity"]
    lex = load_lexicons([f"builtin:lexicons/{n}.toml" for n in names])
    assert {"person", "occupation", "ethnicity", "religion", "nationality", "age", "disability", "orientation",
            "identity"} <= set(lex)
    for name in ("fill_mask", "classifier"):
        frame = expand(load_templates(f"builtin:templates/{name}.toml"), lex)
        assert len(frame) > 20 and frame["text"].str.len().min() > 5


def test_formats_toml_json_csv(tmp_path):
    (tmp_path / "l.json").write_text('{"fruit": {"red": ["apple"], "yellow": ["banana"]}}')
    (tmp_path / "l.csv").write_text("lexicon,word,group\ncolour,red,warm\ncolour,blue,cold\n")
    (tmp_path / "t.csv").write_text("id,text,label\nt1,I like {fruit} and {colour}.,positive\n")
    lex = load_lexicons([tmp_path / "l.json", tmp_path / "l.csv"])
    assert lex["colour"].group_of("blue") == "cold"
    frame = expand(load_templates(tmp_path / "t.csv"), lex)
    assert len(frame) == 4 and set(frame["label"]) == {"positive"}


@pytest.mark.parametrize("content,suffix,message", [
    ('[[template]]\nid = "a"\ntext = "no slot here"\n', ".toml", "has no slot"),
    ("id,sentence\na,{x}\n", ".csv", "column 'text' missing"),
])
def test_bad_templates(tmp_path, content, suffix, message):
    path = tmp_path / f"t{suffix}"
    path.write_text(content)
    with pytest.raises(RaikitInputError, match=message) as err:
        load_templates(path)
    assert str(path) in str(err.value)


def test_bad_lexicons(tmp_path):
    empty = tmp_path / "e.toml"
    empty.write_text("gender = []\n")
    with pytest.raises(RaikitInputError, match="empty") as err:
        load_lexicons(empty)
    assert str(empty) in str(err.value)
    csv_path = tmp_path / "l.csv"
    csv_path.write_text("name,word\nx,y\n")
    with pytest.raises(RaikitInputError, match="column 'lexicon' missing"):
        load_lexicons(csv_path)
    with pytest.raises(RaikitInputError, match=r"slot \{colour\} has no lexicon"):
        expand([Template(id="t", text="a {colour} car")], LEX)
    with pytest.raises(RaikitInputError, match="no built-in data file"):
        builtin_path("lexicons/nope.toml")
