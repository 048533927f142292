"""Captions files (CSV / TSV / JSONL / folder of .txt) and matching them to image names."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genmetrics.errors import InputError
from genmetrics.io.captions import (
    as_caption_table,
    match_captions,
    read_captions,
    read_prompt_file,
    read_prompts_array,
    sample_captions,
)
from genmetrics.io.images import open_source
from genmetrics.references import data_stats_dir
from tests.helpers import random_images, write_folder

NAMES = ["a.png", "b.jpg", "sub/c.png"]


def _write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_header_quotes_bom_and_unicode(tmp_path):
    path = _write(tmp_path / "c.csv", '\ufeffid,Caption,file\n1,"a cat, on a mat",a.png\n'
                                      '2,"she said ""hi""\nthen left",b.jpg\n'
                                      '3,日本語のキャプション ünï 🐱,sub/c.png\n')
    table = read_captions(path)
    assert table.captions == {"a.png": ["a cat, on a mat"], "b.jpg": ['she said "hi"\nthen left'],
                              "sub/c.png": ["日本語のキャプション ünï 🐱"]}
    assert match_captions(NAMES, table, "imgs") == [["a cat, on a mat"], ['she said "hi"\nthen left'],
                                                    ["日本語のキャプション ünï 🐱"]]


def test_headerless_two_columns_tsv_keeps_quotes_and_names_without_extension_match(tmp_path):
    path = _write(tmp_path / "c.tsv", 'a\t"quoted" start\n./b.jpg\tsecond\n\nsub\\c\tthird  \n')
    matched = match_captions(NAMES, read_captions(path), "imgs")
    assert matched == [['"quoted" start'], ["second"], ["third"]]


def test_jsonl_in_hugging_face_metadata_style(tmp_path):
    lines = [{"file_name": "a.png", "text": "один"}, {"file_name": "b.jpg", "text": "two"},
             {"file_name": "sub/c.png", "text": "three", "extra": 1}]
    path = _write(tmp_path / "metadata.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    assert match_captions(NAMES, read_captions(path), "imgs") == [["один"], ["two"], ["three"]]


def test_folder_of_txt_files_beside_the_images(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "a.txt", "first caption\n")
    _write(tmp_path / "b.txt", "second")
    _write(tmp_path / "sub" / "c.txt", "third ✓")
    _write(tmp_path / "a.png", "not read")
    assert match_captions(NAMES, read_captions(tmp_path), "imgs") == [["first caption"], ["second"], ["third ✓"]]


def test_references_collect_several_captions_per_image(tmp_path):
    csv_path = _write(tmp_path / "r.csv", "file,caption\na.png,one\na.png,two\nb.jpg,three\nsub/c.png,four\n")
    assert read_captions(csv_path, multiple=True).captions["a.png"] == ["one", "two"]
    jsonl = _write(tmp_path / "r.jsonl", '{"file": "a", "caption": ["x", "y"]}\n')
    assert read_captions(jsonl, multiple=True).captions == {"a": ["x", "y"]}
    folder = tmp_path / "refs"
    folder.mkdir()
    _write(folder / "a.txt", "x\n\ny\n")
    assert read_captions(folder, multiple=True).captions == {"a": ["x", "y"]}
    with pytest.raises(InputError, match="more than one caption: 'a.png'"):
        read_captions(csv_path)


def test_empty_captions_are_listed(tmp_path):
    rows = "".join(f"img{i}.png,{'' if i % 2 else 'ok'}\n" for i in range(14))
    with pytest.raises(InputError, match=r"7 empty caption.*'img1.png', 'img3.png', 'img5.png', 'img7.png', "
                                         r"'img9.png', \.\.\. \(7 in all\)"):
        read_captions(_write(tmp_path / "c.csv", rows))
    folder = tmp_path / "txt"
    folder.mkdir()
    _write(folder / "x.txt", "  \n")
    with pytest.raises(InputError, match="1 empty caption.*'x'"):
        read_captions(folder)


def test_images_without_captions_and_captions_without_images(tmp_path):
    table = read_captions(_write(tmp_path / "c.csv", "file,caption\na.png,one\nzzz.png,lost\n"))
    with pytest.raises(InputError, match=r"2 image\(s\) in 'imgs' have no caption in .*c\.csv.*'b.jpg', 'sub/c.png'"):
        match_captions(NAMES, table, "imgs")
    with pytest.raises(InputError, match=r"1 caption\(s\) in .*c\.csv.* name no image in 'imgs': 'zzz.png'"):
        match_captions(["a.png"], table, "imgs")


@pytest.mark.parametrize("name, content, message", [
    ("c.txt", "a.png,x", "unknown format"),
    ("c.csv", "a,b,c\n1,2,3\n", "neither a header"),
    ("c.csv", "file,caption\na.png\n", "row 2: 1 column"),
    ("c.jsonl", '{"file": "a.png"}\n', "line 1: expected an object with a file key"),
    ("c.jsonl", "not json\n", "line 1: not valid JSON"),
    ("c.csv", "", "holds no captions"),
])
def test_malformed_files(tmp_path, name, content, message):
    with pytest.raises(InputError, match=message):
        read_captions(_write(tmp_path / name, content))


def test_missing_file_not_utf8_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_captions(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="not UTF-8"):
        read_captions(_write(tmp_path / "c.csv", "a.png,café\n", encoding="latin-1"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .txt files"):
        read_captions(tmp_path / "empty")


def test_python_api_accepts_lists_and_mappings():
    table = as_caption_table(["x", "y", "z"], NAMES, "captions")
    assert match_captions(NAMES, table, "imgs") == [["x"], ["y"], ["z"]]
    assert as_caption_table({"a.png": ["r1", "r2"]}, NAMES, "references", multiple=True).captions == {
        "a.png": ["r1", "r2"]}
    with pytest.raises(InputError, match="2 captions for 3 images"):
        as_caption_table(["x", "y"], NAMES, "captions")
    with pytest.raises(InputError, match="1 empty or non-string caption.*'b.jpg'"):
        as_caption_table({"a.png": "x", "b.jpg": " "}, NAMES, "captions")


def _aliases(source) -> list[tuple[str, ...]]:
    return [source.aliases(i) for i in range(len(source))]


def _matched(source, table) -> list[list[str]]:
    names = [source.name(i) for i in range(len(source))]
    return match_captions(names, table, source.description, _aliases(source))


def test_an_array_image_is_also_named_by_its_index(tmp_path):
    np.savez(tmp_path / "s.npz", images=np.zeros((3, 8, 8), np.uint8), labels=np.arange(3))
    source = open_source(str(tmp_path / "s.npz"))
    assert source.name(2) == "s.npz['images'][2]" and _aliases(source) == [("0",), ("1",), ("2",)]
    by_index = read_captions(_write(tmp_path / "c.csv", "file,caption\n0,zero\n2,two\ns.npz['images'][1],one\n"))
    assert _matched(source, by_index) == [["zero"], ["one"], ["two"]]
    np.save(tmp_path / "s.npy", np.zeros((2, 8, 8, 3), np.uint8))
    assert _matched(open_source(str(tmp_path / "s.npy")), as_caption_table({"1": "b", "0": "a"}, [], "c")) == [
        ["a"], ["b"]]
    subset = open_source(str(tmp_path / "s.npz"), num_samples=2, seed=1)
    assert [a[0] for a in _aliases(subset)] == [subset.name(i).split("[")[-1][:-1] for i in range(2)]


def test_index_names_keep_the_missing_and_unused_caption_errors(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((3, 8, 8), np.uint8))
    source = open_source(str(tmp_path / "s.npy"))
    missing = read_captions(_write(tmp_path / "m.csv", "file,caption\n0,a\n1,b\n"))
    with pytest.raises(InputError, match=r"1 image\(s\) in .*s\.npy' have no caption in .*m\.csv.*'s\.npy\[2\]'"):
        _matched(source, missing)
    unused = read_captions(_write(tmp_path / "u.csv", "file,caption\n0,a\n1,b\n2,c\n3,d\n"))
    with pytest.raises(InputError, match=r"1 caption\(s\) in .*u\.csv.* name no image in .*s\.npy': '3'"):
        _matched(source, unused)
    write_folder(tmp_path / "imgs", random_images(1, size=8))
    folder = open_source(str(tmp_path / "imgs"))
    assert _aliases(folder) == [()]  # a folder's images are named by file name only
    with pytest.raises(InputError, match=r"name no image in .*imgs': '0'"):
        _matched(folder, as_caption_table({"img_0000.png": "x", "0": "y"}, [], "c"))


def test_the_shipped_test_captions_match_an_array_of_the_test_images_by_index():
    table = read_captions(data_stats_dir() / "fashion-mnist-test.captions.csv")
    source = open_source(np.zeros((10_000, 28, 28), np.uint8))
    matched = _matched(source, table)
    assert matched[17] == table.captions["17"] and len(matched) == 10_000


def _sample(path, n=3, **arrays):
    np.savez(path, images=np.zeros((n, 8, 8, 3), np.uint8), **arrays)
    return str(path)


def test_a_sample_npz_carries_its_prompts(tmp_path):
    path = _sample(tmp_path / "s.npz", prompts=np.array([" a cat ", "日本語", "a, b"]), labels=np.arange(3))
    assert read_prompts_array(path) == ["a cat", "日本語", "a, b"]
    table = sample_captions(path)
    assert table.origin == f"{path}['prompts']" and not table.exhaustive
    source = open_source(path)
    assert source.name(0) == "s.npz['images'][0]" and len(source) == 3  # the reader picks 'images'
    assert _matched(source, table) == [["a cat"], ["日本語"], ["a, b"]]
    subset = open_source(path, num_samples=2, seed=3)
    assert _matched(subset, table) == [table.captions[a[0]] for a in _aliases(subset)]
    np.save(tmp_path / "s.npy", np.zeros((3, 8, 8), np.uint8))
    for other in (_sample(tmp_path / "plain.npz"), str(tmp_path / "s.npy"), str(tmp_path), str(tmp_path / "no.npz")):
        assert read_prompts_array(other) is None and sample_captions(other) is None
    assert sample_captions(np.zeros((3, 8, 8), np.uint8)) is None


@pytest.mark.parametrize("prompts, message", [
    (np.array(["a", "b"]), r"array 'prompts' of '.*s\.npz' holds 2 prompts for the file's 3 images"),
    (np.arange(3), r"array 'prompts' of '.*s\.npz' is int64 of shape \(3,\); save the prompts as a 1-D string"),
    (np.array([b"a", b"b", b"c"]), r"array 'prompts' of '.*s\.npz' is \|S1"),
    (np.array([["a", "b", "c"]]), r"is <U1 of shape \(1, 3\)"),
    (np.array(["a", "", " \t"]), r"array 'prompts' of '.*s\.npz': 2 empty prompt\(s\), at index '1', '2'"),
])
def test_bad_prompts_arrays_name_the_file_and_key(tmp_path, prompts, message):
    path = _sample(tmp_path / "s.npz", prompts=prompts)
    with pytest.raises(InputError, match=message):
        read_prompts_array(path)


def test_a_pickled_prompts_array_is_never_loaded(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, images=np.zeros((2, 8, 8), np.uint8), prompts=np.array(["a", None], dtype=object))
    with pytest.raises(InputError, match=r"array 'prompts' of '.*s\.npz' is an object array, never loaded"):
        read_prompts_array(path)


def test_prompt_files_one_prompt_per_non_blank_line(tmp_path):
    path = _write(tmp_path / "p.txt", "\ufeff a red square \r\n\n  \n日本語 ünï\rlast, with comma\n\n")
    assert read_prompt_file(path) == ["a red square", "日本語 ünï", "last, with comma"]
    assert read_prompt_file(_write(tmp_path / "one.txt", "only")) == ["only"]


@pytest.mark.parametrize("content, message", [
    (b"", r"prompts file '.*e\.txt' has no prompts; put one prompt per line"),
    (b"\xef\xbb\xbf \n\t\r\n", "has no prompts; put one prompt per line"),
    (b"ok\ncaf\xe9\n", r"prompts file '.*e\.txt' is not UTF-8 text \(byte 6\); save it as UTF-8"),
])
def test_bad_prompt_files(tmp_path, content, message):
    (tmp_path / "e.txt").write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_prompt_file(tmp_path / "e.txt")


def test_a_missing_prompt_file(tmp_path):
    with pytest.raises(InputError, match=r"prompts file '.*nope\.txt' does not exist; pass a UTF-8 text file"):
        read_prompt_file(tmp_path / "nope.txt")
    with pytest.raises(InputError, match=r"cannot read prompts file '.*': Is a directory"):
        read_prompt_file(tmp_path)
