"""The result tables of README.md and docs/*.md, rendered from benchmarks/results/*.json.

    python benchmarks/docs_tables.py            # rewrite every table in place
    python benchmarks/docs_tables.py --check    # exit 1, naming each table that differs from its JSON

In a page a table sits between two markers; everything between them is this script's to write:

    <!-- table: lfw_recipe -->
    | model | preprocessing | ... |
    <!-- /table -->

A new table is a render function in benchmarks/tables/ (JSON in, markdown out) and one line in
TABLES. A table that is not measured (the heads' formulas, the service's routes) stays plain text.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tables import bulk, deploy, experiments, open_set, results, speed

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOCUMENTS = [REPO / "README.md", REPO / "docs"]

# name → (the JSON files under benchmarks/results/, in the order the function takes them; the function)
TABLES: dict[str, tuple[tuple[str, ...], Callable[..., str]]] = {
    "demo": (("demo.json",), results.demo),
    "demo_recognition": (("demo_avx2.json",), results.demo_recognition),
    "lfw_recipe": (("lfw_recipe.json",), results.lfw_recipe),
    "lfw_identification": (("lfw_identification.json", "lfw_recipe_fp32_rerun.json"), results.lfw_identification),
    "photos_pipeline": (("photos_pipeline.json",), results.photos_pipeline),
    "detection_speed": (("detection_speed.json",), results.detection_speed),
    "head_comparison": (("head_comparison.json",), results.head_comparison),
    "ddl_experiment": (("ddl_experiment.json",), experiments.ddl_experiment),
    "distill_experiment": (("distill_experiment.json",), experiments.distill_experiment),
    "blackbox_distill": (("blackbox_distill.json",), experiments.blackbox_distill),
    "blackbox_beyond_pairs": (
        ("photos_pipeline_blackbox.json", "lfw_identification_blackbox.json"),
        experiments.blackbox_beyond_pairs,
    ),
    "embed_throughput": (("embed_throughput.json",), deploy.embed_throughput),
    "embed_allocator": (("embed_throughput_bf16_glibc.json", "embed_throughput_bf16.json"), deploy.embed_allocator),
    "gallery_search": (("gallery_search.json",), deploy.gallery_search),
    "realistic_search": (("realistic_search.json",), deploy.realistic_search),
    "realistic_search_one_thread": (("realistic_search_one_thread.json",), deploy.realistic_search),
    "realistic_search_exact": (("realistic_search_exact.json",), deploy.realistic_search),
    "face_statistics": (("face_statistics.json",), deploy.face_statistics),
    "distractor_scaling": (("distractor_scaling.json",), deploy.distractor_scaling),
    "enrolled_photos": (("lfw_open_set.json",), open_set.enrolled_photos),
    "open_set_fpir": (("lfw_open_set.json",), open_set.open_set_fpir),
    "quality_reject": (("quality_reject.json",), deploy.quality_reject),
    "serve_load_aligned": (("serve_load.json",), deploy.serve_load_aligned),
    "serve_load_photo": (("serve_load.json",), deploy.serve_load_photo),
    "serve_to_model": (("serve_load.json",), deploy.serve_to_model),
    "search_and_serving_headline": (
        ("realistic_search_one_thread.json", "realistic_search_exact.json", "serve_load.json"),
        deploy.search_and_serving_headline,
    ),
    "vs_arcface_torch": (("vs_arcface_torch.json",), speed.vs_arcface_torch),
    "vs_arcface_torch_bf16": (("vs_arcface_torch_bf16.json",), speed.vs_arcface_torch),
    "training_peak": (("vs_arcface_torch_peak.json",), speed.training_peak),
    "training_profile": (("vs_arcface_torch_peak.json",), speed.training_profile),
    "training_tries": (("vs_arcface_torch_tries.json",), speed.training_tries),
    "speed_headline": (("vs_arcface_torch_peak.json", "loader_speed.json"), speed.speed_headline),
    "loader_speed": (("loader_speed_before.json", "loader_speed.json"), speed.loader_speed),
    "recipe_speed": (("recipe_speed_glibc.json", "recipe_speed.json"), speed.recipe_speed),
    "train_throughput": (("train_throughput.json",), speed.train_throughput),
    "partial_fc_scaling": (("partial_fc_scaling.json",), speed.partial_fc_scaling),
    "bulk_pipeline": (("bulk_pipeline.json",), bulk.bulk_pipeline),
    "bulk_projection": (("bulk_pipeline.json",), bulk.bulk_projection),
    "bulk_enroll": (("bulk_enroll.json",), bulk.bulk_enroll),
}

# the marker's indentation is the table's (a table inside a list item)
MARKED = re.compile(
    r"^(?P<indent>[ \t]*)<!-- table: (?P<name>[\w-]+) -->\n(?P<body>.*?)^(?P=indent)<!-- /table -->$",
    re.MULTILINE | re.DOTALL,
)
OPENED = re.compile(r"^[ \t]*<!-- table: ", re.MULTILINE)


class DocsError(Exception):
    """A page names a table that is not in TABLES or leaves one unclosed, or a JSON cannot be rendered."""


def render(name: str, results_dir: Path) -> str:
    files, function = TABLES[name]
    try:
        return function(*(json.loads((results_dir / file).read_text(encoding="utf-8")) for file in files))
    except (OSError, ValueError) as error:
        raise DocsError(f"table {name}: cannot read {', '.join(files)}: {error}") from error
    except (KeyError, TypeError, IndexError) as error:
        raise DocsError(f"table {name}: {', '.join(files)} lacks what the table shows: {error!r}") from error


def body(table: str, indent: str) -> str:
    """What stands between the markers: the table, indented as the marker, then a blank line."""
    return "".join(f"{indent}{line}\n" for line in table.splitlines()) + "\n"


def documents(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        found += sorted(path.glob("*.md")) if path.is_dir() else [path]
    return found


def rewrite(text: str, results_dir: Path, rendered: dict[str, str]) -> tuple[str, list[tuple[str, str, str]]]:
    """The page with every marked table rendered, and (name, old, new) for each table that changed."""
    if len(OPENED.findall(text)) != len(MARKED.findall(text)):
        raise DocsError("a <!-- table: NAME --> marker has no <!-- /table --> at its indentation")
    changed = []

    def one(match: re.Match) -> str:
        name, indent = match["name"], match["indent"]
        if name not in TABLES:
            raise DocsError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        if name not in rendered:
            rendered[name] = render(name, results_dir)
        new = body(rendered[name], indent)
        if new != match["body"]:
            changed.append((name, match["body"], new))
        return f"{indent}<!-- table: {name} -->\n{new}{indent}<!-- /table -->"

    return MARKED.sub(one, text), changed


def shown(path: Path) -> str:
    """The path as the user can open it: relative to the working directory where it can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def show(path: Path, name: str, old: str, new: str) -> None:
    """Name the table and its JSON, and the rows that differ (- the page, + the JSON)."""
    print(f"{shown(path)}: table {name} differs from {', '.join(TABLES[name][0])}")
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=0, lineterm=""):
        if not line.startswith(("---", "+++", "@@")):
            print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs")
    parser.add_argument("--docs", nargs="+", type=Path, default=DOCUMENTS, help="pages, or folders of *.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the folder of the results JSON")
    args = parser.parse_args(argv)
    rendered: dict[str, str] = {}
    stale = []
    for path in documents(args.docs):
        try:
            new, changed = rewrite(path.read_text(encoding="utf-8"), args.results, rendered)
        except (OSError, DocsError) as error:
            print(f"docs_tables: error: {shown(path)}: {error}", file=sys.stderr)
            return 1
        stale += changed
        if args.check:
            for name, old, table in changed:
                show(path, name, old, table)
        elif changed:
            path.write_text(new, encoding="utf-8")
            print(f"{shown(path)}: rewrote {', '.join(name for name, _, _ in changed)}")
    missing = [name for name in TABLES if name not in rendered]
    for name in missing:
        print(f"table {name} ({', '.join(TABLES[name][0])}) is in no page")
    if args.check and (stale or missing):
        print("run: python benchmarks/docs_tables.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
