"""PHOTOS for the bulk pipeline: a folder tree, a text list and a Parquet of paths name the same photos; bad lists
are refused naming what is wrong."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facelearn.bulk.sources import PhotoError, list_photos, read_photo
from facelearn.errors import DataError


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "photos"
    for person, count in (("alice", 2), ("bob", 1)):
        (root / person).mkdir(parents=True)
        for number in range(count):
            (root / person / f"{number}.jpg").write_bytes(b"jpeg")
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "nested" / "deeper" / "x.png").write_bytes(b"png")
    (root / "alice" / ".DS_Store").write_bytes(b"hidden")
    return root


def test_a_folder_a_text_list_and_a_parquet_name_the_same_photos(tree, tmp_path):
    photos = list_photos(tree)
    assert [p.key for p in photos] == ["alice/0.jpg", "alice/1.jpg", "bob/0.jpg", "nested/deeper/x.png"]
    assert [p.subject for p in photos] == ["alice", "alice", "bob", "deeper"]
    assert read_photo(photos[0].path, 100) == b"jpeg"
    as_uri = list_photos(tree.as_uri())  # what the Ray engine reads from any filesystem pyarrow knows
    assert [p.key for p in as_uri] == [p.key for p in photos] and read_photo(as_uri[0].path, 100) == b"jpeg"

    listing = tmp_path / "paths.txt"  # relative lines are relative to the list's folder
    listing.write_text(f"photos/alice/0.jpg\n\n{tree / 'bob' / '0.jpg'}\n")
    listed = list_photos(listing)
    assert [p.key for p in listed] == ["photos/alice/0.jpg", str(tree / "bob" / "0.jpg")]
    assert [p.subject for p in listed] == ["alice", "bob"] and read_photo(listed[0].path, 100) == b"jpeg"

    table = pa.table({"path": ["photos/alice/1.jpg", str(tree / "bob" / "0.jpg")], "subject": ["Alice A.", None]})
    pq.write_table(table, tmp_path / "paths.parquet")
    from_parquet = list_photos(tmp_path / "paths.parquet")
    assert [p.subject for p in from_parquet] == ["Alice A.", "bob"]  # the column, else the folder
    with pytest.raises(PhotoError, match="no such file") as missing:
        read_photo(str(tree / "carol.jpg"), 100)
    assert missing.value.status == "missing"
    with pytest.raises(PhotoError, match="more than the limit of 2") as large:
        read_photo(photos[0].path, 2)
    assert large.value.status == "too_large"


def test_bad_lists_are_refused_naming_what_is_wrong(tree, tmp_path):
    pq.write_table(pa.table({"file": ["a.jpg"], "person": ["a"]}), tmp_path / "wrong.parquet")
    with pytest.raises(DataError, match="has the columns file, person; a Parquet of photos needs a 'path' column"):
        list_photos(tmp_path / "wrong.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list_photos(tmp_path / "broken.parquet")
    (tmp_path / "twice.txt").write_text("a/1.jpg\nb/2.jpg\na/1.jpg\n")
    with pytest.raises(DataError, match="names the photo key 'a/1.jpg' twice"):
        list_photos(tmp_path / "twice.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="names no photos"):
        list_photos(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="does not exist"):
        list_photos(tmp_path / "nowhere")
    (tmp_path / "binary.lst").write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match="not a text file of paths"):
        list_photos(tmp_path / "binary.lst")
