"""Math problems with a reference answer: loaders, answer extraction and equivalence.

    arith:<n>[:<seed>]                 n built-in arithmetic word problems (seeded, offline)
    <path>.jsonl / .json               MATH (problem, solution[, answer]), GSM8K (question,
                                       answer with "#### x") or AIME (problem/Problem, answer)
    hf:<dataset>[:<config>][:<split>]  the same layouts from a Hugging Face dataset

Answers are the last \\boxed{...} of a text (nested braces kept), or GSM8K's "#### x".
Two answers are equal when their normalized keys match (numbers as floats, LaTeX tidied),
else when math-verify finds them equivalent, else never.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pot.tasks.hf import hf_rows
from pot.tasks.records import Record, parse_records, read_records
from pot.tasks.task import TaskFormatError

MATH_SPEC_HELP = "use arith:<n>[:<seed>], a .jsonl/.json path or hf:<dataset>[:config][:split]"
LAYOUTS = (
    "MATH (problem, solution[, answer]), GSM8K (question, answer with '#### x') "
    "or AIME (problem or Problem, answer or Answer)"
)
BOXED = re.compile(r"\\?(?:boxed|fbox)\s*\{")
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")


@dataclass
class MathTask:
    id: str
    question: str
    answer: str  # the reference final answer (already extracted from a worked solution)
    metadata: dict[str, Any] = field(default_factory=dict)


# --- answers ---------------------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or boxed{...}, \\fbox{...}), nested braces kept."""
    starts = [match.end() for match in BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for index in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                return text[start:index].strip()
    return None


def extract_answer(text: str, fmt: str = "boxed") -> str | None:
    """The final answer of a text: the last \\boxed{}, else GSM8K's "#### x"; with
    fmt="last-number", else also the last number (for small models that rarely box)."""
    boxed = last_boxed(text)
    if boxed:
        return boxed
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().splitlines()[0].strip() or None
    if fmt == "last-number":
        numbers = NUMBER.findall(text)
        return numbers[-1].rstrip(".") if numbers else None
    if fmt != "boxed":
        raise ValueError(f"unknown answer format {fmt!r}: use boxed or last-number")
    return None


def normalize_answer(answer: str) -> str:
    """A canonical key: numbers (1,000 / 3.50 / \\dfrac{1}{2} / -7) as floats, else the
    LaTeX with spacing, \\left/\\right, \\text{} units, dollars and \\dfrac tidied."""
    text = answer.replace("\\$", "").strip().strip("$").strip()
    text = re.sub(r"\\(?:text|mathrm|textbf|mbox)\{\s*[a-zA-Z ]*\}", "", text)  # units
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\ |\s+", "", text)
    text = text.replace("{,}", ",").replace("^\\circ", "").replace("^{\\circ}", "")
    text = text.rstrip(".").removeprefix("x=")
    value = as_number(text)
    if value is None:
        return text
    return f"{float(value):.10g}" if value.denominator != 1 else str(value.numerator)


def as_number(text: str) -> Fraction | None:
    text = text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text) else text
    text = text.removesuffix("\\%").removesuffix("%")
    frac = re.fullmatch(r"(-?)\\frac\{?(-?\d+)\}?\{?(\d+)\}?", text)
    if frac:
        sign = -1 if frac[1] else 1
        return sign * Fraction(int(frac[2]), int(frac[3])) if int(frac[3]) else None
    if re.fullmatch(r"-?\d+/\d+", text):
        numerator, denominator = text.split("/")
        return Fraction(int(numerator), int(denominator)) if int(denominator) else None
    if re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", text):
        return Fraction(text)
    return None


def answers_equal(predicted: str | None, reference: str) -> bool:
    """Same normalized key, or equivalent for math-verify (symbolic / numeric)."""
    if predicted is None:
        return False
    if normalize_answer(predicted) == normalize_answer(reference):
        return True
    return math_verify_equal(predicted, reference)


def math_verify_equal(predicted: str, reference: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    # math-verify times out with SIGALRM, which only the main thread may use
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=timeout)
    target = parse(f"\\boxed{{{predicted}}}", parsing_timeout=timeout)
    return bool(gold and target and verify(gold, target, timeout_seconds=timeout))


# --- loading ---------------------------------------------------------------------------------


def load_math_tasks(spec: str, *, limit: int | None = None) -> list[MathTask]:
    kind, _, rest = spec.partition(":")
    if kind == "arith":
        count, _, seed = rest.partition(":")
        if not count.isdigit() or (seed and not seed.lstrip("-").isdigit()):
            raise TaskFormatError(f"bad spec '{spec}': use arith:<n>[:<seed>], e.g. arith:20")
        tasks = arithmetic_tasks(int(count), int(seed or 0))
    elif kind == "hf" and rest:
        dataset, config, split = (rest.split(":") + ["", ""])[:3]
        rows = hf_rows(dataset, config or None, split or None)
        records = [Record(dict(row), f"hf:{dataset} row {i}") for i, row in enumerate(rows)]
        tasks = parse_records(records, math_task)
    elif spec.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        tasks = parse_records(read_records(spec), math_task)
    else:
        raise TaskFormatError(f"unknown math task spec '{spec}'; {MATH_SPEC_HELP}")
    return tasks if limit is None else tasks[:limit]


def math_task(record: Record) -> MathTask:
    """One record in the MATH, GSM8K or AIME layout (recognised by its fields)."""
    data = record.data
    fields = set(data)
    given = next((data[k] for k in ("id", "ID", "unique_id") if k in data), None)
    if given is not None:
        record = record.named(str(given))
    task_id = str(given) if given is not None else record.origin.rsplit("/", 1)[-1]
    if "question" in fields and "answer" in fields:  # GSM8K
        solution = record.get("answer", str)
        if "####" not in solution:
            raise record.error("field 'answer' has no '#### <answer>' line (GSM8K layout)")
        question, answer = record.get("question", str), solution.rsplit("####", 1)[1].strip()
    elif fields & {"problem", "Problem"}:  # MATH or AIME
        question = record.get("problem" if "problem" in fields else "Problem", str)
        answer = reference_answer(record, fields)
    else:
        raise record.error(
            f"unknown math layout (fields: {', '.join(sorted(fields))})", f"expected {LAYOUTS}"
        )
    if not answer:
        raise record.error("the reference answer is empty")
    metadata = {k: v for k, v in data.items() if k in ("level", "type", "subject", "year")}
    return MathTask(id=task_id, question=question, answer=answer, metadata=metadata)


def reference_answer(record: Record, fields: set[str]) -> str:
    for name in ("answer", "Answer"):
        if name in fields:
            return str(record.get(name, (str, int, float))).strip()
    solution = record.get("solution", str)
    boxed = last_boxed(solution)
    if boxed is None:
        raise record.error(
            "field 'solution' has no \\boxed{...} answer and there is no 'answer' field"
        )
    return boxed


# --- built-in arithmetic word problems ---------------------------------------------------------

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "coins", "cards", "shells"]


def arithmetic_tasks(count: int, seed: int = 0) -> list[MathTask]:
    """`count` two- or three-step word problems with integer answers, the same for a seed."""
    rng = random.Random(seed)
    makers = [_buy_and_give, _groups, _shared, _price]
    return [
        MathTask(
            id=f"arith/{seed}/{index}",
            question=question,
            answer=str(answer),
            metadata={"kind": maker.__name__.strip("_")},
        )
        for index in range(count)
        for maker in [makers[index % len(makers)]]
        for question, answer in [maker(rng)]
    ]


def _buy_and_give(rng: random.Random) -> tuple[str, int]:
    name, other, item = *rng.sample(NAMES, 2), rng.choice(ITEMS)
    have, buy = rng.randint(5, 40), rng.randint(2, 30)
    give = rng.randint(1, have + buy - 1)
    question = (
        f"{name} has {have} {item}. {name} gets {buy} more and then gives {give} to "
        f"{other}. How many {item} does {name} have now?"
    )
    return question, have + buy - give


def _groups(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    boxes, each, extra = rng.randint(2, 9), rng.randint(3, 12), rng.randint(1, 9)
    question = (
        f"{name} has {boxes} boxes with {each} {item} in each box, and {extra} loose "
        f"{item}. How many {item} does {name} have in total?"
    )
    return question, boxes * each + extra


def _shared(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    friends, each, left = rng.randint(2, 8), rng.randint(2, 10), rng.randint(1, 5)
    total = friends * each + left
    question = (
        f"{name} shares {total} {item} equally among {friends} friends and keeps the "
        f"{left} left over. How many {item} does each friend get?"
    )
    return question, each


def _price(rng: random.Random) -> tuple[str, int]:
    name = rng.choice(NAMES)
    count, price, paid_extra = rng.randint(2, 9), rng.randint(2, 15), rng.randint(1, 20)
    paid = count * price + paid_extra
    question = (
        f"{name} buys {count} notebooks at {price} dollars each and pays with {paid} "
        f"dollars. How many dollars of change does {name} get?"
    )
    return question, paid_extra
