"""Times rules.decide() on a 10,000-character comment against blocked and held word lists of several sizes.
Target: under 2 ms per decision with 5,000 words in each list, and about the same as with 100 words.

Run: python bench/rules_bench.py
"""

import os
import random
import statistics
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moderation import rules  # noqa: E402

ROUNDS, BATCH = 30, 10
SIZES = (5000, 1000, 100)  # words per list; blocked and held lists each get this many


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


def per_decision(draft, rule_set, facts):
    """Milliseconds per decision over one batch: wall clock, and CPU time of this process (which leaves out the
    time other programs on a busy machine had the CPU)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(BATCH):
        rules.decide(draft, rule_set, facts)
    return (time.perf_counter() - start) / BATCH * 1000, (time.process_time() - start_cpu) / BATCH * 1000


def main():
    rng = random.Random(42)
    vocabulary = {word(rng, 2, 9) for _ in range(3000)} - {"refund"}
    texts = {
        "ascii, no match": comment(rng, sorted(vocabulary), 10_000),
        # Ends with a Cyrillic-e "rеfund" for the held entry "refund*": the worst place for tracing a match back.
        "accented + 1 held hit": comment(rng, sorted(vocabulary) + ["café", "naïve", "Zürich"], 10_000, " rеfund"),
        # A hit on every kind of entry, spread over the text: a stem with an accent, a word with a zero-width space
        # inside, a phrase across a line break.
        "accented + 3 hits": " Réfunds " + comment(rng, sorted(vocabulary) + ["café", "naïve"], 9_970, " buy\nnow")
                             .replace(" ", " pi\u200blls ", 1),
    }
    facts = rules.Facts()
    print(f"decide() on a {len(texts['ascii, no match']):,}-character comment; medians and best of {ROUNDS} batches "
          f"of {BATCH}, all sizes interleaved; load average {os.getloadavg()[0]:.2f} at the start\n")
    rule_sets = {}
    for n in SIZES:
        held = word_list(rng, n - 2, vocabulary) + ["refund*", "buy now"]
        blocked = word_list(rng, n - 1, vocabulary) + ["pills"]
        rule_sets[n] = rules.validate_rules({"moderation_mode": "post", "blocked_words": blocked, "held_words": held,
                                             "blocked_words_action": "flag"})
    for label, text in texts.items():
        draft = rules.Draft(text=text, links=1, name="Jane", website="https://jane.example")
        print(f"  {label}:")
        first, times, cpu, decisions = {}, {n: [] for n in SIZES}, {n: [] for n in SIZES}, {}
        for n in SIZES:
            start = time.perf_counter()
            decisions[n] = rules.decide(draft, rule_sets[n], facts)  # the first call compiles the matcher
            first[n] = (time.perf_counter() - start) * 1000
        for _ in range(ROUNDS):
            for n in SIZES:
                wall, used = per_decision(draft, rule_sets[n], facts)
                times[n].append(wall)
                cpu[n].append(used)
        for n in SIZES:
            decision = decisions[n]
            median, best, median_cpu = statistics.median(times[n]), min(times[n]), statistics.median(cpu[n])
            print(f"    {n:>5,} + {n:>5,} words: median {median:6.3f} ms ({median_cpu:6.3f} ms CPU), "
                  f"best {best:6.3f} ms per decision (first call, compiling: {first[n]:7.2f} ms) -> {decision.status}, "
                  f"{len(decision.reasons)} reason(s): {decision.reasons[0]}")
        ratio = statistics.median(times[SIZES[0]]) / statistics.median(times[SIZES[-1]])
        ratio_cpu = statistics.median(cpu[SIZES[0]]) / statistics.median(cpu[SIZES[-1]])
        print(f"    ratio {SIZES[0]:,} / {SIZES[-1]:,} words per list (medians): {ratio:.2f} ({ratio_cpu:.2f} CPU)\n")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
