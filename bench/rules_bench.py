"""Times rules.decide() on a 10,000-character comment against word lists of several sizes.

Run: python bench/rules_bench.py
"""

import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moderation import rules  # noqa: E402

RUNS = 300
SIZES = (5000, 500, 50)  # words per list; blocked and held lists each get this many


def word(rng, low=3, high=10):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(low, high)))


def word_list(rng, n, avoid):
    """n entries unlike any word in avoid: mostly plain words, a tenth prefixes ("abcde*"), a tenth two-word phrases."""
    out = []
    while len(out) < n:
        kind = rng.random()
        if kind < 0.1:
            stem = word(rng, 5, 9)
            if not any(w.startswith(stem) for w in avoid):
                out.append(stem + "*")
        elif kind < 0.2:
            out.append(f"{rng.choice(sorted(avoid))} {word(rng, 5, 10)}")  # first word occurs in the comment
        elif (w := word(rng, 4, 10)) not in avoid:
            out.append(w)
    return out


def comment(rng, vocabulary, length, extra=""):
    """Random words from vocabulary until length characters, ending with extra."""
    parts, size = [], len(extra)
    while size < length:
        w = rng.choice(vocabulary)
        parts.append(w)
        size += len(w) + 1
    return (" ".join(parts) + " " + extra)[-length:] if extra else " ".join(parts)[:length]


def time_decide(draft, rule_set, facts):
    rules.decide(draft, rule_set, facts)  # first call compiles the matchers
    start = time.perf_counter()
    for _ in range(RUNS):
        decision = rules.decide(draft, rule_set, facts)
    return (time.perf_counter() - start) / RUNS * 1000, decision


def main():
    rng = random.Random(42)
    vocabulary = {word(rng, 2, 9) for _ in range(3000)} - {"refund"}
    texts = {
        "ascii, no match": comment(rng, sorted(vocabulary), 10_000),
        # Ends with a Cyrillic-e "rеfund" for the held entry "refund*": the worst place for tracing a match back.
        "accented + 1 held hit": comment(rng, sorted(vocabulary) + ["café", "naïve", "Zürich"], 10_000, " rеfund"),
    }
    facts = rules.Facts()
    print(f"decide() on a {len(texts['ascii, no match']):,}-character comment, mean of {RUNS} runs after the first\n")
    results = {}
    for label, text in texts.items():
        draft = rules.Draft(text=text, links=1, name="Jane", website="https://jane.example")
        print(f"  {label}:")
        for n in SIZES:
            held = word_list(rng, n - 1, vocabulary) + ["refund*"]
            blocked = word_list(rng, n, vocabulary)
            rule_set = rules.validate_rules({"moderation_mode": "post", "blocked_words": blocked, "held_words": held})
            start = time.perf_counter()
            rules.decide(draft, rule_set, facts)
            first = (time.perf_counter() - start) * 1000
            ms, decision = time_decide(draft, rule_set, facts)
            results[(label, n)] = ms
            print(
                f"    {2 * n:>6,} words: {ms:6.3f} ms per decision   (first call, compiling: {first:7.2f} ms)"
                f"   -> {decision.status}: {decision.reasons[0]}"
            )
        ratio = results[(label, SIZES[0])] / results[(label, SIZES[-1])]
        print(f"    ratio {2 * SIZES[0]:,} words / {2 * SIZES[-1]:,} words: {ratio:.2f}\n")


if __name__ == "__main__":
    main()
