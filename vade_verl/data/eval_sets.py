"""The VADE paper's five evaluation sets as verl validation parquet files, and their grader.

    python -m vade_verl.data.eval_sets --out ~/data/vade_eval            # all five, from the Hugging Face Hub
    python -m vade_verl.data.eval_sets --out DIR --sets mathvista chartqa --source mathvista=/path/to/saved
    VAL_FILES="[$HOME/data/vade_eval/mathvista.parquet,$HOME/data/vade_eval/chartqa.parquet]" bash recipes/...

Writes ``<out>/<name>.parquet`` per set, in verl's RL layout (``vade_verl.data.rows``) with
``data_source`` = the Hub name, so verl logs validation scores per benchmark
(``val-core/<data_source>/...``). ``--source NAME=PATH`` reads a ``save_to_disk`` folder (or any path
``datasets.load_dataset`` reads) in the Hub dataset's layout instead of the Hub.

========== ============================== ======== ===========================================================
name       Hub dataset (config)           split    prompt / ground truth
========== ============================== ======== ===========================================================
mathvista  AI4Math/MathVista              testmini question, choices lettered (A), (B), ...; the answer's letter
                                                   for multiple choice, else the answer
mathverse  AI4Math/MathVerse (testmini)   testmini question (it lists its own choices); answer as given
mathvision MathLLMs/MathVision            test     question, options lettered unless they are the letters A-E
                                                   drawn in the image; answer as given (a letter for choices)
scienceqa  derek-thomas/ScienceQA         test     hint, question, choices lettered; the letter of choices[answer];
                                                   rows without an image are skipped (the IMG subset)
chartqa    HuggingFaceM4/ChartQA          test     query; label[0]
========== ============================== ======== ===========================================================

Every prompt ends with geo3k's instruction (think in ``<think>``, answer in ``\\boxed{}``), multiple
choice ones first ask for the option's letter. Skipped rows are counted and reported, never dropped
silently. ``extra_info.index`` is the row's position among the kept rows of its split.

``compute_score`` is the recipes' ``reward.custom_reward_function``: for these data sources verl's
geo3k rule (``verl.utils.reward_score.geo3k``: 0.9 x the boxed answer equals the ground truth by
mathruler, + 0.1 x format), for every other data source verl's ``default_compute_score``. It is not
each benchmark's own metric (MathVista and MathVerse extract answers with an LLM, ChartQA allows 5%
relative error, the VADE paper reports Average@4), so its numbers compare runs here, not the paper's.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import string
import sys
from collections import Counter
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from vade_verl.data.geo3k import load_split, write_rows
from vade_verl.data.rows import make_rows

logger = logging.getLogger(__name__)

LETTERS = string.ascii_uppercase
CHOOSE_LETTER = "Answer with the letter of the correct option."

# A converter maps one source record to {"problem", "answer", "images"} (vade_verl.data.rows'
# record), or to a str: why the record is skipped.
Converted = Union[dict, str]


def lettered(options: Sequence[str]) -> str:
    """``(A) first`` ... one option per line."""
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options: at most {len(LETTERS)} can be lettered")
    return "\n".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(options))


def with_choices(question: str, options: Sequence[str]) -> str:
    return f"{question}\nChoices:\n{lettered(options)}\n{CHOOSE_LETTER}"


def mathvista(record: Mapping[str, Any]) -> Converted:
    """AI4Math/MathVista: pid, question, decoded_image, choices, answer, question_type."""
    question, answer = str(record["question"]), str(record["answer"])
    if record["question_type"] == "multi_choice":
        choices = [str(c) for c in record["choices"]]
        if answer not in choices:
            raise ValueError(f"MathVista pid {record['pid']}: answer {answer!r} is not one of its choices {choices}")
        question, answer = with_choices(question, choices), LETTERS[choices.index(answer)]
    return {"problem": question, "answer": answer, "images": [record["decoded_image"]]}


def mathverse(record: Mapping[str, Any]) -> Converted:
    """AI4Math/MathVerse (config testmini): question (with its choices), image, answer."""
    if record["image"] is None:
        return "no image"
    return {"problem": str(record["question"]), "answer": str(record["answer"]), "images": [record["image"]]}


def mathvision(record: Mapping[str, Any]) -> Converted:
    """MathLLMs/MathVision: id, question, options, decoded_image, answer (a letter when options)."""
    question, options = str(record["question"]), [str(o) for o in record["options"] or []]
    if options and "".join(options) == LETTERS[: len(options)]:
        question = f"{question}\n{CHOOSE_LETTER}"  # the options are drawn in the image
    elif options:
        question = with_choices(question, options)
    return {"problem": question, "answer": str(record["answer"]), "images": [record["decoded_image"]]}


def scienceqa(record: Mapping[str, Any]) -> Converted:
    """derek-thomas/ScienceQA: image (or None), question, choices, answer (an index), hint."""
    if record["image"] is None:
        return "no image"
    choices = [str(c) for c in record["choices"]]
    question = with_choices(str(record["question"]), choices)
    if record["hint"]:
        question = f"Context: {record['hint']}\n{question}"
    return {"problem": question, "answer": LETTERS[int(record["answer"])], "images": [record["image"]]}


def chartqa(record: Mapping[str, Any]) -> Converted:
    """HuggingFaceM4/ChartQA: image, query, label (a list of accepted answers; the first is used)."""
    return {"problem": str(record["query"]), "answer": str(record["label"][0]), "images": [record["image"]]}


@dataclasses.dataclass(frozen=True)
class EvalSet:
    hub: str
    split: str
    convert: Callable[[Mapping[str, Any]], Converted]
    config: Optional[str] = None
    ability: str = "math"


EVAL_SETS: dict[str, EvalSet] = {
    "mathvista": EvalSet("AI4Math/MathVista", "testmini", mathvista),
    "mathverse": EvalSet("AI4Math/MathVerse", "testmini", mathverse, config="testmini"),
    "mathvision": EvalSet("MathLLMs/MathVision", "test", mathvision),
    "scienceqa": EvalSet("derek-thomas/ScienceQA", "test", scienceqa, ability="science"),
    "chartqa": EvalSet("HuggingFaceM4/ChartQA", "test", chartqa, ability="chart"),
}
EVAL_DATA_SOURCES = frozenset(s.hub for s in EVAL_SETS.values())


def convert_split(name: str, records: Sequence[Mapping[str, Any]]) -> tuple[list[dict], Counter]:
    """verl rows for one set's records, and the count of skipped records per reason."""
    spec = EVAL_SETS[name]
    kept, skipped = [], Counter()
    for record in records:
        converted = spec.convert(record)
        if isinstance(converted, str):
            skipped[converted] += 1
        else:
            kept.append(converted)
    return make_rows(kept, spec.split, spec.hub, ability=spec.ability), skipped


def prepare(out: str, names: Sequence[str], sources: Mapping[str, str], splits: Mapping[str, str]) -> dict:
    """Write ``<out>/<name>.parquet`` for each set; returns ``{name: (path, rows, skipped)}``."""
    written = {}
    for name in names:
        spec = EVAL_SETS[name]
        source = sources.get(name, spec.hub)
        records = load_split(source, splits.get(name, spec.split), config=None if name in sources else spec.config)
        rows, skipped = convert_split(name, records)
        path = write_rows(rows, os.path.join(out, f"{name}.parquet"))
        written[name] = (path, len(rows), skipped)
        logger.info("%s: %d rows from %s, skipped %s -> %s", name, len(rows), source, dict(skipped) or "none", path)
    return written


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's reward function signature: geo3k's rule for the eval sets, verl's default otherwise."""
    if data_source in EVAL_DATA_SOURCES:
        from verl.utils.reward_score import geo3k

        return geo3k.compute_score(solution_str, ground_truth)
    from verl.utils.reward_score import default_compute_score

    return default_compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)


def name_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``["mathvista=/x"]`` -> ``{"mathvista": "/x"}``, names checked."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in EVAL_SETS or not value:
            raise SystemExit(f"{option} {pair!r}: expected NAME=VALUE with NAME one of {sorted(EVAL_SETS)}")
        parsed[name] = value
    return parsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for <name>.parquet")
    parser.add_argument("--sets", nargs="+", choices=sorted(EVAL_SETS), default=list(EVAL_SETS))
    parser.add_argument("--source", nargs="*", default=[], metavar="NAME=PATH", help="read NAME from PATH instead of the Hub")
    parser.add_argument("--split", nargs="*", default=[], metavar="NAME=SPLIT", help="another split of NAME")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sources, splits = name_values(args.source, "--source"), name_values(args.split, "--split")
    written = prepare(os.path.expanduser(args.out), args.sets, sources, splits)
    for name, (path, count, skipped) in written.items():
        print(f"{name}: {count} rows -> {path}" + (f" (skipped: {dict(skipped)})" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
