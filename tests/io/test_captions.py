"""Captions files (CSV / TSV / JSONL / folder of .txt) and matching them to image names."""
from __future__ import annotations

import json

import pytest

from genmetrics.errors import InputError
from genmetrics.io.captions import as_caption_table, match_captions, read_captions

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
