"""Writes livecodebench_sample.jsonl: hand-written problems in the LiveCodeBench
code_generation_lite release format (private cases base64 → zlib → pickle → JSON).

Run from anywhere: python tests/data/make_livecodebench_sample.py [output path]
"""

import base64
import json
import pickle
import sys
import zlib
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "livecodebench_sample.jsonl"


def stdin_cases(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": "stdin"} for i, o in pairs]


def functional_cases(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": "functional"} for i, o in pairs]


def encode_private(cases: list[dict[str, str]]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases), protocol=4))).decode()


def problem(
    title: str,
    content: str,
    platform: str,
    question_id: str,
    contest_id: str,
    date: str,
    starter_code: str,
    difficulty: str,
    public: list[dict[str, str]],
    private: list[dict[str, str]],
    metadata: dict[str, str],
) -> dict[str, str]:
    return {
        "question_title": title,
        "question_content": content,
        "platform": platform,
        "question_id": question_id,
        "contest_id": contest_id,
        "contest_date": date,
        "starter_code": starter_code,
        "difficulty": difficulty,
        "public_test_cases": json.dumps(public),
        "private_test_cases": encode_private(private),
        "metadata": json.dumps(metadata),
    }


PROBLEMS = [
    problem(
        "Sum of Two",
        "You are given two integers A and B. Print A + B.\n\nInput\n\nA B\n\nOutput\n\n"
        "Print the answer.\n\nConstraints\n\n-10^9 <= A, B <= 10^9",
        "atcoder",
        "xyz001_a",
        "xyz001",
        "2024-09-01T00:00:00",
        "",
        "easy",
        stdin_cases(("3 5\n", "8\n"), ("-2 2\n", "0\n")),
        stdin_cases(("1000000000 1000000000\n", "2000000000\n"), ("0 -7\n", "-7\n")),
        {},
    ),
    problem(
        "Sorted Lines",
        "You are given N integers. Print them in non-decreasing order, one per line.\n\n"
        "Input\n\nN\na_1 a_2 ... a_N\n\nConstraints\n\n1 <= N <= 2 x 10^5",
        "codeforces",
        "9001B",
        "9001",
        "2024-10-12T00:00:00",
        "",
        "medium",
        stdin_cases(("3\n3 1 2\n", "1\n2\n3\n")),
        stdin_cases(("1\n5\n", "5\n"), ("4\n-1 -1 0 -3\n", "-3\n-1\n-1\n0\n")),
        {},
    ),
    problem(
        "Vowel Count",
        "You are given a string S of lowercase English letters. Print how many characters of "
        "S are vowels (a, e, i, o, u).",
        "atcoder",
        "xyz002_b",
        "xyz002",
        "2025-02-08T00:00:00",
        "",
        "easy",
        stdin_cases(("banana\n", "3\n"), ("xyz\n", "0\n")),
        stdin_cases(("aeiou\n", "5\n")),
        {},
    ),
    problem(
        "maximum-window-sum",
        "You are given an integer array nums and an integer k. Return the largest sum of k "
        "consecutive elements of nums.\n\nExample 1:\n\nInput: nums = [1,4,2,5], k = 2\n"
        "Output: 7\n\nConstraints:\n\n1 <= k <= nums.length <= 10^5",
        "leetcode",
        "9101",
        "weekly-contest-901",
        "2024-11-03T00:00:00",
        "class Solution:\n    def maxWindowSum(self, nums: List[int], k: int) -> int:\n        ",
        "medium",
        functional_cases(("[1, 4, 2, 5]\n2", "7"), ("[-3, -1]\n1", "-1")),
        functional_cases(("[5]\n1", "5"), ("[2, 2, 2, 2]\n4", "8")),
        {"func_name": "maxWindowSum"},
    ),
    problem(
        "split-and-flag",
        "You are given a string s and a string sep. Return a list of two elements: the list "
        "of pieces of s split at sep, and whether s contains sep at all.\n\nExample 1:\n\n"
        'Input: s = "a,b", sep = ","\nOutput: [["a","b"],true]',
        "leetcode",
        "9102",
        "biweekly-contest-401",
        "2025-03-15T00:00:00",
        "class Solution:\n    def splitAndFlag(self, s: str, sep: str) -> list:\n        ",
        "easy",
        functional_cases(('"a,b"\n","', '[["a", "b"], true]')),
        functional_cases(
            ('"abc"\n";"', '[["abc"], false]'), ('"x;;y"\n";"', '[["x", "", "y"], true]')
        ),
        {"func_name": "splitAndFlag"},
    ),
]


def main(output: Path) -> None:
    with output.open("w", encoding="utf-8") as file:
        for record in PROBLEMS:
            file.write(json.dumps(record) + "\n")
    print(f"wrote {len(PROBLEMS)} problems to {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
